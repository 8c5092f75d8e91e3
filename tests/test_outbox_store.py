"""The outbox stores (SQLite, Redis) keep the same small protocol: versions only grow, an
entry retires only at (or above) its version and after its settle window, claims are compare
and swap, drops happen at the planned version only, and the request budget is a shared
token bucket.  Redis is a real server (``JOBTRACK_TEST_REDIS_URL``, else one started here)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobtrack_airtable.errors import OutboxUnavailableError
from jobtrack_airtable.outbox import OutboxStore, SqliteOutbox, open_outbox
from jobtrack_airtable.outbox.store import LIVE_OWNERS, new_owner
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import (
    EXAMINED,
    RedisServer,
    client_rows,
    left_refused,
    make_conn,
)

KEY = "appX/client_runs/250930-141522-A"
OTHER = "appX/client_runs/250930-141522-B"


#: The session's Redis (``JOBTRACK_TEST_REDIS_URL``, else a redis-server started for it).


@pytest.fixture
def redis_outbox_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("shared_redis_url")
    return url


def _flush_outbox_keys(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter("jobtrack:outbox:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutboxStore]:
    if request.param == "sqlite":
        s: OutboxStore = SqliteOutbox(tmp_path / "outbox.sqlite")
    else:
        url = request.getfixturevalue("redis_outbox_url")
        _flush_outbox_keys(url)
        from jobtrack_airtable.outbox.redis import RedisOutbox

        s = RedisOutbox.from_url(url)
    yield s
    s.close()


def test_a_version_never_goes_back(store: OutboxStore) -> None:
    assert store.put(KEY, 5, "five", "h:1:a") == 5
    # A process whose clock went back (or another host's) brings a lower version: its change
    # is stored all the same, above the stored version, and it is told which.
    assert store.put(KEY, 4, "four", "h:1:b") == 6
    entry = store.get(KEY)
    assert entry is not None and (entry.version, entry.payload, entry.owner) == (6, "four", "h:1:b")
    assert store.put(KEY, 9, "nine", "h:1:a") == 9
    # A microsecond-of-the-clock version survives the round trip exactly (Lua's numbers).
    big = 1_765_000_000_123_456
    assert store.put(OTHER, big, "x", "h:1:a") == big
    assert store.put(OTHER, big - 3_600_000_000, "y", "h:1:b") == big + 1
    assert store.get(OTHER).version == big + 1  # type: ignore[union-attr]
    # The entry the older version would have left behind is gone: retiring the newest one
    # leaves nothing for a replay to write over newer state.
    store.retire(OTHER, big + 1)
    assert store.get(OTHER) is None


def test_an_entry_retires_only_at_its_version_and_after_its_window(store: OutboxStore) -> None:
    store.put(KEY, 5, "five", "h:1:a")
    store.retire(KEY, 4)
    assert store.get(KEY) is not None  # a newer change is not on Airtable yet
    store.retire(KEY, 5, verify_after=time.time() + 60)
    store.retire(KEY, 5)
    assert store.get(KEY) is not None  # a timed-out write may still land: kept
    store.put(OTHER, 5, "five", "h:1:a")
    store.retire(OTHER, 5, verify_after=time.time() - 1)  # its window has passed
    store.retire(OTHER, 5)
    assert store.get(OTHER) is None


def test_a_refusal_is_noted_and_the_entry_kept(store: OutboxStore) -> None:
    store.put(KEY, 5, "five", "h:1:a")
    store.refused(KEY, 5, "AuthenticationError: 401")
    assert store.get(KEY).error == "AuthenticationError: 401"  # type: ignore[union-attr]


def test_claims_are_compare_and_swap(store: OutboxStore) -> None:
    store.put(KEY, 5, "a", "h:1:dead")
    store.put(OTHER, 5, "b", "h:2:dead")
    expected = {KEY: "h:1:dead", OTHER: "h:2:dead"}
    assert store.claim([KEY, OTHER], "me", expected=expected) == [KEY, OTHER]
    assert store.claim([KEY, OTHER], "you", expected=expected) == []  # taken already
    assert [e.owner for e in store.entries("appX/")] == ["me", "me"]


def test_a_drop_takes_the_planned_version_only(store: OutboxStore) -> None:
    store.put(KEY, 5, "a", "h:1:a")
    store.put(KEY, 6, "b", "h:1:a")
    assert store.drop([KEY], versions={KEY: 5}) == 0  # it changed since the plan
    assert store.drop([KEY], versions={KEY: 6}) == 1
    assert store.entries() == []


def test_the_budget_is_a_token_bucket(store: OutboxStore) -> None:
    assert store.spend(0, rate=1.0, burst=10, at=1000.0) == 0
    assert store.spend(3, rate=1.0, burst=10, at=1002.0) == -1  # 2 accrued, 3 spent
    assert store.spend(0, rate=1.0, burst=10, at=2000.0) == 10  # capped at the burst


def test_a_redis_outbox_keeps_a_refused_change_for_the_next_tracker(
    local_airtable: TrackingServer, redis_outbox_url: str
) -> None:
    _flush_outbox_keys(redis_outbox_url)
    base = left_refused(local_airtable, outbox_url=redis_outbox_url)
    with Tracker(make_conn(local_airtable, outbox_url=redis_outbox_url)) as later:
        assert "RedisOutbox" in repr(later.outbox)
        assert len(later.replay()) == 4
    rows = client_rows(local_airtable, base)
    assert {(r[EXAMINED], r["Status"]) for r in rows.values()} == {(15, "Completed")}
    store = open_outbox(later.conn.settings)
    assert store.entries() == []
    store.close()


def _foreign(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()


def _truncated(path: Path) -> None:
    store = SqliteOutbox(path)
    store.put(KEY, 1, "{}", "h:1:a")
    store.close()
    path.write_bytes(path.read_bytes()[:1500])


@pytest.mark.parametrize(
    ("kind", "make", "says"),
    [
        (
            "garbage",
            lambda p: p.write_bytes(b"SQLite format 3\0" + b"\x17" * 8000),
            "not a database",
        ),
        ("truncated", _truncated, "malformed"),
        ("foreign schema", _foreign, "is not a jobtrack-airtable outbox"),
        ("directory", lambda p: p.mkdir(), "unable to open"),
        ("fifo", lambda p: os.mkfifo(p), "disk I/O error"),
        ("symlink to /dev/zero", lambda p: p.symlink_to("/dev/zero"), "disk I/O error"),
    ],
)
def test_an_unusable_outbox_file_fails_every_operation_with_a_typed_error_naming_it(
    tmp_path: Path, kind: str, make: Callable[[Path], object], says: str
) -> None:
    path = tmp_path / "outbox.sqlite"
    make(path)
    store = SqliteOutbox(path)
    operations: dict[str, Callable[[], object]] = {
        "put": lambda: store.put(KEY, 1, "{}", "h:1:a"),
        "get": lambda: store.get(KEY),
        "entries": store.entries,
        "retire": lambda: store.retire(KEY, 1),
        "refused": lambda: store.refused(KEY, 1, "x"),
        "claim": lambda: store.claim([KEY], "o", expected={KEY: "h:1:a"}),
        "drop": lambda: store.drop([KEY]),
        "spend": lambda: store.spend(1, rate=1, burst=1, at=1),
    }
    for name, operation in operations.items():
        with pytest.raises(OutboxUnavailableError) as caught:
            operation()
        assert str(path) in str(caught.value) and says in str(caught.value), (kind, name)


def test_a_fork_while_another_thread_holds_the_outbox_lock_leaves_the_child_working(
    tmp_path: Path,
) -> None:
    store = SqliteOutbox(tmp_path / "outbox.sqlite")
    store.put(KEY, 1, "{}", "h:1:a")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:  # a writer thread in the middle of a put at the fork
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        pid = os.fork()
        if pid == 0:  # the child: a deadlock here ends it by SIGALRM
            signal.alarm(30)
            code = 0 if store.put(KEY, 1, "{child}", "h:2:b") == 2 else 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join()
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get(KEY).payload == "{child}"  # type: ignore[union-attr]


def test_a_change_the_outbox_cannot_store_changes_nothing_so_a_retry_counts_once(
    local_airtable: TrackingServer, own_redis: RedisServer
) -> None:
    """Redis killed mid-run: ``add()`` raises, and the run is as it was before the call,
    so the caller's retry (once Redis is back) is counted once, not twice."""
    tracker = Tracker(make_conn(local_airtable, outbox_url=own_redis.url))
    job = tracker.job()
    [run] = job.open_clients(["A"])
    run.add(profiles_examined=3)
    tracker.flush()
    run.add(profiles_examined=2)
    own_redis.kill()
    for call in (
        lambda: run.add(profiles_examined=1),
        lambda: run.set(apify_costs=9.5),
        lambda: run.note("never recorded"),
        lambda: run.close(),
    ):
        with pytest.raises(OutboxUnavailableError):
            call()
    assert run.status.value == "Running"
    # The commit thread's own step asks the machine's request budget, kept in the same store:
    # with the store gone it must still answer (write every interval), not raise and end
    # the thread that writes every later change.
    assert tracker._commit.next_due() < float("inf")
    own_redis.start()  # without AOF it comes back empty: the next change stores the whole run
    run.add(profiles_examined=1)
    run.close()
    job.complete()
    tracker.close()
    [row] = client_rows(local_airtable, str(job.run_id)).values()
    assert (row[EXAMINED], row["Status"], row.get("Apify API Costs")) == (6, "Completed", None)
    assert "never recorded" not in row.get("System Notes", "")


