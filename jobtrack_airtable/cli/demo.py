"""A realistic demo dataset for the embedded local base.

Dozens of jobs and a few hundred client rows, mostly healthy, with every kind of inconsistency
``sync`` detects planted in a known place: legacy run IDs of every form, legacy and unmappable
statuses, stale ``Running`` rows, client runs left ``Running`` under finished jobs, missing and
wrong aggregates, orphan client rows, Client IDs that disagree with their Run ID, duplicate rows,
and invalid metric values.  Deterministic for a given seed and ``now``.

>>> from datetime import datetime, UTC
>>> rows = demo_records(now=datetime(2025, 10, 1, tzinfo=UTC))
>>> sum(1 for r in rows if r.table == "client_runs") > 200
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..metrics import JOB_SUM_KEYS
from ..timeutil import to_airtable

CLIENTS: tuple[tuple[str, str], ...] = (
    ("Guy-Wilson", "Guy Wilson"),
    ("Carl-Jones", "Carl Jones"),
    ("Ana-María-López", "Ana María López"),
    ("O'Brien-Partners", "O'Brien & Partners"),
    ('Dean "Deano" Hobbs', 'Dean "Deano" Hobbs'),
    ("Priya-Shah", "Priya Shah"),
    ("Tom-Baker", "Tom Baker"),
    ("Lena-Fischer", "Lena Fischer"),
    ("Marc-Dubois", "Marc Dubois"),
    ("Yuki-Tanaka", "Yuki Tanaka"),
    ("Sam-Okafor", "Sam Okafor"),
    ("Eva-Novak", "Eva Novak"),
)


@dataclass
class DemoRecord:
    """One row to insert: the table's logical key, fields by logical key, created time."""

    table: str
    fields: dict[str, Any]
    created_time: datetime
    tags: set[str] = field(default_factory=set)


def _base_id(moment: datetime) -> str:
    return moment.strftime("%y%m%d-%H%M%S")


