"""Planning is made faster without changing a byte of what it plans (issue 23).

The SHA-256 of the plan JSON over seeded corpora (``benchmarks/_plan_corpus.py``: every kind
of problem sync handles, a fixed clock) is pinned to what the planner gave before its hot
paths were rewritten (commit b3653e6: a record and a pydantic model built per client row,
every run ID recognised from scratch).  A change to planning that changes a plan fails here
and must say why: update the digest only for a change of meaning, never for speed.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from benchmarks._plan_corpus import NOW, STALE_AFTER, corpus
from jobtrack_airtable.admin.sync import build_plan, plan_to_json
from jobtrack_airtable.schema import load_schema

#: (client rows, seed, clients per job) → (SHA-256 of the plan JSON, its summary).
PINNED = {
    (2000, 1, 20): (
        "f7c16ab65aef1989f256d486d34638bef4597a8de9553952765005f1e73ee34d",
        "create=2 update=97 delete=12 attention=19",
    ),
    (2000, 2, 7): (
        "12b0caf47a09fca9a250ed0bb313c6c7448091eb84b32144b556499a4e6373f6",
        "create=1 update=86 delete=3 attention=18",
    ),
    (3000, 5, 50): (
        "41a27926f3b00f5be05c002937924154e98b406efa91c2588766fd7860ca8e72",
        "create=3 update=106 delete=5 attention=11",
    ),
}


def _plan_json(size: int, seed: int, per_job: int) -> str:
    jobs, clients = corpus(size, seed=seed, clients_per_job=per_job)
    plan = build_plan(
        jobs,
        clients,
        schema=load_schema(),
        now=NOW,
        stale_after=STALE_AFTER,
        base_id="appAAAAAAAAAAAAAA",
    )
    return plan_to_json(plan)


@pytest.mark.parametrize(("size", "seed", "per_job"), sorted(PINNED))
def test_the_plan_is_byte_for_byte_the_pinned_one(size: int, seed: int, per_job: int) -> None:
    text = _plan_json(size, seed, per_job)
    summary = json.loads(text)["summary"]
    pinned_digest, pinned_summary = PINNED[(size, seed, per_job)]
    assert " ".join(f"{k}={v}" for k, v in summary.items()) == pinned_summary
    assert hashlib.sha256(text.encode()).hexdigest() == pinned_digest


def test_the_corpora_exercise_every_kind_of_fix() -> None:
    # A pin proves little over corpora that plan nothing: check what they plan.
    text = "".join(_plan_json(*key) for key in sorted(PINNED))
    for phrase in (
        "legacy run ID (structured SR) converted",
        "legacy run ID (job process ID) converted",
        "legacy status",
        "Run ID normalised",
        "Stale: still Running",
        "Status is empty (the run's first write never came)",
        "merged into this",
        "job row created from",
        "is unmappable",
        "stored as text",
        "is greater than",
        "disagrees with the Run ID",
        "is in the future",
        "aggregates disagree",
        "aggregates missing",
        "Start Time empty: taken from the client rows",
        "cannot be converted",
        "[earlier notes cut: System Notes holds at most",
    ):
        assert phrase in text, phrase
