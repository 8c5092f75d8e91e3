"""The naive baseline: plain pyairtable, written the way the original Node.js system worked.

This is what the benchmarks compare the library against, on the same workload (the plans of
:mod:`examples.lead_scoring_worker`).  It is deliberately faithful to the original, not a
strawman and not a fix:

* ``pyairtable.Api(token, endpoint_url=...)`` with pyairtable's **default** retry strategy
  (429 retried 5 times within ~3 s, then ``RetryError``) and no timeout, no client-side
  rate limiter;
* every write is **look up the row by formula, then create or update it** (the
  check-then-create that made duplicate rows), one record per request;
* metrics are incremented by **read-modify-write** per chunk (read the row, add, write the
  sum back) -- the pattern that lost counts to overwrites and doubled them on retries;
* completion lists the job's client rows with ``FIND(run_id, {Run ID})``, sums them in the
  process, looks the job row up and updates it;
* field names are literals and formula values are interpolated, as in the original (the
  workload's IDs contain no quotes, so the formulas stay valid).

Errors are caught per operation and logged, as the original's "recovery strategies" did, so a
worker keeps going (and keeps hitting the rate limit) rather than stopping at the first 429.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyairtable
import requests

from examples.lead_scoring_worker import (
    JOB_SUM_METRICS,
    ClientPlan,
    ClientTruth,
    JobTruth,
    ScoringError,
    score_chunk,
)
from jobtrack_airtable import Status

__all__ = ["FIELD", "JOB_FIELD", "NaiveTracker", "naive_api", "run_naive_job"]

log = logging.getLogger("naive_baseline")

JOBS = "Job Tracking"
CRR = "Client Run Results"
#: Client Run Results field names, hard-coded as the original did.
FIELD = {
    "run_id": "Run ID",
    "client_id": "Client ID",
    "client_name": "Client Name",
    "status": "Status",
    "start_time": "Start Time",
    "end_time": "End Time",
    "error_details": "Error Details",
    "profiles_examined": "Profiles Examined for Scoring",
    "profiles_scored": "Profiles Successfully Scored",
    "profile_tokens": "Profile Scoring Tokens",
    "posts_examined": "Posts Examined for Scoring",
    "posts_scored": "Posts Successfully Scored",
    "post_tokens": "Post Scoring Tokens",
    "profiles_submitted": "Profiles Submitted for Post Harvesting",
    "posts_harvested": "Total Posts Harvested",
    "apify_costs": "Apify API Costs",
    "apify_run_id": "Apify Run ID",
}
#: Job Tracking aggregate field names.
JOB_FIELD = {
    "clients_processed": "Clients Processed",
    "clients_with_errors": "Clients With Errors",
    "profiles_examined": "Total Profiles Examined",
    "profiles_scored": "Successful Profiles",
    "posts_harvested": "Total Posts Harvested",
    "posts_examined": "Posts Examined for Scoring",
    "posts_scored": "Posts Successfully Scored",
    "profile_tokens": "Profile Scoring Tokens",
    "post_tokens": "Post Scoring Tokens",
}

#: Called with the name of the operation about to run (``start``, ``open``, ``increments``,
#: ``close``, ``complete``) so the harness can attribute requests to operations.
PhaseHook = Callable[[str], None]


def naive_api(token: str, endpoint_url: str) -> pyairtable.Api:
    """``pyairtable.Api`` as the original would build it: default retries, no timeout."""
    return pyairtable.Api(token, endpoint_url=endpoint_url)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class DeadlineReached(Exception):
    """The benchmark's time is up: abandon the job (like a worker being stopped)."""