def _metrics(rng: random.Random, *, empty: bool = False) -> dict[str, Any]:
    if empty:
        return {
            "profiles_examined": 0,
            "profiles_scored": 0,
            "posts_examined": 0,
            "posts_scored": 0,
            "profile_tokens": 0,
            "post_tokens": 0,
        }
    examined = rng.randint(5, 120)
    posts = rng.randint(0, 300)
    return {
        "profiles_examined": examined,
        "profiles_scored": rng.randint(examined // 2, examined),
        "profile_tokens": examined * rng.randint(800, 1500),
        "profiles_submitted": rng.randint(0, examined),
        "posts_harvested": posts,
        "posts_examined": posts,
        "posts_scored": rng.randint(posts // 2, posts) if posts else 0,
        "post_tokens": posts * rng.randint(200, 600),
        "apify_costs": round(rng.uniform(0.05, 4.0), 2),
    }


def _aggregate(clients: list[DemoRecord]) -> dict[str, Any]:
    agg: dict[str, Any] = dict.fromkeys(JOB_SUM_KEYS, 0)
    for c in clients:
        for k in JOB_SUM_KEYS:
            value = c.fields.get(k) or 0
            agg[k] += value if isinstance(value, int) and value >= 0 else 0
    agg["clients_processed"] = len(clients)
    agg["clients_with_errors"] = sum(1 for c in clients if c.fields.get("status") == "Failed")
    return agg


def demo_records(*, now: datetime, seed: int = 7, jobs: int = 40) -> list[DemoRecord]:
    """The demo dataset, newest job a few minutes before ``now``."""
    rng = random.Random(seed)
    out: list[DemoRecord] = []
    for j in range(jobs):
        # Jobs every ~17 hours going back from now; the two newest are still running.
        start = (now - timedelta(minutes=12) - timedelta(hours=17 * j)).replace(microsecond=0)
        base = _base_id(start)
        n_clients = rng.randint(5, 11)
        picked = rng.sample(CLIENTS, n_clients)
        running_job = j == 0
        stale_job = j == 1
        clients: list[DemoRecord] = []
        for i, (client_id, name) in enumerate(picked):
            c_start = start + timedelta(seconds=5 + 40 * i)
            c_end = c_start + timedelta(seconds=rng.randint(20, 600))
            status = rng.choices(["Completed", "Failed", "No Leads To Score"], weights=[8, 1, 1])[0]
            fields: dict[str, Any] = {
                "run_id": f"{base}-{client_id}",
                "client_id": client_id,
                "client_name": name,
                "status": status,
                "start_time": to_airtable(c_start),
                "end_time": to_airtable(c_end),
                "last_updated": to_airtable(c_end),
                **_metrics(rng, empty=status == "No Leads To Score"),
            }
            if status == "Failed":
                fields["error_details"] = "TimeoutError: scoring API did not answer in 60 s"
            if running_job or stale_job:
                fields["status"] = "Running"
                fields.pop("end_time")
                fields["last_updated"] = to_airtable(c_start)
            clients.append(DemoRecord("client_runs", fields, c_start))
        job_fields: dict[str, Any] = {
            "run_id": base,
            "status": "Running" if (running_job or stale_job) else "Completed",
            "stream": 1 + j % 3,
            "start_time": to_airtable(start),
            "last_updated": to_airtable(start + timedelta(minutes=1)),
        }
        if not (running_job or stale_job):
            end = max(datetime.fromisoformat(c.fields["end_time"][:-1] + "+00:00") for c in clients)
            job_fields["end_time"] = to_airtable(end)
            job_fields["last_updated"] = to_airtable(end)
            job_fields.update(_aggregate(clients))
            statuses = {c.fields["status"] for c in clients}
            if statuses == {"No Leads To Score"}:
                job_fields["status"] = "No Leads To Score"
        job = DemoRecord("jobs", job_fields, start)
        _plant(j, job, clients, rng, out)
    return out


def _plant(
    j: int, job: DemoRecord, clients: list[DemoRecord], rng: random.Random, out: list[DemoRecord]
) -> None:
    """Make job number ``j`` carry one kind of inconsistency (most stay healthy)."""
    base = job.fields["run_id"]
    jf = job.fields
    if j == 1:
        job.tags.add("stale_running")
    elif j == 2:
        # Finished job whose client rows were never closed.
        clients[0].fields["status"] = "Running"
        clients[0].fields.pop("end_time", None)
        clients[0].tags.add("running_under_finished_job")
    elif j == 3:
        for key in ("clients_processed", "profiles_examined", "profile_tokens"):
            jf.pop(key, None)
        job.tags.add("missing_aggregates")
    elif j == 4:
        jf["profiles_examined"] = (jf.get("profiles_examined") or 0) + 37
        jf["clients_processed"] = (jf.get("clients_processed") or 0) + 1
        job.tags.add("wrong_aggregates")
    elif j == 5:
        jf["run_id"] = f"job_post_scoring_stream{jf['stream']}_20{base[:6]}{base[7:]}"
        job.tags.add("legacy_job_process_id")
    elif j == 6:
        epoch_ms = int(job.created_time.timestamp() * 1000)
        jf["run_id"] = f"job_post_scoring_bypass_{epoch_ms}"
        job.tags.add("legacy_bypass_id")
    elif j == 7:
        jf["run_id"] = f"{base}.0"
        job.tags.add("legacy_numeric_artefact")
    elif j == 8:
        c = clients[0]
        c.fields["run_id"] = f"{base}-{c.fields['client_id']}-{c.fields['client_id']}"
        c.tags.add("legacy_doubled_suffix")
        c2 = clients[1]
        c2.fields["run_id"] = f"{base}-apify-8MSTBAfqMzuXPvgB3"
        c2.tags.add("legacy_apify")
    elif j == 9:
        for n, c in enumerate(clients[:2]):
            # SR IDs carry only the date: the time comes from the row's Start Time, which the
            # old system set to the job's start.
            c.fields["start_time"] = jf["start_time"]
            cid = c.fields["client_id"]
            # The old "C" client prefix: on the first row only, so both forms appear.
            prefix = "C" if n == 0 else ""
            c.fields["run_id"] = f"SR-{base[:6]}-001-T3304-S1-{prefix}{cid}"
            c.tags.add("legacy_structured_sr")
    elif j == 10:
        jf["status"] = "Success"
        clients[0].fields["status"] = "completed_with_errors"
        clients[1].fields["status"] = "Error"
        job.tags.add("legacy_status")
    elif j == 11:
        clients[0].fields["status"] = "Recovery"
        clients[0].tags.add("unmappable_status")
        clients[1].fields["status"] = "  in progress "
    elif j == 12:
        # The job row was lost: its client rows are orphans.
        out.extend(clients)
        return
    elif j == 13:
        other = (
            CLIENTS[-1][0] if clients[0].fields["client_id"] != CLIENTS[-1][0] else CLIENTS[0][0]
        )
        clients[0].fields["client_id"] = other
        clients[0].tags.add("client_id_mismatch")
    elif j == 14:
        dup = DemoRecord("jobs", dict(jf), job.created_time + timedelta(seconds=1), {"duplicate"})
        dup.fields.pop("stream", None)
        dup.fields["system_notes"] = "created twice by a retried start"
        out.append(dup)
        c = clients[0]
        cdup = DemoRecord(
            "client_runs",
            {"run_id": c.fields["run_id"], "client_id": c.fields["client_id"], "status": "Running"},
            c.created_time + timedelta(seconds=2),
            {"duplicate"},
        )
        out.append(cdup)
    elif j == 15:
        clients[0].fields["profiles_examined"] = -3
        clients[1].fields["profiles_scored"] = (clients[1].fields.get("profiles_examined") or 0) + 5
        clients[1].tags.add("scored_gt_examined")
        clients[2].fields["post_tokens"] = 12.5
        clients[0].tags.add("invalid_metric")
    out.append(job)
    out.extend(clients)