def test_a_full_disk_is_reported_as_a_full_disk(tmp_path: Path) -> None:
    """SQLite rolls a transaction back itself when the disk fills mid-way: the cause must
    not be hidden by a second, failing rollback.  (``max_page_count`` caps the file as a full
    disk would; a small tmpfs, which needs root, gives the same error: docs/benchmarks.md.)"""
    store = SqliteOutbox(tmp_path / "outbox.sqlite")
    store.put(KEY, 1, "{}", "h:1:a")
    db = store._db()
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(OutboxUnavailableError, match="database or disk is full"):
        store.claim([KEY], "h:2:" + "b" * 20_000, expected={KEY: "h:1:a"})
    assert store.get(KEY).owner == "h:1:a"  # type: ignore[union-attr]


def test_a_run_lease_has_one_live_holder_on_the_machine(tmp_path: Path) -> None:
    store = SqliteOutbox(tmp_path / "outbox.sqlite")
    me = new_owner()
    LIVE_OWNERS.add(me)
    host = socket.gethostname()
    alive = f"{host}:{os.getppid()}:parent"  # the process that started this one
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = f"{host}:{finished.pid}:gone"
    sibling = ""
    try:
        assert store.hold(KEY, alive) is None
        assert store.hold(KEY, me) == alive  # refused: the holder lives
        store.unhold(me)  # not mine to give up
        assert store.hold(KEY, me) == alive
        assert store.hold(KEY, alive) is None  # its own lease, again
        store.unhold(alive, [KEY])
        assert store.hold(KEY, me) is None
        assert store.hold(OTHER, dead) is None
        assert store.hold(OTHER, me) is None  # a dead holder's lease is void
        store.unhold(me)
        assert store.hold(KEY, alive) is None and store.hold(OTHER, alive) is None
        # Another open tracker of this process does not exclude this one (one left unclosed
        # must not lock its runs away from the process).
        sibling = new_owner()
        LIVE_OWNERS.add(sibling)
        third = "appX/client_runs/250930-141522-C"
        assert store.hold(third, sibling) is None
        assert store.hold(third, me) is None
    finally:
        LIVE_OWNERS.discard(me)
        LIVE_OWNERS.discard(sibling)
        store.close()
