"""Incremental planning (issue 23): after a refresh, only the groups (a job's base with its
rows) that the change touched, or whose verdict the clock has moved, are planned again -- in
exact row counts -- and the plan is still byte-for-byte a full read's.

Over HTTP against the local server: rows are seeded straight into its storage an hour before
the mirror's first refresh (so the last-modified filter leaves them out), changes made
outside the library afterwards, every plan made by ``plan_sync`` with the mirror and compared
with a full read's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobtrack_airtable.admin.mirror import Mirror
from jobtrack_airtable.admin.sync import plan_to_json
from tests.helpers import CRR, JOBS, NOW, SyncBase, at, base_fixture  # noqa: F401

from .helpers import mirror_delete, mirror_update

#: Four finished jobs of five client rows, and one job still running with two fresh clients.
DONE = [f"250930-1{j}0000" for j in range(4)]
LIVE = "250930-150000"
GROUP_ROWS = dict.fromkeys(DONE, 1 + 5) | {LIVE: 1 + 2}


def seed(b: SyncBase) -> None:
    b.srv.store.clock = lambda: datetime.now(UTC) - timedelta(hours=1)
    created = NOW - timedelta(days=1)
    b.add_many(JOBS, [{"Run ID": base, "Status": "Completed"} for base in DONE], created=created)
    b.add_many(
        JOBS,
        [{"Run ID": LIVE, "Status": "Running", "Last Updated": at(minutes=30)}],
        created=created,
    )
    b.add_many(
        CRR,
        [
            {
                "Run ID": f"{base}-Client {i}",
                "Client ID": f"Client {i}",
                "Status": "Completed",
                "Profiles Examined for Scoring": i,
            }
            for base in DONE
            for i in range(5)
        ]
        + [
            {
                "Run ID": f"{LIVE}-Client {i}",
                "Client ID": f"Client {i}",
                "Status": "Running",
                "Last Updated": at(minutes=30),  # stale once the clock passes NOW + 90 min
            }
            for i in range(2)
        ],
        created=created,
    )
    b.srv.store.clock = lambda: datetime.now(UTC)


@pytest.fixture
def mirror(base: SyncBase, tmp_path: Path) -> Iterator[Mirror]:
    m = Mirror(tmp_path / "mirror.sqlite", base.srv.base_id)
    yield m
    m.close()


def examined(b: SyncBase, m: Mirror, now: datetime) -> tuple[str, int, int]:
    """Plan from the mirror at ``now`` (checked against a full read's plan): what kind of
    plan it was, the rows it examined, the groups it planned."""
    plan = b.plan(mirror=m, now=now)
    assert plan_to_json(plan) == plan_to_json(b.plan(now=now))
    ran = m.plans.last
    assert ran is not None
    return ran.kind, ran.rows_examined, ran.groups_planned


def client_ids(b: SyncBase, base: str) -> list[str]:
    return [rid for rid, f in b.rows(CRR).items() if f["Run ID"].startswith(base)]


def test_planning_examines_only_the_groups_a_change_touched(base: SyncBase, mirror: Mirror) -> None:
    seed(base)
    total = sum(GROUP_ROWS.values())
    assert examined(base, mirror, NOW) == ("full", total, len(GROUP_ROWS))
    # Unchanged, same clock: every group's kept plan holds.
    assert examined(base, mirror, NOW) == ("incremental", 0, 0)
    # One client row edited outside the library: its job's group, and only it.
    mirror_update(base, client_ids(base, DONE[2])[:1], {"Profiles Examined for Scoring": 40})
    assert examined(base, mirror, NOW) == ("incremental", GROUP_ROWS[DONE[2]], 1)
    # A row deleted: its group, now one row fewer (the row edited above is read again, in
    # the refresh's overlap, but unchanged: its group is not planned again).
    mirror_delete(base, client_ids(base, DONE[1])[:1])
    assert examined(base, mirror, NOW) == ("incremental", GROUP_ROWS[DONE[1]] - 1, 1)


def test_the_clock_replans_a_group_when_a_verdict_may_flip_and_not_before(
    base: SyncBase, mirror: Mirror
) -> None:
    seed(base)
    assert examined(base, mirror, NOW)[0] == "full"
    # The running job's rows go stale 2 h after their Last Updated (NOW - 30 min): until
    # then its kept plan holds whatever the clock says, the finished jobs' plans always.
    assert examined(base, mirror, NOW + timedelta(minutes=89)) == ("incremental", 0, 0)
    stale = NOW + timedelta(minutes=91)
    assert examined(base, mirror, stale) == ("incremental", GROUP_ROWS[LIVE], 1)
    plan = base.plan(now=stale)
    failed = [r for r in plan.records if r.key and r.key.startswith(LIVE)]
    assert any("Stale: still Running" in why for r in failed for why in r.reasons)
    # Its plan now holds the plan's time (a note, the runs' age): kept for that time only.
    assert examined(base, mirror, stale) == ("incremental", 0, 0)
    later = stale + timedelta(seconds=1)
    assert examined(base, mirror, later) == ("incremental", GROUP_ROWS[LIVE], 1)
    # A clock gone back re-examines every group whose verdict depends on it.
    assert examined(base, mirror, NOW) == ("incremental", GROUP_ROWS[LIVE], 1)


def test_a_new_threshold_or_schema_plans_everything(base: SyncBase, mirror: Mirror) -> None:
    seed(base)
    total = sum(GROUP_ROWS.values())
    assert examined(base, mirror, NOW)[:2] == ("full", total)
    plan = base.plan(mirror=mirror, now=NOW, stale_after=timedelta(hours=3))
    assert plan_to_json(plan) == plan_to_json(base.plan(now=NOW, stale_after=timedelta(hours=3)))
    ran = mirror.plans.last
    assert ran is not None and (ran.kind, ran.rows_examined) == ("full", total)
    assert ran.why_full is not None and "threshold" in ran.why_full
