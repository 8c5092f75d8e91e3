"""Job-row writes in the outbox (issue 19): a job's notes, heartbeats and completion are
stored on the machine before the call returns, kept when Airtable refuses them, and
replayed -- aggregates recomputed from the client rows at replay time -- by the next
tracker of the machine or ``outbox replay``.

Real path: pyairtable → HTTP → the local server; real processes for SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobtrack_airtable.admin.outbox import apply_drop, outbox_status, plan_drop, replay_outbox
from jobtrack_airtable.errors import AuthenticationError, PermissionDeniedError, UnknownFieldError
from jobtrack_airtable.outbox import SqliteOutbox
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import (
    EXAMINED,
    JT,
    client_rows,
    held_requests_applied,
    job_row,
    make_conn,
    mid_run,
    rename_field,
)

WORKER = Path(__file__).with_name("outbox_job_worker.py")


def _entries(srv: TrackingServer) -> list[Any]:
    return SqliteOutbox(srv.outbox_path).entries()


def _replay(srv: TrackingServer, by: str) -> None:
    """What a later process of the machine does: open a tracker, or ``outbox replay``."""
    if by == "tracker":
        Tracker(make_conn(srv)).close()
    else:
        replay_outbox(make_conn(srv))


def _assert_completed(srv: TrackingServer, base: str, truth: dict[str, int]) -> None:
    rows = client_rows(srv, base)
    assert {k: (r[EXAMINED], r["Status"]) for k, r in rows.items()} == {
        k: (v, "Completed") for k, v in truth.items()
    }
    job = job_row(srv, base)
    assert job["Status"] == "Completed"
    assert job["Total Profiles Examined"] == sum(truth.values())
    assert job["Clients Processed"] == len(truth)
    assert job.get("End Time")
    assert _entries(srv) == []


@pytest.mark.parametrize("by", ["tracker", "replay"])
def test_a_completion_refused_by_a_revoked_token_is_finished_by_a_later_process(
    local_airtable: TrackingServer, by: str
) -> None:
    tracker, job, runs = mid_run(local_airtable)
    for run in runs:
        run.close()
    token = local_airtable.token
    local_airtable.set_token("revoked-token")
    with pytest.raises(AuthenticationError):
        job.complete()
    with pytest.raises(AuthenticationError):
        tracker.close()  # tries the completion again: still refused, still kept
    [entry] = [e for e in _entries(local_airtable) if e.table == "jobs"]
    assert entry.run_id == str(job.run_id)
    assert "AuthenticationError" in (entry.error or "")
    local_airtable.set_token(token)
    _replay(local_airtable, by)
    _assert_completed(local_airtable, str(job.run_id), {"A": 15, "B": 15, "C": 15, "D": 15})


def test_a_refused_job_write_is_retried_at_the_next_synchronous_point(
    local_airtable: TrackingServer,
) -> None:
    # Only the job's write is refused: the client rows land, the completion stays pending.
    tracker, job, runs = mid_run(local_airtable)
    for run in runs:
        run.close()
    local_airtable.faults.add("403", method="PATCH", path="Job", times=1000)
    with pytest.raises(PermissionDeniedError):
        job.complete()
    assert job_row(local_airtable, str(job.run_id))["Status"] == "Running"
    local_airtable.faults.clear()
    tracker.flush()
    _assert_completed(local_airtable, str(job.run_id), {"A": 15, "B": 15, "C": 15, "D": 15})
    notes = job_row(local_airtable, str(job.run_id))["System Notes"]
    assert notes.count("completed") <= 1  # the intent's lines written once
    tracker.close()


def _spawn(srv: TrackingServer, mode: str) -> tuple[subprocess.Popen[str], str]:
    """The worker process, once it recorded its clients: it and its job's run ID."""
    environ = {
        **os.environ,
        "AIRTABLE_API_KEY": srv.token,
        "AIRTABLE_BASE_ID": srv.base_id,
        "JOBTRACK_ENDPOINT_URL": srv.url,
        "JOBTRACK_RATE_LIMIT": "0",
        "JOBTRACK_OUTBOX_URL": f"sqlite:///{srv.outbox_path}",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), mode],
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    return proc, proc.stdout.readline().strip()


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def test_sigkill_right_after_complete_returned_leaves_a_completed_job_and_no_entry(
    local_airtable: TrackingServer,
) -> None:
    proc, base = _spawn(local_airtable, "returned")
    _go(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "completed"
    _kill(proc)
    _assert_completed(local_airtable, base, {"A": 10, "B": 5})
    local_airtable.request_log.clear()
    _replay(local_airtable, "replay")  # nothing left to do: no request to the job
    assert not [e for e in local_airtable.request_log.entries if "Job" in e.path]


@pytest.mark.parametrize(
    ("by", "held"), [("tracker", "Job"), ("replay", "Job"), ("tracker", "Client")]
)
def test_sigkill_while_the_completion_is_in_flight_is_finished_by_a_later_process(
    local_airtable: TrackingServer, by: str, held: str
) -> None:
    # The server holds the job's final write (or the client closes the completion sends
    # first); the worker dies while it waits for it.
    local_airtable.faults.add("delay", delay=3.0, method="PATCH", path=held, times=1)
    proc, base = _spawn(local_airtable, "inflight")
    _go(proc)
    deadline = time.monotonic() + 60
    while not any(e.fault == "delay" for e in local_airtable.request_log.entries):
        assert time.monotonic() < deadline, "the completion was never sent"
        time.sleep(0.02)
    _kill(proc)
    [entry] = [e for e in _entries(local_airtable) if e.table == "jobs"]
    assert entry.run_id == base
    _replay(local_airtable, by)
    held_requests_applied(local_airtable)
    _assert_completed(local_airtable, base, {"A": 10, "B": 5})


def test_sigkill_before_the_client_rows_landed_completes_with_exact_aggregates(
    local_airtable: TrackingServer,
) -> None:
    # Every write refused while the worker completes (warn mode: complete() returns), then
    # the process dies: client closes and the completion are only in the outbox.
    token = local_airtable.token
    proc, base = _spawn(local_airtable, "warn")
    local_airtable.set_token("revoked-token")
    _go(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "completed"
    _kill(proc)
    local_airtable.set_token(token)
    assert job_row(local_airtable, base)["Status"] == "Running"
    _replay(local_airtable, "tracker")
    _assert_completed(local_airtable, base, {"A": 10, "B": 5})


def _note_refused(srv: TrackingServer, text: str) -> tuple[Tracker, Any, Callable[[], Any]]:
    """A job whose note ``text`` was refused: System Notes renamed without ``schema pin``
    (422 UNKNOWN_FIELD_NAME); and what renames it back."""
    tracker = Tracker(make_conn(srv))
    job = tracker.job()
    api = srv.api()
    rename_field(api, srv.base_id, JT, "System Notes", "Notes Renamed")
    with pytest.raises(UnknownFieldError):
        job.note(text)
    [entry] = _entries(srv)
    assert text in entry.payload
    with pytest.raises(UnknownFieldError):
        tracker.flush()  # the next synchronous point: still refused, still kept
    return (
        tracker,
        job,
        lambda: rename_field(api, srv.base_id, JT, "Notes Renamed", "System Notes"),
    )


def test_a_job_note_refused_by_an_unknown_field_is_kept_and_lands(
    local_airtable: TrackingServer,
) -> None:
    tracker, job, fix = _note_refused(local_airtable, "halfway: 40 clients scored")
    with pytest.raises(UnknownFieldError):
        tracker.close()  # still refused: left for the next tracker of the machine
    [entry] = _entries(local_airtable)
    assert entry.error is not None and entry.error.startswith("UnknownFieldError")
    fix()
    _replay(local_airtable, "tracker")
    row = job_row(local_airtable, str(job.run_id))
    assert row["System Notes"].count("halfway: 40 clients scored") == 1
    assert row["Status"] == "Running"  # a note, not a completion
    assert _entries(local_airtable) == []


def test_a_job_note_refused_lands_with_the_completion(local_airtable: TrackingServer) -> None:
    tracker, job, fix = _note_refused(local_airtable, "halfway")
    fix()
    job.complete()
    tracker.close()
    row = job_row(local_airtable, str(job.run_id))
    assert row["System Notes"].count("halfway") == 1
    assert _entries(local_airtable) == []


def test_outbox_status_shows_a_refused_completion_and_drop_discards_it(
    local_airtable: TrackingServer,
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    local_airtable.faults.add("403", method="PATCH", path="Job", times=1000)
    with pytest.raises(PermissionDeniedError):
        job.complete(note="all scored")
    [item] = outbox_status(SqliteOutbox(local_airtable.outbox_path), local_airtable.base_id)
    assert (item.table, item.run_id, item.status) == (
        "jobs",
        str(job.run_id),
        "(by the client rows)",
    )
    assert item.error is not None and item.error.startswith("PermissionDeniedError")
    store = SqliteOutbox(local_airtable.outbox_path)
    plan = plan_drop(store, local_airtable.base_id, [str(job.run_id)])
    assert apply_drop(store, plan) == 1
    assert store.entries() == []
    # This process still holds the job: once the base accepts, its close finishes it.
    local_airtable.faults.clear()
    tracker.close()
    assert job_row(local_airtable, str(job.run_id))["Status"] == "No Leads To Score"
