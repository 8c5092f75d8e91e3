"""Fork safety (issue 21): a tracker made before ``os.fork()`` works in the child, even when
the fork lands while the parent's group commit is flushing (its drain lock held by a thread
the child does not have).  Real processes, the real path; rows and requests counted exactly.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from jobtrack_airtable import forks
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import CRR_TABLE, make_conn, rows

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

#: Longest a child may take before it counts as hung (it needs two requests).
CHILD_DEADLINE = 30.0


def _wait(pid: int) -> int | None:
    """The child's exit status, or ``None`` if it hung (then it is killed)."""
    deadline = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _child(tracker: Tracker, job_run_id: str, i: int) -> None:
    """In the child: open, count, close; exit 0 only if the row was written."""
    code = 1
    try:
        with tracker.client(job_run_id, f"Child-{i}") as run:
            run.add(profiles_examined=i + 1)
        tracker.flush()
        code = 0
    finally:
        os._exit(code)


@pytest.mark.timeout(600)
def test_forks_while_the_parent_commit_is_flushing(local_airtable: LocalAirtable) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    parent = os.getpid()
    table = tracker.repo.client_runs
    write = table.write
    flushing = threading.Event()
    forked = threading.Event()

    def held_write(items: Any) -> Any:
        # The parent's drain stops inside its write, holding the drain lock, until the
        # child exists; a child's writes pass straight through.
        if os.getpid() == parent:
            flushing.set()
            forked.wait()
        return write(items)

    table.write = held_write  # type: ignore[method-assign]
    runs = []
    hung = failed = 0
    local_airtable.request_log.clear()
    for i in range(100):
        run = job.client(f"Parent-{i}")
        run.add(profiles_examined=1)
        runs.append(run)
        flushing.clear()
        forked.clear()
        drain = threading.Thread(target=tracker.flush)
        drain.start()
        assert flushing.wait(10)
        pid = os.fork()
        if pid == 0:
            _child(tracker, str(job.run_id), i)
        forked.set()
        drain.join()
        status = _wait(pid)
        hung += status is None
        failed += status not in (None, 0)
    table.write = write  # type: ignore[method-assign]
    assert (hung, failed) == (0, 0)
    for run in runs:
        run.close()
    row = job.complete()
    by_client = {r["fields"]["Client ID"]: r["fields"] for r in rows(local_airtable, CRR_TABLE)}
    assert len(by_client) == 200
    for i in range(100):
        assert by_client[f"Child-{i}"]["Status"] == "Completed"
        assert by_client[f"Child-{i}"]["Profiles Examined for Scoring"] == i + 1
        assert by_client[f"Parent-{i}"]["Status"] == "Completed"
        assert by_client[f"Parent-{i}"]["Profiles Examined for Scoring"] == 1
    assert row.aggregates["profiles_examined"] == 100 + sum(range(1, 101))
    # Exactly: per round the parent's write (1) and the child's open and close (2); then the
    # parent's 100 closes (10) and the completion over 200 rows (2 pages, job row, write).
    assert local_airtable.request_log.total == 100 * 3 + 10 + 4
    tracker.close()


def test_the_child_gets_fresh_locks_threads_and_connections(
    local_airtable: LocalAirtable,
) -> None:
    """What the resets replace, seen directly: a lock held by a parent thread is free in the
    child, the commit has no thread and nothing pending, and the HTTP pools are new."""
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()  # a request: the session's pool holds a keep-alive connection
    commit = tracker._commit
    adapter = tracker.conn.api.session.get_adapter(tracker.conn.api.endpoint_url)
    pools = adapter.poolmanager  # type: ignore[attr-defined]
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with commit._drain_lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    run = job.client("Guy-Wilson")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        checks = [
            commit._drain_lock.acquire(timeout=1),
            commit._thread is None,
            commit.pending == 0,
            adapter.poolmanager is not pools,  # type: ignore[attr-defined]
            run._lock.acquire(timeout=1),
            tracker.origin.endswith(f"pid {os.getpid()}"),
        ]
        os.write(write, bytes(int(c) for c in checks))
        os._exit(0)
    os.close(write)
    release.set()
    holder.join()
    assert _wait(pid) == 0
    assert list(os.read(read, 16)) == [1, 1, 1, 1, 1, 1]
    os.close(read)
    tracker.close()


def test_other_components_register_their_reset_with_one_call() -> None:
    class Outbox:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            forks.register(self, Outbox.reset)

        def reset(self) -> None:
            self.lock = threading.Lock()

    box = Outbox()
    box.lock.acquire()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, b"1" if box.lock.acquire(timeout=1) else b"0")
        os._exit(0)
    os.close(write)
    assert _wait(pid) == 0
    assert os.read(read, 1) == b"1"
    os.close(read)
