"""The seating rule of job starts (issue 21) under every kind of interleaving threads cannot
produce on demand: a model of Airtable's job table (atomic creates, patches, deletes and
reads; ``createdTime`` from a clock that may stand still, so rows tie) and of K starters
that follow :func:`jobtrack_airtable.worker.starts.decide` step by step, in random order.

A start here is what ``Tracker.job()`` does: create, read the block, then won, move to its
seat (done, no read), or move and read again.  Seeds make every schedule reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from jobtrack_airtable.rows import JobRow
from jobtrack_airtable.run_ids import BaseRunId
from jobtrack_airtable.worker.starts import (
    block_of,
    claim_note,
    decide,
    moved_note,
    ranked_note,
)

EPOCH = datetime(2025, 9, 30, 14, 0, 0, tzinfo=UTC)
FIRST = BaseRunId("250930-141522")


@dataclass
class Table:
    """Job rows as Airtable holds them; every operation is atomic."""

    tie_chance: float
    rng: random.Random
    rows: dict[str, JobRow] = field(default_factory=dict)
    millis: int = 0
    ids: int = 0

    def create(self, run_id: str, notes: str) -> str:
        if self.rng.random() >= self.tie_chance:
            self.millis += 1
        self.ids += 1
        # Record IDs are random on Airtable: their order says nothing about age.
        record_id = f"rec{self.rng.randrange(10**9):09d}{self.ids:05d}"
        created = EPOCH + timedelta(milliseconds=self.millis)
        self.rows[record_id] = JobRow(
            record_id=record_id, created_time=created, run_id=run_id, system_notes=notes
        )
        return record_id

    def patch(self, record_id: str, run_id: str, notes: str) -> None:
        old = self.rows[record_id]
        self.rows[record_id] = JobRow(
            record_id=record_id, created_time=old.created_time, run_id=run_id, system_notes=notes
        )

    def block(self, run_id: str) -> list[JobRow]:
        return [r for r in self.rows.values() if block_of(r.run_id or "") == block_of(run_id)]


@dataclass
class Starter:
    """One ``Tracker.job()``, one step (one request) at a time."""

    marker: str
    at: str
    retried_create: bool
    requests: int = 0
    notes: str = ""
    mine: str | None = None
    step: str = "create"
    target: str = ""
    verifying: bool = False
    spare: list[str] = field(default_factory=list)

    def advance(self, table: Table) -> None:
        self.requests += 1
        if self.step == "create":
            self.notes = claim_note("host", self.marker)
            table.create(self.at, self.notes)
            if self.retried_create:  # a lost response: the retry creates a second copy
                table.create(self.at, self.notes)
                self.retried_create = False
            self.step = "read"
        elif self.step == "read":
            decision = decide(table.block(self.at), self.marker, self.at, verifying=self.verifying)
            self.spare = decision.spare
            row, self.target = decision.row, decision.target
            if row is not None and decision.won:
                self.mine, self.step = row.record_id, "done"
            elif row is not None and decision.ranked:
                self.mine, self.step = row.record_id, "rank"
            else:
                self.mine = row.record_id if row else None
                self.step = "move" if row else "create"
                if row is None:
                    self.at = self.target
            if self.spare:
                self.step = f"delete:{self.step}"
        elif self.step.startswith("delete:"):
            for record_id in self.spare:
                table.rows.pop(record_id, None)
            self.step = self.step.removeprefix("delete:")
        elif self.step == "rank":
            assert self.mine is not None
            self.notes += "\n" + ranked_note(self.at, self.target)
            self.at = self.target
            table.patch(self.mine, self.at, self.notes)
            self.step = "done"
        elif self.step == "move":
            assert self.mine is not None
            self.notes += "\n" + moved_note(self.at, self.target)
            self.at = self.target
            table.patch(self.mine, self.at, self.notes)
            self.verifying = True
            self.step = "read"


def run(
    seed: int,
    k: int,
    *,
    tie_chance: float,
    spread: int,
    busy: int,
    retries: float = 0.1,
    first: BaseRunId = FIRST,
) -> list[Starter]:
    rng = random.Random(seed)
    table = Table(tie_chance, rng)
    # Jobs of an hour ago still holding some seconds of the block: rows without a claim.
    for i, offset in enumerate(rng.sample(range(60), busy)):
        table.create(str(_plus(first, offset)), f"old job {i}")
        table.millis += 1
    starters = []
    for i in range(k):
        start = _plus(first, rng.randrange(spread))
        starters.append(Starter(f"m{i}", str(start), retried_create=rng.random() < retries))
    while live := [s for s in starters if s.step != "done"]:
        rng.choice(live).advance(table)
        assert all(s.requests < 200 for s in starters), "a start that never ends"
    ids = [r.run_id for r in table.rows.values()]
    assert len(ids) == len(set(ids)), f"two rows share a run ID (seed {seed})"
    assert sorted(s.at for s in starters) == sorted(
        r.run_id for r in table.rows.values() if "claim" in (r.system_notes or "")
    )
    return starters


def _plus(run_id: BaseRunId, seconds: int) -> BaseRunId:
    for _ in range(seconds):
        run_id = run_id.next_second()
    return run_id


@pytest.mark.parametrize("seed", range(200))
def test_no_two_starts_share_a_run_id_in_any_interleaving(seed: int) -> None:
    """Ties, retried creates, old rows, contests on neighbouring seconds and walks past the
    end of the block, in random order: never two rows on one run ID."""
    rng = random.Random(seed)
    run(
        seed,
        k=rng.choice([2, 3, 5, 8, 16]),
        tie_chance=rng.choice([0.0, 0.3, 0.9]),
        spread=rng.choice([1, 3, 40, 500]),
        busy=rng.choice([0, 5, 30]),
    )


@pytest.mark.parametrize("seed", range(60))
def test_no_two_starts_share_a_run_id_across_a_block_end(seed: int) -> None:
    """Starts on both sides of a block's end: walks that leave the block verify into the
    next one, where other starts take their seats without a second read."""
    rng = random.Random(seed)
    run(
        seed,
        k=rng.choice([4, 8, 16]),
        tie_chance=rng.choice([0.0, 0.05]),
        spread=rng.choice([10, 20]),
        busy=rng.choice([0, 10]),
        first=BaseRunId("250930-141952"),
    )


@pytest.mark.parametrize("seed", range(30))
def test_starts_with_distinct_stamps_cost_three_requests_at_most(seed: int) -> None:
    """Without ties (Airtable stamps in milliseconds) every start is done in 3 requests,
    however the K creates, reads and moves interleave and whatever seconds are taken."""
    rng = random.Random(seed)
    starters = run(
        seed,
        k=rng.choice([4, 16, 32]),
        tie_chance=0.0,
        spread=rng.choice([1, 3, 20]),
        busy=rng.choice([0, 30]),
        retries=0.0,  # a retried create costs its spare copy's delete on top
    )
    assert max(s.requests for s in starters) <= 3
