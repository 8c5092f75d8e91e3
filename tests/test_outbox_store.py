"""The outbox stores (SQLite, Redis) keep the same small protocol: versions only grow, an
entry retires only at (or above) its version and after its settle window, claims are compare
and swap, drops happen at the planned version only, and the request budget is a shared
token bucket.  Redis is a real server (``JOBTRACK_TEST_REDIS_URL``, else one started here)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtrack_airtable.outbox import OutboxStore, SqliteOutbox, open_outbox
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.worker.tracker import Tracker

from . import test_fleet
from .helpers import make_conn
from .test_outbox import EXAMINED, _client_rows, _left_refused

KEY = "appX/client_runs/250930-141522-A"
OTHER = "appX/client_runs/250930-141522-B"


#: The session's Redis (``JOBTRACK_TEST_REDIS_URL``, else a redis-server started for it).
shared_redis_url = test_fleet.shared_redis_url


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
    store.put(KEY, 5, "five", "h:1:a")
    store.put(KEY, 4, "four", "h:1:b")
    entry = store.get(KEY)
    assert entry is not None and (entry.version, entry.payload, entry.owner) == (5, "five", "h:1:a")
    store.put(KEY, 6, "six", "h:1:b")
    assert store.get(KEY).payload == "six"  # type: ignore[union-attr]


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
    base = _left_refused(local_airtable, outbox_url=redis_outbox_url)
    with Tracker(make_conn(local_airtable, outbox_url=redis_outbox_url)) as later:
        assert "RedisOutbox" in repr(later.outbox)
        assert len(later.replay()) == 4
    rows = _client_rows(local_airtable, base)
    assert {(r[EXAMINED], r["Status"]) for r in rows.values()} == {(15, "Completed")}
    store = open_outbox(later.conn.settings)
    assert store.entries() == []
    store.close()
