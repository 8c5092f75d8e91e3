"""Attack: simultaneous starts that lose (rank jumps, moves) while the server loses responses
and fails requests: still one row per job and no two jobs sharing a run ID."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import make_conn
from .test_starts import _check_unique, _start_together


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_starts_stay_unique_under_lost_responses_and_5xx(make_local_airtable, seed: int) -> None:  # type: ignore[no-untyped-def]
    srv: LocalAirtable = make_local_airtable(fault_seed=seed)
    srv.faults.add("lost_response", method="POST", probability=0.2, times=1000)
    srv.faults.add("lost_response", method="PATCH", probability=0.2, times=1000)
    srv.faults.add("503", method="GET", probability=0.1, times=1000)
    when = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    trackers = [Tracker(make_conn(srv), clock=lambda: when) for _ in range(8)]
    jobs = _start_together(trackers)
    assert len(jobs) == 8
    _check_unique(srv, jobs)
    assert srv.faults.counts.get("lost_response", 0) > 0  # the attack happened
    for t in trackers:
        t.close()
