"""The streaming plan (issue 11 item 3): pages are turned into compact rows as they arrive,
read ahead by a thread; the result is exactly the plan of all records at once, an expired
listing restarts cleanly, and the requests stay exactly 1 + ⌈J/100⌉ + ⌈C/100⌉."""

from __future__ import annotations

import pytest

from jobtrack_airtable.admin.sync import Plan, build_plan, plan_budget, plan_to_json
from jobtrack_airtable.local import LocalAirtable
from tests.conftest import MakeLocalAirtable
from tests.helpers import CRR, JOBS, NOW, STALE, SyncBase, at, base_fixture  # noqa: F401

CLIENTS = 1_000


def _fill(b: SyncBase) -> None:
    b.add_many(
        JOBS,
        [{"Run ID": f"250930-1{j:02d}000", "Status": "Completed"} for j in range(20)],
        created=NOW,
    )
    rows = []
    for i in range(CLIENTS):
        status = "Running" if i % 97 == 0 else ("Success" if i % 41 == 0 else "Completed")
        rows.append(
            {
                "Run ID": f"250930-1{i % 20:02d}000-Client {i}",
                "Client ID": f"Client {i}",
                "Status": status,
                "Last Updated": at(hours=3),
                "Profiles Examined for Scoring": i % 7,
            }
        )
    rows.append(dict(rows[5]))  # a duplicate
    b.add_many(CRR, rows, created=NOW)


def test_streaming_plan_is_the_plan_of_all_records(base: SyncBase) -> None:
    _fill(base)
    base.log.clear()
    streamed = base.plan()
    assert base.log.total == plan_budget(20, CLIENTS + 1) == 1 + 1 + 11
    whole = build_plan(
        base.repo.list_records("jobs"),
        base.repo.list_records("client_runs"),
        schema=base.schema,
        now=NOW,
        stale_after=STALE,
        base_id=base.srv.base_id,
    )
    assert streamed.has_changes
    assert plan_to_json(streamed) == plan_to_json(whole)


def test_an_expired_listing_restarts_and_plans_the_same(
    make_local_airtable: MakeLocalAirtable,
    local_airtable: LocalAirtable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A consumer slower than an offset's idle life, once: the server's listing clock jumps
    # past it (a real sleep against a short idle life expired every page on a loaded CPU).
    srv = make_local_airtable(iterator_idle_seconds=60)
    slow, quick = SyncBase(srv), SyncBase(local_airtable)
    _fill(slow)
    _fill(quick)
    waited = []
    skipped = [0.0]
    clock = srv.iterators._clock
    monkeypatch.setattr(srv.iterators, "_clock", lambda: clock() + skipped[0])

    def dawdle(stage: str, _n: int) -> None:
        if stage == "read client_runs" and not waited:
            waited.append(stage)
            skipped[0] = 61.0

    srv.request_log.clear()
    restarted = slow.plan(on_progress=dawdle)
    pages = -(-(CLIENTS + 1) // 100)
    # The client listing was read again from the top after its offset expired.
    assert srv.request_log.count(method="GET", path="Client%20Run%20Results") > pages
    expected = quick.plan()
    assert restarted.summary == expected.summary

    # The same plan (record IDs differ: two servers), with no row read twice.
    def shape(plan: Plan) -> list[tuple[object, ...]]:
        return [(r.key, r.action, [c.field for c in r.changes]) for r in plan.records]

    assert shape(restarted) == shape(expected)
    assert restarted.guards.row_counts == {JOBS: 20, CRR: CLIENTS + 1}
