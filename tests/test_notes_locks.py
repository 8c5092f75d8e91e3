"""System Notes are append-only across processes even when writers race (issue 10 item 3):
the read and the write of a row's notes happen under a lock of that row in the limiter's
shared store (jobtrack_airtable.limiter.locks), so no writer sharing the store can erase a
line another appended.  Without the lock, two writers appending 40 lines each as fast as they
could kept 56-60 of 80 (measured by the attack review)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from jobtrack_airtable.limiter import LocalLimiter
from jobtrack_airtable.limiter.locks import row_locks
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.worker.tracker import Tracker

LINES = 25


def _conn(srv: TrackingServer, store: Path) -> Connection:
    # A real limiter store (fast enough not to slow the test), shared by both writers.
    settings = srv.settings(
        rate_limit=1000, limiter_url=f"sqlite:///{store}", flush_interval=3600.0
    )
    return Connection.from_settings(settings, policy=DEFAULT_POLICY.scaled(0.01))


def _race(writers: list[threading.Thread]) -> None:
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
        assert not w.is_alive()


def _append_at_once(first: Any, second: Any, *, flush: bool = False) -> None:
    """``first`` and ``second`` (two writers' handles on one row) each append LINES lines
    ("A line i", "B line i"), starting together."""
    gate = threading.Barrier(2)

    def append(target: Any, name: str) -> None:
        gate.wait()
        for i in range(LINES):
            target.note(f"{name} line {i}")
            if flush:
                target.flush()

    _race(
        [
            threading.Thread(target=append, args=(first, "A")),
            threading.Thread(target=append, args=(second, "B")),
        ]
    )


def _missing_lines(notes: str | None) -> list[str]:
    lines = [f"{n} line {i}" for n in "AB" for i in range(LINES)]
    return [line for line in lines if line not in (notes or "")]


def test_two_writers_appending_job_notes_keep_every_line(
    make_local_airtable, tmp_path: Path
) -> None:
    srv = make_local_airtable()
    store = tmp_path / "limiter.sqlite"
    a, b = Tracker(_conn(srv, store)), Tracker(_conn(srv, store))
    job = a.job()
    other = b.attach_job(str(job.run_id))
    _append_at_once(job, other)
    assert _missing_lines(job.refresh().system_notes) == []
    a.close()
    b.close()


def test_two_writers_appending_client_run_notes_keep_every_line(
    make_local_airtable, tmp_path: Path
) -> None:
    srv = make_local_airtable()
    store = tmp_path / "limiter.sqlite"
    a, b = Tracker(_conn(srv, store)), Tracker(_conn(srv, store))
    job = a.job()
    run = a.client(str(job.run_id), "Guy-Wilson")
    run.flush()
    other = b.attach_client_run(str(run.run_id))
    _append_at_once(run, other, flush=True)
    [row] = a.client_runs(str(job.run_id))
    assert _missing_lines(row.system_notes) == []
    a.close()
    b.close()


def test_locks_are_all_or_none_exclusive_and_expire(tmp_path: Path) -> None:
    times = [1000.0]
    one = LocalLimiter(5, tmp_path / "l.sqlite", clock=lambda: times[0])
    two = LocalLimiter(5, tmp_path / "l.sqlite", clock=lambda: times[0])  # another process
    assert one.try_lock(["k1", "k2"], "tokA", 10)
    assert not two.try_lock(["k2", "k3"], "tokB", 10)  # k2 is taken: none of them
    assert two.try_lock(["k3"], "tokB", 10)  # k3 was not taken by the refused attempt
    one.unlock(["k1", "k2"], "tokA")
    assert two.try_lock(["k1", "k2"], "tokB", 10)
    times[0] += 11  # a holder killed while holding blocks nobody past the ttl
    assert one.try_lock(["k1", "k2", "k3"], "tokA", 10)
    two.unlock(["k1"], "tokB")  # not tokB's any more: nothing released
    assert not two.try_lock(["k1"], "tokB", 10)
    one.close()
    two.close()


def test_a_limiter_without_a_store_has_no_locks() -> None:
    from jobtrack_airtable.limiter import NullLimiter

    with row_locks(NullLimiter(), ["k"]) as locked:
        assert locked is False


def test_a_worker_note_during_a_sync_apply_is_not_erased(
    make_local_airtable, tmp_path: Path
) -> None:
    """sync writes System Notes computed when it planned; the row is locked from its re-read
    to its write, so a worker's line appended meanwhile waits and lands after, not under."""
    from datetime import timedelta

    from jobtrack_airtable.admin.sync import apply_plan, plan_sync
    from jobtrack_airtable.timeutil import utcnow
    from jobtrack_airtable.transport.repository import Repository

    srv = make_local_airtable()
    store = tmp_path / "limiter.sqlite"
    worker = Tracker(_conn(srv, store))
    past = utcnow() - timedelta(hours=3)
    saved = srv.store.clock
    srv.store.clock = lambda: past  # the job was started (and its row created) 3 h ago
    worker.clock = lambda: past
    job = worker.job()
    srv.store.clock = saved
    worker.clock = utcnow

    repo = Repository(_conn(srv, store))
    plan = plan_sync(repo, stale_after=timedelta(hours=1))
    assert any(r.key == str(job.run_id) for r in plan.records)
    srv.faults.add("delay", method="PATCH", delay=1.0, times=1)  # sync's write, slowed
    applying = threading.Thread(target=apply_plan, args=(repo, plan))
    applying.start()
    while srv.faults.counts.get("delay", 0) == 0:  # sync has re-read and is writing
        threading.Event().wait(0.01)
    job.note("worker: still here")
    applying.join(timeout=60)
    notes = job.refresh().system_notes or ""
    assert "worker: still here" in notes
    assert "marked Failed" in notes
    worker.close()