class NaiveTracker:
    """The original's job tracking, in pyairtable.  Every method is one logical operation;
    failures are logged and counted, never raised (the original swallowed them too)."""

    def __init__(
        self,
        api: pyairtable.Api,
        base_id: str,
        *,
        on_phase: PhaseHook | None = None,
        deadline: float | None = None,
    ) -> None:
        self.jobs = api.table(base_id, JOBS)
        self.crr = api.table(base_id, CRR)
        self.on_phase = on_phase
        self.deadline = deadline
        #: Operations that failed (after pyairtable's own retries).
        self.errors = 0

    def _phase(self, name: str) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise DeadlineReached
        if self.on_phase is not None:
            self.on_phase(name)

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (requests.RequestException, pyairtable.exceptions.PyAirtableError) as exc:
            self.errors += 1
            log.warning("%s failed: %s", what, type(exc).__name__)
            return None

    def _find(self, table: pyairtable.Table, run_id: str) -> dict[str, Any] | None:
        # The original interpolated the value into the formula (no escaping).
        return table.first(formula=f"{{Run ID}} = '{run_id}'")

    def _write(self, table: pyairtable.Table, run_id: str, fields: dict[str, Any]) -> None:
        """Check-then-create: look the row up, then update it or create it."""
        found = self._find(table, run_id)
        if found is None:
            table.create({"Run ID": run_id, **fields})
        else:
            table.update(found["id"], fields)

    # -- the operations ----------------------------------------------------------------------

    def start_job(self, stream: int) -> str:
        self._phase("start")
        run_id = datetime.now(UTC).strftime("%y%m%d-%H%M%S")
        fields = {"Status": "Running", "Stream": stream, "Start Time": _now()}
        self._guard("start job", lambda: self._write(self.jobs, run_id, fields))
        return run_id

    def open_client(self, run_id: str, plan: ClientPlan) -> None:
        self._phase("open")
        fields = {
            FIELD["client_id"]: plan.client_id,
            FIELD["client_name"]: plan.name,
            FIELD["status"]: "Running",
            FIELD["start_time"]: _now(),
        }
        self._guard("open client run", lambda: self._write(self.crr, run_id, fields))

    def increment(self, run_id: str, increments: dict[str, int]) -> None:
        """Read-modify-write: read the row, add the increments, write the sums back."""
        self._phase("increments")

        def rmw() -> None:
            row = self._find(self.crr, run_id)
            if row is None:
                return
            current = row["fields"]
            fields = {
                FIELD[k]: int(current.get(FIELD[k], 0) or 0) + v for k, v in increments.items()
            }
            self.crr.update(row["id"], fields)

        self._guard("increment metrics", rmw)

    def close_client(self, run_id: str, status: Status, extra: dict[str, Any]) -> None:
        self._phase("close")
        fields = {FIELD["status"]: status.value, FIELD["end_time"]: _now(), **extra}
        self._guard("close client run", lambda: self._write(self.crr, run_id, fields))

    def complete_job(self, run_id: str) -> None:
        self._phase("complete")

        def complete() -> None:
            rows = self.crr.all(formula=f"FIND('{run_id}', {{Run ID}})")
            sums = dict.fromkeys(JOB_SUM_METRICS, 0)
            failed = completed = 0
            for row in rows:
                f = row["fields"]
                for key in JOB_SUM_METRICS:
                    sums[key] += int(f.get(FIELD[key], 0) or 0)
                failed += f.get("Status") == "Failed"
                completed += f.get("Status") == "Completed"
            status = "Completed" if completed else ("Failed" if failed else "No Leads To Score")
            fields = {JOB_FIELD[k]: v for k, v in sums.items()}
            fields[JOB_FIELD["clients_processed"]] = len(rows)
            fields[JOB_FIELD["clients_with_errors"]] = failed
            fields.update({"Status": status, "End Time": _now()})
            self._write(self.jobs, run_id, fields)

        self._guard("complete job", complete)


def run_naive_job(
    naive: NaiveTracker,
    plans: Sequence[ClientPlan],
    *,
    stream: int = 1,
    chunk_seconds: float = 0.0,
) -> JobTruth:
    """The worker of :func:`examples.lead_scoring_worker.run_job`, tracked the naive way.

    Same plans, same chunks, same failures; returns the same kind of ground truth.  Raises
    :class:`DeadlineReached` if the tracker's deadline passes (the job is abandoned).
    """
    run_id = naive.start_job(stream)
    truth = JobTruth(run_id=run_id, stream=stream)
    for plan in plans:
        client_run_id = f"{run_id}-{plan.client_id}"
        ct = ClientTruth(plan.client_id, client_run_id, Status.COMPLETED, {})
        ct.opened_at = time.monotonic()
        truth.clients.append(ct)
        naive.open_client(client_run_id, plan)
        extra: dict[str, Any] = {}
        try:
            for index in range(len(plan.chunks)):
                increments = score_chunk(plan, index, chunk_seconds=chunk_seconds)
                for key, value in increments.items():
                    ct.totals[key] = ct.totals.get(key, 0) + value
                ct.increments += 1
                naive.increment(client_run_id, increments)
            if not plan.has_leads:
                ct.status = Status.NO_LEADS
            if plan.apify_costs is not None:
                ct.apify_costs = plan.apify_costs
                extra = {
                    FIELD["apify_costs"]: float(plan.apify_costs),
                    FIELD["apify_run_id"]: plan.apify_run_id,
                }
        except ScoringError as exc:
            ct.status = Status.FAILED
            extra = {FIELD["error_details"]: str(exc)}
        naive.close_client(client_run_id, ct.status, extra)
        ct.closed_at = time.monotonic()
    naive.complete_job(run_id)
    return truth
