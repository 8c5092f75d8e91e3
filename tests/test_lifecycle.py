"""No writes to ended things (issue 21): a closed run, an ended job and a closed tracker refuse
changes with a typed error before any request, and a job never ends over open client runs.

Through the real path (pyairtable → HTTP → the local server); request counts from its log.
"""

from __future__ import annotations

import pytest

from jobtrack_airtable.errors import (
    EndedError,
    JobEndedError,
    RunClosedError,
    TrackerClosedError,
)
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import CRR_TABLE, JOB_TABLE, make_conn, rows


@pytest.fixture
def tracker(local_airtable: LocalAirtable) -> Tracker:
    return Tracker(make_conn(local_airtable))


def _fields(srv: LocalAirtable, table: str) -> list[dict]:
    return [r["fields"] for r in rows(srv, table)]


@pytest.mark.parametrize(
    ("call", "action"),
    [
        (lambda run: run.add(profiles_examined=100), "add"),
        (lambda run: run.set(apify_costs=1.5), "set"),
        (lambda run: run.note("late line"), "note"),
    ],
)
def test_a_closed_run_refuses_changes_before_any_request(
    tracker: Tracker, local_airtable: LocalAirtable, call: object, action: str
) -> None:
    job = tracker.job()
    run = job.client("Guy-Wilson")
    run.add(profiles_examined=5)
    run.close(wait=True)
    log = local_airtable.request_log
    log.clear()
    expected = rf"'{job.run_id}-Guy-Wilson' is closed \(Completed\); {action}\(\)"
    with pytest.raises(RunClosedError, match=expected):
        call(run)  # type: ignore[operator]
    tracker.flush()
    assert log.total == 0
    [row] = _fields(local_airtable, CRR_TABLE)
    assert row["Profiles Examined for Scoring"] == 5  # not 105
    assert row.get("Apify API Costs") is None
    assert "late line" not in row.get("System Notes", "")


def test_a_run_closed_inside_its_with_block_refuses_adds(tracker: Tracker) -> None:
    job = tracker.job()
    with job.client("Guy-Wilson") as run:
        run.add(profiles_examined=1)
        run.close()
        with pytest.raises(EndedError):
            run.add(profiles_examined=1)
    assert run.status is Status.COMPLETED  # the block's end did not close it twice


def test_a_failed_run_refuses_changes_too(tracker: Tracker) -> None:
    job = tracker.job()
    run = job.client("Guy-Wilson")
    run.fail("boom")
    with pytest.raises(RunClosedError, match=r"\(Failed\)"):
        run.add(profiles_examined=1)


def test_a_reopened_run_continues(tracker: Tracker, local_airtable: LocalAirtable) -> None:
    job = tracker.job()
    with job.client("Guy-Wilson") as run:
        run.add(profiles_examined=5)
    with job.client("Guy-Wilson", force=True) as again:  # the supported way to continue
        again.add(profiles_examined=2)
    tracker.flush()
    [row] = _fields(local_airtable, CRR_TABLE)
    assert row["Profiles Examined for Scoring"] == 7


def test_client_on_a_completed_job_is_refused(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    job = tracker.job()
    job.complete()
    log = local_airtable.request_log
    log.clear()
    with pytest.raises(JobEndedError, match=rf"job '{job.run_id}' has ended \(No Leads To Score\)"):
        job.client("Late-Client")
    with pytest.raises(JobEndedError):
        job.open_clients(["A", "B"])
    tracker.flush()
    assert log.total == 0
    assert _fields(local_airtable, CRR_TABLE) == []


def test_client_on_an_attached_ended_job_is_refused(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    job = tracker.job()
    job.fail("gave up")
    other = Tracker(make_conn(local_airtable))
    attached = other.attach_job(job.run_id)
    with pytest.raises(JobEndedError, match=r"\(Failed\)"):
        attached.client("Late-Client")
    other.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.job(),
        lambda t: t.attach_job("250930-141522"),
        lambda t: t.client("250930-141522", "Guy-Wilson"),
        lambda t: t.open_clients("250930-141522", ["Guy-Wilson"]),
        lambda t: t.attach_client_run("250930-141522-Guy-Wilson"),
    ],
    ids=["job", "attach_job", "client", "open_clients", "attach_client_run"],
)
def test_a_closed_tracker_refuses_new_work_before_any_request(
    local_airtable: LocalAirtable, call: object
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    tracker.close()
    log = local_airtable.request_log
    log.clear()
    with pytest.raises(TrackerClosedError, match="the tracker is closed"):
        call(tracker)  # type: ignore[operator]
    assert log.total == 0
    assert _fields(local_airtable, JOB_TABLE) == []


def test_a_job_of_a_closed_tracker_cannot_open_clients_or_complete(
    local_airtable: LocalAirtable,
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    run = job.client("Guy-Wilson")
    tracker.close()
    with pytest.raises(TrackerClosedError):
        job.client("Other")
    with pytest.raises(TrackerClosedError):
        job.complete()
    with pytest.raises(TrackerClosedError, match="Guy-Wilson"):
        run.add(profiles_examined=1)


def test_complete_closes_open_client_runs_as_failed(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    job = tracker.job()
    done = job.client("Done")
    done.add(profiles_examined=3)
    done.close()
    forgotten = job.client("Forgotten")
    forgotten.add(profiles_examined=2)
    row = job.complete()
    assert forgotten.status is Status.FAILED
    by_client = {f["Client ID"]: f for f in _fields(local_airtable, CRR_TABLE)}
    assert by_client["Done"]["Status"] == "Completed"
    assert by_client["Forgotten"]["Status"] == "Failed"
    assert by_client["Forgotten"]["Error Details"] == f"still open when job {job.run_id} completed"
    assert by_client["Forgotten"]["Profiles Examined for Scoring"] == 2
    # The job's aggregates count it as it is stored: one of two clients with errors.
    assert row.status is Status.COMPLETED
    assert row.aggregates["clients_with_errors"] == 1
    assert row.aggregates["profiles_examined"] == 5
    with pytest.raises(RunClosedError):
        forgotten.add(profiles_examined=1)


def test_a_failing_job_block_fails_its_open_runs_with_its_error(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    with pytest.raises(RuntimeError), tracker.job() as job:
        run = job.client("Guy-Wilson")
        run.add(profiles_examined=1)
        raise RuntimeError("scraper down")
    [row] = _fields(local_airtable, CRR_TABLE)
    assert row["Status"] == "Failed"
    assert row["Error Details"] == f"job {job.run_id} failed: RuntimeError: scraper down"
    assert _fields(local_airtable, JOB_TABLE)[0]["Status"] == "Failed"
