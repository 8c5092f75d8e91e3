"""Group commit of client-run writes across real processes (issue 11): SIGTERM and
interpreter exit drain pending writes; a SIGKILL between a close and its batch loses at most
that interval, duplicates nothing, and a restarted worker converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import CRR_TABLE, by_key, make_conn, rows

WORKER = Path(__file__).with_name("group_commit_worker.py")


def _spawn(
    srv: LocalAirtable,
    mode: str,
    base: str,
    *,
    worker: Path = WORKER,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``worker`` run as a process with settings pointing at ``srv`` (and ``env``), once it
    printed ``ready``."""
    environ = {
        **os.environ,
        "AIRTABLE_API_KEY": srv.token,
        "AIRTABLE_BASE_ID": srv.base_id,
        "JOBTRACK_ENDPOINT_URL": srv.url,
        "JOBTRACK_RATE_LIMIT": "0",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, str(worker), mode, base],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    return proc


def _started(srv: LocalAirtable) -> tuple[Tracker, str]:
    tracker = Tracker(make_conn(srv))
    return tracker, str(tracker.job().run_id)


def _client_rows(srv: LocalAirtable, base: str) -> dict[str, dict]:
    keys = by_key(srv, CRR_TABLE)
    assert all(len(v) == 1 for v in keys.values()), keys  # nothing duplicated
    return {k.removeprefix(f"{base}-"): v[0] for k, v in keys.items()}


def test_sigterm_drains_pending_writes(local_airtable: LocalAirtable) -> None:
    _, base = _started(local_airtable)
    proc = _spawn(local_airtable, "pending", base)
    before = _client_rows(local_airtable, base)
    assert "Profiles Examined for Scoring" not in before["A"]  # still pending in the worker
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM  # it still dies of SIGTERM
    after = _client_rows(local_airtable, base)
    assert after["A"]["Status"] == "Completed"
    assert after["A"]["Profiles Examined for Scoring"] == 7
    assert after["B"]["Status"] == "Running"
    assert after["B"]["Profiles Examined for Scoring"] == 4


def test_interpreter_exit_drains_pending_writes(local_airtable: LocalAirtable) -> None:
    _, base = _started(local_airtable)
    proc = _spawn(local_airtable, "exit", base)
    assert proc.wait(timeout=60) == 0
    after = _client_rows(local_airtable, base)
    assert after["A"]["Status"] == "Completed"
    assert after["A"]["Profiles Examined for Scoring"] == 7
    assert after["B"]["Profiles Examined for Scoring"] == 4


def test_sigkill_between_a_close_and_its_batch_loses_one_interval_and_converges(
    local_airtable: LocalAirtable,
) -> None:
    _tracker, base = _started(local_airtable)
    proc = _spawn(local_airtable, "flushed", base)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    [row] = _client_rows(local_airtable, base).values()
    # The flushed interval landed; the last one (3 more, the close) is what SIGKILL lost.
    assert row["Status"] == "Running"
    assert row["Profiles Examined for Scoring"] == 5
    # The restarted worker re-opens the run, resumes from what is stored, and closes it.
    restarted = Tracker(make_conn(local_airtable))
    with restarted.client(base, "A") as run:
        done = run.totals.profiles_examined or 0
        run.add(profiles_examined=8 - done)
    restarted.flush()
    [row] = _client_rows(local_airtable, base).values()
    assert row["Status"] == "Completed"
    assert row["Profiles Examined for Scoring"] == 8
    job = restarted.attach_job(base).complete()
    assert job.aggregates["profiles_examined"] == 8
    assert len(rows(local_airtable, CRR_TABLE)) == 1


def test_the_background_commit_writes_within_the_interval_without_being_asked(
    local_airtable: LocalAirtable,
) -> None:
    import time

    tracker = Tracker(make_conn(local_airtable, flush_interval=0.05))
    job = tracker.job()
    runs = job.open_clients([f"C-{i}" for i in range(12)])
    for r in runs:
        r.add(profiles_examined=3)
    deadline = time.monotonic() + 30  # a bound for a loaded machine, not a timing assertion
    while time.monotonic() < deadline:
        stored = by_key(local_airtable, CRR_TABLE)
        if len(stored) == 12 and all(
            v[0].get("Profiles Examined for Scoring") == 3 for v in stored.values()
        ):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the group commit never wrote the pending runs")
    # The 12 opens were handed over together: the first drain carries 10 records, then 2.
    writes = [e for e in local_airtable.request_log.entries if e.method == "PATCH"]
    assert all(len(e.body["records"]) <= 10 for e in writes)
    assert len(writes[0].body["records"]) == 10
    tracker.close()


def test_a_change_after_the_tracker_closed_is_refused_not_lost_silently(
    local_airtable: LocalAirtable,
) -> None:
    import pytest

    from jobtrack_airtable.errors import TrackerClosedError

    tracker = Tracker(make_conn(local_airtable))
    run = tracker.job().client("Guy-Wilson")
    run.add(profiles_examined=1)
    tracker.close()
    assert (
        _client_rows(local_airtable, str(run.run_id.base))["Guy-Wilson"][
            "Profiles Examined for Scoring"
        ]
        == 1
    )
    with pytest.raises(TrackerClosedError, match="Guy-Wilson"):
        run.add(profiles_examined=1)
