"""``tracker.job(exclusive=True)``: the completion aggregates the client rows Airtable
acknowledged instead of reading them back, only while that is known to be all of them.

Counted from the local server's request log (pyairtable → HTTP → the local server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jobtrack_airtable.aggregation import aggregate
from jobtrack_airtable.errors import InvalidInputError
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import job_row, make_conn


def _reads_of_client_rows(srv: TrackingServer) -> int:
    return sum(1 for e in srv.request_log.entries if e.method == "GET" and "Client" in e.path)


def _job_of_three(srv: TrackingServer) -> tuple[Tracker, object]:
    tracker = Tracker(make_conn(srv))
    job = tracker.job(exclusive=True)
    for cid, examined in (("A", 4), ("B", 5), ("C", 6)):
        with job.client(cid) as run:
            run.add(profiles_examined=examined)
    return tracker, job


def test_an_exclusive_job_completes_from_the_acknowledged_rows(
    local_airtable: TrackingServer,
) -> None:
    tracker, job = _job_of_three(local_airtable)
    tracker.flush()
    local_airtable.request_log.clear()
    job.complete()  # type: ignore[attr-defined]
    assert _reads_of_client_rows(local_airtable) == 0
    assert local_airtable.request_log.total == 2  # the job row read, then written
    row = job_row(local_airtable, str(job.run_id))  # type: ignore[attr-defined]
    assert (row["Status"], row["Total Profiles Examined"], row["Clients Processed"]) == (
        "Completed",
        15,
        3,
    )
    tracker.close()


def test_a_client_opened_by_another_path_makes_the_completion_read_back(
    local_airtable: TrackingServer,
) -> None:
    tracker, job = _job_of_three(local_airtable)
    with tracker.client(job.run_id, "D") as run:  # type: ignore[attr-defined]
        run.add(profiles_examined=100)
    tracker.flush()
    local_airtable.request_log.clear()
    job.complete()  # type: ignore[attr-defined]
    assert _reads_of_client_rows(local_airtable) == 1
    row = job_row(local_airtable, str(job.run_id))  # type: ignore[attr-defined]
    assert (row["Total Profiles Examined"], row["Clients Processed"]) == (115, 4)
    tracker.close()


def _reopen(tracker: Tracker, job: Any, run: Any) -> int:
    """The second open of A meets its row (written at once, not a new row)."""
    with job.client("A", force=True) as again:
        again.add(profiles_examined=2)
    return 5


def _attach(tracker: Tracker, job: Any, run: Any) -> int:
    """Another object now holds A's row (it may write it)."""
    tracker.flush()
    tracker.attach_client_run(run.run_id)
    return 3


@pytest.mark.parametrize("other_open", [_reopen, _attach])
def test_a_row_opened_again_makes_the_completion_read_back(
    local_airtable: TrackingServer, other_open: Callable[[Tracker, Any, Any], int]
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job(exclusive=True)
    with job.client("A") as run:
        run.add(profiles_examined=3)
    total = other_open(tracker, job, run)  # the job no longer knows all of its rows
    tracker.flush()
    local_airtable.request_log.clear()
    job.complete()
    assert _reads_of_client_rows(local_airtable) == 1
    assert job_row(local_airtable, str(job.run_id))["Total Profiles Examined"] == total
    tracker.close()


def test_the_acknowledged_rows_are_what_a_read_back_finds(
    local_airtable: TrackingServer,
) -> None:
    # Another writer fails a run while it is open; the worker's close lands after it: the
    # job counts what Airtable holds after that close, exactly as a read-back would.
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job(exclusive=True)
    runs = job.open_clients(["A", "B"])
    for run in runs:
        run.add(profiles_examined=3)
    tracker.flush()
    local_airtable.table("client_runs").update(runs[0].record_id, {"Status": "Failed"})
    runs[0].close()
    runs[1].fail("scoring crashed")
    job.complete()
    stored = aggregate(tracker.client_runs(job.run_id))
    row = job_row(local_airtable, str(job.run_id))
    assert row["Clients With Errors"] == stored.clients_with_errors == 1
    assert row["Total Profiles Examined"] == stored.profiles_examined == 6
    assert row["Clients Processed"] == 2
    tracker.close()


def test_exclusive_must_be_a_bool(local_airtable: TrackingServer) -> None:
    tracker = Tracker(make_conn(local_airtable))
    local_airtable.request_log.clear()
    with pytest.raises(InvalidInputError, match="exclusive must be True or False, got 'yes'"):
        tracker.job(exclusive="yes")  # type: ignore[arg-type]
    assert local_airtable.request_log.total == 0
    tracker.close()
