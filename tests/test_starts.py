"""Simultaneous job starts cost requests linear in their number (issue 21).

K trackers (threads, each its own connection, as K workers would be) start a job at the same
second; request counts come from the local server's request log, exactly.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
from datetime import UTC, datetime, timedelta

import pytest

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.run_ids import BaseRunId
from jobtrack_airtable.worker.starts import ahead_of, tie_skip
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import JOB_TABLE, by_key, check_unique_starts, make_conn, start_together

FROZEN = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)


def _strictly_increasing_server_clock(srv: LocalAirtable, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write of the server a millisecond after the previous one: a tie in created time
    (two creates in one millisecond) makes both claimants lose, costing a round that depends
    on scheduling; the count asserted here is the design's, not luck's."""
    ticks = itertools.count()
    start = datetime.now(UTC)
    monkeypatch.setattr(srv.store, "clock", lambda: start + timedelta(milliseconds=next(ticks)))


@pytest.mark.parametrize("k", [1, 4, 16])
def test_starts_sharing_a_limiter_store_never_collide(
    local_airtable: LocalAirtable, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    """Workers sharing the machine's limiter store reserve their seconds there: 2 requests
    each, however many start at once."""
    _strictly_increasing_server_clock(local_airtable, monkeypatch)
    trackers = [
        Tracker(make_conn(local_airtable, rate_limit=1000), clock=lambda: FROZEN) for _ in range(k)
    ]
    local_airtable.request_log.clear()
    jobs = start_together(trackers)
    assert local_airtable.request_log.total == 2 * k
    check_unique_starts(local_airtable, jobs)
    for t in trackers:
        t.close()


@pytest.mark.parametrize("k", [1, 4, 16, 32])
def test_starts_without_a_shared_store_jump_by_rank(
    local_airtable: LocalAirtable, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    """Hosts that share no store collide on Airtable: the winner pays 2 requests, each loser
    3 (its create and read, one move to its seat), never a read after the move."""
    _strictly_increasing_server_clock(local_airtable, monkeypatch)
    trackers = [Tracker(make_conn(local_airtable), clock=lambda: FROZEN) for _ in range(k)]
    local_airtable.request_log.clear()
    jobs = start_together(trackers)
    assert local_airtable.request_log.total == 2 + 3 * (k - 1)
    check_unique_starts(local_airtable, jobs)
    moved = [j for j in jobs if str(j.run_id) != "250930-141522"]
    assert len(moved) == k - 1
    assert all(
        f"claim moved from 250930-141522 to {j.run_id} by rank" in (j.refresh().system_notes or "")
        for j in moved
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("k", [4, 16])
def test_starts_of_separate_processes_cost_three_requests_at_most(
    local_airtable: LocalAirtable, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    """K processes, each with its own tracker and no limiter store, released together:
    the winner pays 2 requests and every loser 3, counted from the server's log."""
    _strictly_increasing_server_clock(local_airtable, monkeypatch)
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Barrier(k)
    started: multiprocessing.Queue[str] = ctx.Queue()

    def worker() -> None:
        tracker = Tracker(make_conn(local_airtable), clock=lambda: FROZEN)
        ready.wait()
        started.put(str(tracker.job().run_id))

    local_airtable.request_log.clear()
    processes = [ctx.Process(target=worker) for _ in range(k)]
    for p in processes:
        p.start()
    try:
        # A hang guard only: a start that never ends fails here instead of hanging.
        ids = [started.get(timeout=300) for _ in range(k)]
    except queue.Empty:
        pytest.fail("a worker process never reported its run ID")
    finally:
        for p in processes:
            p.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * k
    assert local_airtable.request_log.total == 2 + 3 * (k - 1)
    first = BaseRunId("250930-141522")
    assert sorted(ids) == [str(first), *ahead_of(first, k - 1)]  # seats side by side
    assert {key: len(v) for key, v in by_key(local_airtable, JOB_TABLE).items()} == dict.fromkeys(
        ids, 1
    )


def test_a_clock_jumped_back_over_a_busy_minute_starts_in_three_requests(
    local_airtable: LocalAirtable,
) -> None:
    first = BaseRunId("250930-141522")
    busy = [str(first), *ahead_of(first, 69)]  # 70 consecutive seconds already taken
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    for i, key in enumerate(busy):  # each created in its own second, as the jobs were
        local_airtable.store.create_records(
            None,
            JOB_TABLE,
            [{"Run ID": key, "Status": "Completed"}],
            created_time=an_hour_ago + timedelta(seconds=i),
        )
    tracker = Tracker(make_conn(local_airtable), clock=lambda: FROZEN)
    local_airtable.request_log.clear()
    job = tracker.job()
    assert local_airtable.request_log.total == 3
    assert str(job.run_id) == "250930-141632"  # the first free second, 70 after
    assert {k: len(v) for k, v in by_key(local_airtable, JOB_TABLE).items()} == dict.fromkeys(
        [*busy, str(job.run_id)], 1
    )


def _claim_rows(srv: LocalAirtable, *rows: tuple[str, str]) -> None:
    """Claim rows of other hosts, created a moment ago one after another: (run ID, notes)."""
    a_moment_ago = datetime.now(UTC) - timedelta(seconds=5)
    for i, (run_id, notes) in enumerate(rows):
        srv.store.create_records(
            None,
            JOB_TABLE,
            [{"Run ID": run_id, "Status": "Running", "System Notes": notes}],
            created_time=a_moment_ago + timedelta(milliseconds=i),
        )


def test_a_start_walks_past_the_seat_of_a_loser_that_has_not_moved_yet(
    local_airtable: LocalAirtable,
) -> None:
    """Another host's loser still sits on 14:15:22 (it read, it has not patched): its seat,
    14:15:23, is ours to avoid though no row holds it yet, so a start at 14:15:23 moves on
    to 14:15:24 at once, 3 requests, and the loser can take 14:15:23 without reading."""
    _claim_rows(
        local_airtable,
        ("250930-141522", "started on host-a (claim aaaa)"),
        ("250930-141522", "started on host-b (claim bbbb)"),
    )
    later = FROZEN + timedelta(seconds=1)
    tracker = Tracker(make_conn(local_airtable), clock=lambda: later)
    local_airtable.request_log.clear()
    job = tracker.job()
    assert local_airtable.request_log.total == 3
    assert str(job.run_id) == "250930-141524"
    tracker.close()


def test_a_row_moved_without_the_rule_makes_starts_of_its_block_verify(
    local_airtable: LocalAirtable,
) -> None:
    """A move the rule cannot foresee (an older library's, or a verified one) holds a second
    no seat accounts for: a start in that block moves and reads again (4 requests) rather
    than trust its seat."""
    _claim_rows(
        local_airtable,
        (
            "250930-141523",
            "started on host-a (claim aaaa)\nclaim moved from 250930-141522 to 250930-141523",
        ),
    )
    tracker = Tracker(make_conn(local_airtable), clock=lambda: FROZEN)
    local_airtable.request_log.clear()
    job = tracker.job()
    assert local_airtable.request_log.total == 4
    # Past the moved row and its own seat, and one free second more for each row of its
    # second it saw (the rows still to come take the first free seconds).
    assert str(job.run_id) == "250930-141525"
    assert "claim moved from 250930-141522 to 250930-141525" in (job.refresh().system_notes or "")
    assert {k: len(v) for k, v in by_key(local_airtable, JOB_TABLE).items()} == {
        "250930-141523": 1,
        "250930-141525": 1,
    }
    tracker.close()


@pytest.mark.parametrize(
    ("markers", "requests", "second"),
    [
        # Tie seats 4 and 6 free seconds on: the row that sees the tie takes its own.
        (("aaaa", "bbbb"), 2 + 3, "250930-141526"),
        # Both tie seats 7 on: the row that sees the tie cannot be sure of it, and verifies.
        # (From its seat, past one free second per row of its second it saw.)
        (("cccc", "dddd"), 2 + 4, "250930-141524"),
    ],
)
def test_a_row_that_sees_a_tie_takes_its_tie_seat_or_verifies(
    local_airtable: LocalAirtable,
    monkeypatch: pytest.MonkeyPatch,
    markers: tuple[str, str],
    requests: int,
    second: str,
) -> None:
    """Two rows stamped in one millisecond: the first read alone and keeps its second (2
    requests); the second sees the tie and cannot know whether the first saw it.  Both
    seats of each are held by every later reader, so it moves to its tie seat (a skip of
    1-8 free seconds from its marker) when that is none of the other's (3 requests), and
    otherwise verifies a move (4)."""
    assert [tie_skip(m) for m in markers] in ([6, 4], [7, 7])
    stamp = datetime.now(UTC)
    monkeypatch.setattr(local_airtable.store, "clock", lambda: stamp)
    first, second_ = (
        Tracker(
            make_conn(local_airtable),
            clock=lambda: FROZEN,
            claim_marker=itertools.repeat(m).__next__,
        )
        for m in markers
    )
    local_airtable.request_log.clear()
    a = first.job()
    assert local_airtable.request_log.total == 2
    b = second_.job()
    assert local_airtable.request_log.total == requests
    assert (str(a.run_id), str(b.run_id)) == ("250930-141522", second)
    check_unique_starts(local_airtable, [a, b])
    first.close()
    second_.close()
