"""Sync as a whole: the demo dataset converging in one apply, saved plans applied exactly or
refused, JSON, rendering, request budgets counted by the local server, hostile values, scale."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from jobtrack_airtable.admin.sync import (
    FORMAT_VERSION,
    Action,
    Plan,
    PlanFormatError,
    StalePlanError,
    apply_budget,
    apply_plan,
    load_plan,
    plan_budget,
    plan_from_json,
    plan_to_json,
    save_plan,
    sync_and_apply,
)
from jobtrack_airtable.cli.embedded import seed_store
from jobtrack_airtable.cli.render import render_rich, render_text, summary_line
from tests.helpers import (  # noqa: F401  (base is a fixture)
    CRR,
    JOBS,
    NOW,
    STALE,
    SyncBase,
    at,
    base_fixture,
    changes,
    entries,
    fresh_running_job,
)

JOBS_PATH = "Job%20Tracking"
CRR_PATH = "Client%20Run%20Results"


def counts(b: SyncBase) -> dict[tuple[str, str], int]:
    """Requests since the last clear by (method, table path)."""
    return {
        (m, t): b.log.count(method=m, path=p)
        for m in ("GET", "POST", "PATCH", "DELETE")
        for t, p in (("jobs", JOBS_PATH), ("client_runs", CRR_PATH))
        if b.log.count(method=m, path=p)
    }


def expected_requests(b: SyncBase, plan: Plan) -> dict[tuple[str, str], int]:
    budget = apply_budget(plan, b.schema)
    out: dict[tuple[str, str], int] = {}
    for t in (JOBS, CRR):
        # Creates are upserts on the natural key (PATCH), so they share the method of updates.
        for method, n in (
            ("GET", budget.reread[t]),
            ("PATCH", budget.updates[t] + budget.creates[t]),
            ("DELETE", budget.deletes[t]),
        ):
            if n:
                out[(method, t)] = n
    return out


# --- the demo dataset --------------------------------------------------------------------


def test_demo_dataset_converges_in_one_apply(base: SyncBase) -> None:
    seeded = seed_store(base.srv.store, base.srv.base_id, base.schema, now=NOW)
    base.log.clear()
    plan = base.plan()
    assert base.log.total == plan_budget(seeded["jobs"], seeded["client_runs"])

    reasons = "\n".join(line for r in plan.records for line in (*r.reasons, *r.attention))
    for planted in (
        "(job process ID) converted",
        "(bypass ID) converted",
        "(numeric artefact) converted",
        "(doubled suffix) converted",
        "(Apify-tagged) converted",
        "(structured SR) converted",
        "legacy status 'Success' mapped",
        "Status 'Recovery' is unmappable",
        "Stale: still Running",
        "aggregates missing",
        "aggregates disagree",
        "have no job row",
        "disagrees with the Run ID's client",
        "duplicate row(s)",
        "holds -3: negative",
        "is greater than",
    ):
        assert planted in reasons, planted
    s = plan.summary
    assert s.create >= 1 and s.update >= 10 and s.delete == 2 and s.attention >= 3

    base.log.clear()
    base.apply(plan)
    assert counts(base) == expected_requests(base, plan)

    again = base.plan()
    assert not again.has_changes
    # What needs a human stays flagged, and nothing else is left.
    assert {r.record_id for r in again.records} == {
        r.record_id for r in plan.records if r.attention and r.table == CRR
    }
    assert (
        summary_line(again)
        == f"Plan: 0 to create, 0 to update, 0 to delete, {len(again.records)} need attention."
    )


def test_sync_and_apply_then_nothing_left(base: SyncBase) -> None:
    seed_store(base.srv.store, base.srv.base_id, base.schema, now=NOW)
    plan, result = sync_and_apply(base.repo, now=NOW, stale_after=STALE)
    s = plan.summary
    assert result.total == s.create + s.update + s.delete
    assert not base.plan().has_changes


# --- saved plans: exact or refused -------------------------------------------------------


def _legacy_fixture(b: SyncBase) -> dict[str, str]:
    ids = {
        "job": b.add(
            JOBS, {"Run ID": "250930-100000.0", "Status": "Completed", "Start Time": at(hours=5)}
        ),
        "c1": b.add(
            CRR,
            {
                "Run ID": "250930-100000-A",
                "Client ID": "A",
                "Status": "Success",
                "Start Time": at(hours=5),
                "End Time": at(hours=4),
            },
        ),
        "c2": b.add(
            CRR,
            {
                "Run ID": "250930-100000-B",
                "Client ID": "B",
                "Status": "Completed",
                "Start Time": at(hours=5),
                "End Time": at(hours=4),
            },
        ),
        "orphan": b.add(
            CRR, {"Run ID": "250930-120000-A", "Client ID": "A", "Status": "Completed"}
        ),
    }
    return ids


def test_saved_plan_round_trips_and_applies_exactly(base: SyncBase, tmp_path: Path) -> None:
    ids = _legacy_fixture(base)
    plan = base.plan()
    path = save_plan(plan, tmp_path / "plan.json")
    loaded = load_plan(path)
    assert loaded == plan
    assert json.loads(path.read_text())["format_version"] == FORMAT_VERSION == 2
    base.apply(loaded)
    assert base.get(JOBS, ids["job"])["Run ID"] == "250930-100000"
    assert base.get(CRR, ids["c1"])["Status"] == "Completed"
    assert "250930-120000" in base.by_key(JOBS)
    assert not base.plan().has_changes


@pytest.mark.parametrize("mutation", ["changed", "deleted", "appeared", "new_client_row"])
def test_stale_saved_plan_is_refused_and_nothing_written(
    base: SyncBase, tmp_path: Path, mutation: str
) -> None:
    ids = _legacy_fixture(base)
    plan = load_plan(save_plan(base.plan(), tmp_path / "plan.json"))
    store, base_id = base.srv.store, base.srv.base_id
    if mutation == "changed":
        store.update_records(base_id, "Client Run Results", [(ids["c1"], {"Status": "Failed"})])
        expected = (CRR, ids["c1"], "changed since the plan")
    elif mutation == "deleted":
        store.delete_records(base_id, "Job Tracking", [ids["job"]])
        expected = (JOBS, ids["job"], "deleted since the plan")
    elif mutation == "appeared":
        # Someone created the job row the plan would create for the orphan client row.
        new = base.add(JOBS, {"Run ID": "250930-120000", "Status": "Running"})
        expected = (JOBS, new, "appeared since the plan with a Run ID the plan writes")
    else:
        # A client row of a job whose aggregates the plan writes: the aggregate would be wrong.
        new = base.add(CRR, {"Run ID": "250930-100000-C", "Client ID": "C", "Status": "Completed"})
        expected = (CRR, new, "appeared since the plan under a job whose aggregates")
    before = {t: base.rows(t) for t in (JOBS, CRR)}
    base.log.clear()

    with pytest.raises(StalePlanError) as info:
        base.apply(plan)

    found = [(r.table, r.record_id, r.problem) for r in info.value.rows]
    assert [f[:2] for f in found] == [expected[:2]]
    assert found[0][2].startswith(expected[2])
    assert "nothing was written" in str(info.value)
    assert base.writes() == 0 and base.log.count(method="GET") >= 1
    assert {t: base.rows(t) for t in (JOBS, CRR)} == before


def test_plan_for_another_base_is_refused(base: SyncBase) -> None:
    _legacy_fixture(base)
    plan = base.plan().model_copy(update={"base_id": "appSomeOtherBase1"})
    base.log.clear()
    with pytest.raises(PlanFormatError, match="appSomeOtherBase1"):
        base.apply(plan)
    assert base.log.total == 0


# --- JSON ------------------------------------------------------------------------------------


def test_plan_json_has_format_version_and_round_trips(base: SyncBase) -> None:
    _legacy_fixture(base)
    plan = base.plan()
    data = json.loads(plan_to_json(plan))
    assert data["format_version"] == 2
    assert data["summary"] == plan.summary.model_dump()
    update = next(r for r in data["records"] if r["record_id"] and r["action"] == "update")
    assert {"field", "old", "new"} == set(update["changes"][0])
    assert plan_from_json(plan_to_json(plan)) == plan
    assert plan_from_json(plan_to_json(plan, indent=None)) == plan
    # The token never reaches a plan.
    assert base.srv.token not in plan_to_json(plan)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format_version": 3, "records": []}', "format_version 3 is not supported"),
        # Version 1 plans named fields by display name: refused, never misread.
        ('{"format_version": 1, "records": []}', "format_version 1 is not supported"),
        ('{"format_version": "1"}', "format_version '1' is not supported"),
        ('{"records": []}', "no format_version"),
        ("[1]", "must be a JSON object"),
        ("not json", "not valid JSON"),
        ('{"format_version": 2, "base_id": 5}', "malformed"),
    ],
)
def test_unknown_or_malformed_plans_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(PlanFormatError, match=message):
        plan_from_json(text)


def test_load_plan_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "future.json"
    path.write_text('{"format_version": 7}')
    with pytest.raises(PlanFormatError, match=r"future\.json.*format_version 7"):
        load_plan(path)


# --- rendering -------------------------------------------------------------------------------


def test_text_rendering_is_terraform_like_and_exact(base: SyncBase) -> None:
    ids = _legacy_fixture(base)
    base.add(CRR, {"Run ID": "250930-100000-D", "Client ID": "D", "Status": "Recovery"})
    plan = base.plan()
    text = render_text(plan)
    assert text.startswith("Job Tracking\n")
    assert (
        f"  ~ {ids['job']} '250930-100000'\n      Run ID: '250930-100000.0' → '250930-100000'"
        in text
    )
    assert "  + (new row) '250930-120000'\n      Run ID: (empty) → '250930-120000'" in text
    assert f"  ~ {ids['c1']} '250930-100000-A'\n      Status: 'Success' → 'Completed'" in text
    assert "      ! Status 'Recovery' is unmappable" in text
    assert text.index("Client Run Results") > text.index("Job Tracking")
    assert text.splitlines()[-1] == "Plan: 1 to create, 2 to update, 0 to delete, 1 need attention."
    console = Console(record=True, width=300, color_system=None)
    console.print(render_rich(plan), soft_wrap=True)
    assert console.export_text().rstrip("\n") == text


def test_empty_plan_renders_no_changes(base: SyncBase) -> None:
    assert render_text(base.plan()) == "No changes. The base is consistent."


# --- request budgets (SPEC §4), counted by the local server -------------------------------


def test_plan_costs_one_request_per_100_rows(base: SyncBase) -> None:
    base.add_many(
        JOBS,
        [
            {"Run ID": f"250930-10{i // 60:02d}{i % 60:02d}", "Status": "Completed"}
            for i in range(150)
        ],
        created=NOW,
    )
    base.add_many(
        CRR,
        [{"Run ID": f"250930-100000-Client {i}", "Status": "Completed"} for i in range(250)],
        created=NOW,
    )
    pages: list[tuple[str, int]] = []
    base.log.clear()
    base.plan(on_progress=lambda stage, n: pages.append((stage, n)))
    assert counts(base) == {("GET", JOBS): 2, ("GET", CRR): 3}
    assert base.log.count(method="GET", path="/v0/meta/bases/") == 1  # the schema read
    assert base.log.total == plan_budget(150, 250) == 1 + 2 + 3  # schema, ⌈150/100⌉, ⌈250/100⌉
    assert pages == [
        ("read schema", 2),
        ("read jobs", 100),
        ("read jobs", 50),
        ("read client_runs", 100),
        ("read client_runs", 100),
        ("read client_runs", 50),
    ]


def test_apply_costs_ceil_k_over_10_per_kind(base: SyncBase) -> None:
    base.add(JOBS, fresh_running_job("250930-100000"))
    t0 = datetime(2025, 9, 30, 10, tzinfo=UTC)
    # 23 legacy statuses (updates), 12 duplicates (deletes; their survivors are among the 23
    # only if they share keys, so use other keys), 11 orphan bases (job creates).
    for i in range(23):
        base.add(CRR, {"Run ID": f"250930-100000-U{i}", "Client ID": f"U{i}", "Status": "Done"})
    for i in range(12):
        for n in range(2):
            base.add(
                CRR,
                {"Run ID": f"250930-100000-D{i}", "Client ID": f"D{i}", "Status": "Completed"},
                created=t0 + timedelta(seconds=n),
            )
    for i in range(11):
        base.add(JOBS, fresh_running_job(f"250930-11{i:02d}00"))
        base.add(
            CRR,
            {
                "Run ID": f"250930-12{i:02d}00-O",
                "Client ID": "O",
                "Status": "Running",
                "Last Updated": at(minutes=1),
            },
        )
    plan = base.plan()
    s = plan.summary
    assert (s.create, s.update, s.delete) == (11, 23 + 12, 12)
    # The survivors gain a merge note, so they are updates too: 35 updates → 4 requests.
    budget = apply_budget(plan, base.schema)
    assert budget.updates == {JOBS: 0, CRR: math.ceil(35 / 10)}
    assert budget.creates == {JOBS: math.ceil(11 / 10), CRR: 0}
    assert budget.deletes == {JOBS: 0, CRR: math.ceil(12 / 10)}
    # Both tables are small (≤ 100 rows), so one full listing each is the cheapest re-read.
    assert budget.reread == {JOBS: 1, CRR: 1}
    base.log.clear()
    base.apply(plan)
    assert counts(base) == {
        ("GET", JOBS): 1,
        ("GET", CRR): 1,
        ("PATCH", CRR): 4,
        ("PATCH", JOBS): 2,  # the creates: upserts on Run ID
        ("DELETE", CRR): 2,
    }
    assert base.log.total == budget.total == 10
    assert not base.plan().has_changes


def test_ten_thousand_client_rows_within_budget(base: SyncBase) -> None:
    # Requests only: how fast planning is, is benchmarks/sync_scale.py's job (no timed test).
    jobs, clients = [], []
    for j in range(100):
        run = f"250930-{j // 60 + 10:02d}{j % 60:02d}00"
        jobs.append(fresh_running_job(run))
        clients += [
            {"Run ID": f"{run}-Client {c}", "Client ID": f"Client {c}", "Status": "Completed"}
            for c in range(100)
        ]
    # 25 legacy statuses and one hostile Client ID to fix, spread over the table.
    for i in range(25):
        clients[i * 400]["Status"] = "Success"
    clients[9999]["Client ID"] = 'O\'Brien "{x}"'
    base.add_many(JOBS, jobs, created=NOW - timedelta(hours=1))
    base.add_many(CRR, clients, created=NOW - timedelta(hours=1))

    base.log.clear()
    plan = base.plan()
    assert base.log.total == plan_budget(100, 10_000) == 1 + 1 + 100
    assert plan.summary.update == 26

    budget = apply_budget(plan, base.schema)
    # 26 record IDs fit one targeted formula read, far cheaper than re-listing 10,000 rows.
    assert budget.reread == {JOBS: 0, CRR: 1}
    base.log.clear()
    base.apply(plan)
    assert counts(base) == {("GET", CRR): 1, ("PATCH", CRR): 3}
    assert base.log.total == budget.total == 4
    (reread,) = [e for e in base.log.entries if e.method == "GET"]
    assert "RECORD_ID()" in reread.query["filterByFormula"][0]


# --- hostile values ----------------------------------------------------------------------


HOSTILE_NOTES = "it's a \"quote\"\n{Run ID}='x' OR TRUE()\n\\ back\\slash\ttab ünï"
HOSTILE_CLIENT = 'Dean "Deano" O\'Brien {x} \\ y'


def test_hostile_values_survive_merge_and_apply_byte_for_byte(base: SyncBase) -> None:
    run = f"250930-100000-{HOSTILE_CLIENT}"
    base.add(JOBS, fresh_running_job("250930-100000"))
    t0 = datetime(2025, 9, 30, 10, tzinfo=UTC)
    old = base.add(
        CRR,
        {
            "Run ID": run,
            "Client ID": HOSTILE_CLIENT,
            "Status": "Completed",
            "System Notes": HOSTILE_NOTES,
        },
        created=t0,
    )
    dup = base.add(
        CRR,
        {
            "Run ID": f"{run}-{HOSTILE_CLIENT}",
            "Status": "Completed",
            "Error Details": HOSTILE_NOTES + "\r\n",
        },
        created=t0 + timedelta(seconds=1),
    )
    # Enough rows that the re-read is a formula (with the hostile key in it), not a listing.
    base.add_many(
        CRR,
        [
            {
                "Run ID": f"250930-100000-Filler {i}",
                "Client ID": f"Filler {i}",
                "Status": "Completed",
            }
            for i in range(150)
        ],
        created=t0,
    )

    plan = base.plan()
    assert changes(plan, CRR, old) == {
        "Error Details": (None, HOSTILE_NOTES + "\r\n"),
        "System Notes": (
            HOSTILE_NOTES,
            HOSTILE_NOTES + "\n[2025-10-01T12:00:00.000Z] sync: "
            f"merged duplicate row(s) {dup} into this row",
        ),
    }
    assert entries(plan, CRR, dup)[0].action is Action.DELETE
    assert repr(HOSTILE_NOTES) in render_text(plan)
    assert plan_from_json(plan_to_json(plan)) == plan

    base.log.clear()
    base.apply(plan)
    (reread,) = [e for e in base.log.entries if e.method == "GET"]
    assert "filterByFormula" in reread.query
    row = base.get(CRR, old)
    assert row["Run ID"] == run and row["Client ID"] == HOSTILE_CLIENT
    assert row["System Notes"].startswith(HOSTILE_NOTES + "\n[")
    assert row["Error Details"] == HOSTILE_NOTES + "\r\n"
    assert dup not in base.rows(CRR)
    assert not base.plan().has_changes


def test_progress_reports_every_stage(base: SyncBase) -> None:
    _legacy_fixture(base)
    plan = base.plan()
    stages: list[str] = []
    apply_plan(base.repo, plan, on_progress=lambda stage, n: stages.append(stage))
    assert stages[:2] == ["verify jobs", "verify client_runs"]
    assert {"update jobs", "update client_runs", "create jobs"} <= set(stages)
