"""A tracking outage never breaks the business job unless asked (issue 19, item 7):
``JOBTRACK_ON_TRACKING_ERROR=warn`` lets a scoring run that succeeded finish while the tracking
base is gone; in the default ``raise`` mode the tracking error reaches the caller, but leaving
a ``with`` block never replaces the worker's own exception with it.  The outage is real: the
local server stops mid-run (connection refused)."""

from __future__ import annotations

import logging

import pydantic
import pytest

from jobtrack_airtable.errors import AuthenticationError, EndpointUnreachableError
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import CRR_TABLE, rows


def _tracker(srv: TrackingServer, **settings: object) -> Tracker:
    conn = Connection.from_settings(
        srv.settings(flush_interval=3600.0, **settings), policy=DEFAULT_POLICY.scaled(0.01)
    )
    return Tracker(conn)


def _score(srv: TrackingServer, tracker: Tracker, scored: list[str]) -> None:
    """A scoring run whose tracking base goes away mid-run."""
    with tracker, tracker.job() as job, job.client("Guy-Wilson") as run:
        run.add(profiles_examined=10)
        run.flush()
        srv.stop()
        run.add(profiles_examined=5)
        scored.append("Guy-Wilson")


def test_in_warn_mode_a_tracking_outage_never_crashes_a_successful_run(
    local_airtable: TrackingServer, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = _tracker(local_airtable, on_tracking_error="warn")
    assert tracker.on_tracking_error == "warn"
    scored: list[str] = []
    with caplog.at_level(logging.WARNING, logger="jobtrack_airtable"):
        _score(local_airtable, tracker, scored)
    assert scored == ["Guy-Wilson"]
    warned = [
        r.getMessage() for r in caplog.records if "JOBTRACK_ON_TRACKING_ERROR=warn" in r.message
    ]
    assert any("completing job" in m and "EndpointUnreachableError" in m for m in warned)
    # What landed before the outage is there; nothing after it pretended to.
    [row] = rows(local_airtable, CRR_TABLE)
    assert row["fields"]["Profiles Examined for Scoring"] == 10
    assert row["fields"]["Status"] == "Running"


def test_warn_mode_keeps_the_changes_pending_for_the_next_drain(
    local_airtable: TrackingServer,
) -> None:
    tracker = _tracker(local_airtable, on_tracking_error="warn")
    job = tracker.job()
    run = job.client("Guy-Wilson")
    run.add(profiles_examined=10)
    # The base drops every connection for a while (a network outage).
    local_airtable.faults.add("drop", probability=1.0)
    run.close()
    job.note("scored while the base was away")  # warned, not raised
    job.heartbeat()
    tracker.flush()
    assert run.close(wait=True) is None
    assert job.complete() is None and job.status.value == "Running"
    local_airtable.faults.clear()
    tracker.flush()
    [row] = rows(local_airtable, CRR_TABLE)
    assert row["fields"]["Status"] == "Completed"
    assert row["fields"]["Profiles Examined for Scoring"] == 10
    completed = job.complete()
    assert completed is not None and completed.status is not None
    assert completed.status.value == "Completed"
    assert completed.system_notes is not None
    assert "scored while the base was away" in completed.system_notes  # kept, then written
    tracker.close()


def test_warn_mode_never_completes_a_job_from_client_rows_whose_writes_failed(
    local_airtable: TrackingServer,
) -> None:
    tracker = _tracker(local_airtable, on_tracking_error="warn")
    job = tracker.job()
    with job.client("Guy-Wilson") as run:
        run.add(profiles_examined=10)
    # Only the client rows' writes fail; the job row could be written.
    local_airtable.faults.add(
        "drop", method="PATCH", path="Client%20Run%20Results", probability=1.0
    )
    assert job.complete() is None
    [job_row] = rows(local_airtable, "Job Tracking")
    assert job_row["fields"]["Status"] == "Running"  # not Completed with 0 profiles
    local_airtable.faults.clear()
    completed = job.complete()
    assert completed is not None and completed.aggregates["profiles_examined"] == 10
    tracker.close()


@pytest.mark.parametrize("mode", ["warn", "raise"])
def test_a_token_revoked_mid_run(local_airtable: TrackingServer, mode: str) -> None:
    tracker = _tracker(local_airtable, on_tracking_error=mode)
    scored: list[str] = []

    def score() -> None:
        with tracker, tracker.job() as job, job.client("Guy-Wilson") as run:
            run.add(profiles_examined=10)
            run.flush()
            # The token is revoked: the server answers 401 AUTHENTICATION_REQUIRED from now on.
            tracker.conn.api.api_key = "revoked-token-not-secret"
            run.add(profiles_examined=5)
            scored.append("Guy-Wilson")

    if mode == "warn":
        score()
    else:
        with pytest.raises(AuthenticationError):
            score()
    assert scored == ["Guy-Wilson"]
    assert 401 in [e.status for e in local_airtable.request_log.entries]


def test_in_raise_mode_the_business_exception_is_the_one_that_propagates(
    local_airtable: TrackingServer,
) -> None:
    tracker = _tracker(local_airtable)  # the default mode: raise
    with (
        pytest.raises(ValueError, match="scoring bug"),
        tracker,
        tracker.job() as job,
        job.client("Guy-Wilson") as run,
    ):
        run.add(profiles_examined=10)
        local_airtable.stop()
        raise ValueError("scoring bug")


def test_in_raise_mode_a_tracking_outage_is_raised_typed_at_the_end(
    local_airtable: TrackingServer,
) -> None:
    scored: list[str] = []
    with pytest.raises(EndpointUnreachableError):
        _score(local_airtable, _tracker(local_airtable), scored)
    assert scored == ["Guy-Wilson"]


def test_the_setting_comes_from_the_environment_and_refuses_other_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBTRACK_ON_TRACKING_ERROR", "warn")
    assert Settings(_env_file=None).on_tracking_error == "warn"
    monkeypatch.setenv("JOBTRACK_ON_TRACKING_ERROR", "ignore")
    with pytest.raises(pydantic.ValidationError, match="JOBTRACK_ON_TRACKING_ERROR") as info:
        Settings(_env_file=None)
    assert "'ignore'" in str(info.value)
