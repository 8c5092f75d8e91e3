"""A deterministic base for planning, as raw pyairtable records (no server, no clock).

Used where planning itself is measured or pinned: the planning-CPU figures of
``sync_scale.py --mirror`` and ``tests/test_sync_plan_pinned.py``, which holds the SHA-256 of
the plan JSON over this corpus so that a faster planner is shown to plan byte for byte what
the slower one did.  Every draw comes from one seeded ``random.Random`` and every time from
:data:`NOW`, so the same arguments give the same records on every machine.

Mostly consistent jobs of ``clients_per_job`` client rows, with a share of every kind of
problem the planner handles: legacy statuses and run IDs (C-prefixed, doubled, Apify-tagged,
job-process, structured SR, numeric artefacts, base-only client IDs), stale and fresh
``Running`` rows (and stamps from skewed clocks), duplicate rows of both tables, drifted or
missing aggregates, client rows without a job row, unmappable statuses, text in number
fields, scored > examined, empty and unconvertible run IDs, notes near the long-text limit.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from jobtrack_airtable.airtable import MAX_LONG_TEXT
from jobtrack_airtable.metrics import JOB_SUM_KEYS
from jobtrack_airtable.schema import Schema, load_schema
from jobtrack_airtable.timeutil import to_airtable
from jobtrack_airtable.transport.codec import codec_for

__all__ = ["NOW", "STALE_AFTER", "corpus"]

NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
STALE_AFTER = timedelta(hours=2)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()

    def __call__(self) -> str:
        while True:
            rid = "rec" + "".join(self.rng.choices(_ALPHABET, k=14))
            if rid not in self.seen:
                self.seen.add(rid)
                return rid


def _record(rid: str, created: datetime, fields: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "createdTime": to_airtable(created), "fields": fields}


def corpus(
    client_rows: int,
    *,
    seed: int = 3,
    clients_per_job: int = 50,
    schema: Schema | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(job records, client run records)`` of about ``client_rows`` client rows, newest job
    last (started up to an hour before :data:`NOW`, so the last jobs are still running)."""
    rng = random.Random(seed)
    schema = schema or load_schema()
    jobs_spec, crr_spec = schema.jobs, schema.client_runs
    new_id = _Ids(rng)
    jobs_n = math.ceil(client_rows / clients_per_job)
    first = NOW - timedelta(minutes=20 * jobs_n) - timedelta(hours=1)
    jobs: list[dict[str, Any]] = []
    clients: list[dict[str, Any]] = []
    for j in range(jobs_n):
        began = first + timedelta(minutes=20 * j)
        base = began.strftime("%y%m%d-%H%M%S")
        sums = dict.fromkeys(JOB_SUM_KEYS, 0)
        failed = 0
        running_job = j >= jobs_n - 2  # the newest jobs are still at work
        n = min(clients_per_job, client_rows - j * clients_per_job)
        for i in range(n):
            client_id = f"Client-{i:04d}"
            examined = rng.randint(0, 400)
            scored = rng.randint(0, examined)
            status = rng.choices(["Completed", "Failed", "No Leads To Score"], [90, 5, 5])[0]
            c_start = began + timedelta(seconds=5 + 10 * i)
            values: dict[str, Any] = {
                "run_id": f"{base}-{client_id}",
                "client_id": client_id,
                "client_name": client_id.replace("-", " "),
                "status": status,
                "start_time": to_airtable(c_start),
                "end_time": to_airtable(c_start + timedelta(seconds=rng.randint(5, 300))),
                "last_updated": to_airtable(c_start + timedelta(seconds=300)),
                "profiles_examined": examined,
                "profiles_scored": scored,
                "profile_tokens": scored * 500,
                "apify_costs": round(rng.random() * 3, 2),
            }
            if running_job and i % 3 == 0:
                values["status"] = "Running"  # fresh: left to its worker
                values.pop("end_time")
                values["last_updated"] = to_airtable(NOW - timedelta(minutes=rng.randint(1, 90)))
            roll = rng.random()
            if roll < 0.01:
                values["status"] = rng.choice(["Success", "Done", "Error", "In Progress"])
            elif roll < 0.015:
                values["status"] = "Running"  # stale: sync proposes Failed
                values.pop("end_time")
            elif roll < 0.017:
                values["status"] = rng.choice(["Weird", "", 7])  # unmappable, empty, not text
            elif roll < 0.019:
                values["run_id"] = rng.choice(
                    [
                        f"{base}-C{client_id}",  # the old C prefix
                        f"{base}-{client_id}-{client_id}",  # doubled
                        f"{base}",  # base only: client from Client ID
                        f"  {base}-{client_id} ",  # whitespace
                        f"{base}-apify-{rng.randint(10**8, 10**9)}x",  # Apify-tagged
                        f"SR-{began:%y%m%d}-001-T33-S1-C{client_id}",  # structured SR
                        "",  # empty
                        "not a run id",  # unconvertible
                    ]
                )
            elif roll < 0.021:
                values["profiles_examined"] = str(examined)  # text in a number field
            elif roll < 0.023:
                values["profiles_scored"] = examined + 5  # scored > examined
            elif roll < 0.025:
                values["client_id"] = "Someone-Else"  # disagrees with the Run ID
            elif roll < 0.026:
                values["last_updated"] = to_airtable(NOW + timedelta(hours=3))  # skewed clock
                values["status"] = "Running"
            elif roll < 0.027:
                values["system_notes"] = ("[2025-09-01T00:00:00.000Z] w: note\n" * 3000)[
                    : MAX_LONG_TEXT - 20
                ]
                values["status"] = "Running"  # stale, with notes near the limit
                values["last_updated"] = to_airtable(NOW - timedelta(hours=5))
            if values["status"] == "Failed":
                failed += 1
            for key in sums:
                value = values.get(key, 0)
                sums[key] += value if isinstance(value, int) else 0
            fields = codec_for(crr_spec).names({k: v for k, v in values.items() if v is not None})
            created = c_start - timedelta(seconds=1)
            clients.append(_record(new_id(), created, fields))
            if rng.random() < 0.002:  # a duplicate, newer, with a later value
                copy = dict(fields)
                copy[crr_spec.name_of("profiles_examined")] = examined + 1
                clients.append(_record(new_id(), created + timedelta(seconds=30), copy))
        job: dict[str, Any] = {
            "run_id": base,
            "status": "Running" if running_job else "Completed",
            "stream": 1 + j % 4,
            "start_time": to_airtable(began),
            "last_updated": to_airtable(began + timedelta(minutes=15)),
            "clients_processed": n,
            "clients_with_errors": failed,
            **sums,
        }
        if not running_job:
            job["end_time"] = to_airtable(began + timedelta(minutes=15))
        roll = rng.random()
        if roll < 0.03:
            job["clients_processed"] = n + 1  # drifted: recomputed
        elif roll < 0.04:
            for key in JOB_SUM_KEYS:
                job.pop(key, None)  # missing aggregates
            job.pop("start_time")
        elif roll < 0.045:
            job["status"] = "Success"
        elif roll < 0.05:
            job["run_id"] = f"job_post_scoring_stream1_20{base.replace('-', '')}"
        elif roll < 0.055:
            job["run_id"] = f"{base}.0"  # numeric artefact
        elif roll < 0.06:
            continue  # no job row: sync creates one
        elif roll < 0.063:
            job["status"] = "Running"  # stale job
            job.pop("end_time", None)
        fields = codec_for(jobs_spec).names({k: v for k, v in job.items() if jobs_spec.has(k)})
        jobs.append(_record(new_id(), began, fields))
        if rng.random() < 0.01:  # a duplicate job row
            jobs.append(_record(new_id(), began + timedelta(seconds=2), dict(fields)))
    # Listing order is not creation order in every base: shuffle within a window.
    rng.shuffle(jobs)
    return jobs, clients
