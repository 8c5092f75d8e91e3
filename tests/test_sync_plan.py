"""Pure detection (:func:`build_plan` on raw records, no server): configuration variants,
determinism and input checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from jobtrack_airtable.admin.sync import Action, build_plan, plan_to_json
from jobtrack_airtable.errors import InvalidInputError
from jobtrack_airtable.metrics import AGGREGATE_KEYS
from jobtrack_airtable.schema import Schema, load_schema
from tests.helpers import NOW, STALE, at

BASE_ID = "appJobtrackTest01"


def rec(n: int, fields: dict[str, Any], created: str = "2025-09-30T10:00:00.000Z") -> dict:
    return {"id": f"rec{n:014d}", "createdTime": created, "fields": fields}


def plan_of(jobs: list[dict], clients: list[dict], schema: Schema | None = None) -> Any:
    return build_plan(
        jobs, clients, schema=schema or load_schema(), now=NOW, stale_after=STALE, base_id=BASE_ID
    )


def test_aggregates_disabled_in_the_schema_are_neither_checked_nor_written() -> None:
    data = load_schema().model_dump()
    for key in AGGREGATE_KEYS:
        data["tables"]["jobs"]["fields"][key]["enabled"] = False
    schema = Schema.model_validate(data)
    clients = [
        rec(
            1,
            {
                "Run ID": "250930-100000-A",
                "Client ID": "A",
                "Status": "Completed",
                "Profiles Examined for Scoring": 5,
                "Start Time": "2025-09-30T10:00:05.000Z",
                "End Time": "2025-09-30T10:05:00.000Z",
            },
        )
    ]
    # An existing finished job: nothing to recompute.
    assert (
        plan_of(
            [
                rec(
                    2,
                    {
                        "Run ID": "250930-100000",
                        "Status": "Completed",
                        "Start Time": "2025-09-30T10:00:00.000Z",
                        "End Time": "2025-09-30T10:05:00.000Z",
                    },
                )
            ],
            clients,
            schema,
        ).records
        == []
    )
    # An orphan: its job row is created without aggregate fields.
    plan = plan_of([], clients, schema)
    (created,) = plan.records
    assert created.action is Action.CREATE
    # Plans speak logical keys, in schema order; the names are for renderers only.
    assert [c.field for c in created.changes] == [
        "run_id",
        "status",
        "start_time",
        "end_time",
        "system_notes",
    ]
    assert [plan.field_name("jobs", c.field) for c in created.changes][:2] == ["Run ID", "Status"]


def test_plans_are_deterministic() -> None:
    jobs = [rec(i, {"Run ID": f"250930-1{i:02d}000.0", "Status": "Success"}) for i in range(20)]
    clients = [
        rec(100 + i, {"Run ID": f"250930-1{i % 20:02d}000-C{i}", "Status": "Done"})
        for i in range(60)
    ]
    first = plan_to_json(plan_of(jobs, clients))
    assert plan_to_json(plan_of(list(reversed(jobs)), list(reversed(clients)))) == first


def test_a_stale_job_with_an_unconvertible_id_is_still_failed_and_flagged() -> None:
    job = rec(1, {"Run ID": "nightly run", "Status": "Running", "Last Updated": at(hours=9)})
    (entry,) = plan_of([job], []).records
    assert entry.action is Action.UPDATE
    assert {c.field: c.new for c in entry.changes}["status"] == "Failed"
    assert "'nightly run' cannot be converted" in entry.attention[0]


def test_a_client_run_id_in_the_jobs_table_is_flagged() -> None:
    (entry,) = plan_of([rec(1, {"Run ID": "250930-100000-Guy", "Status": "Completed"})], []).records
    assert entry.action is Action.ATTENTION
    assert "is a client run ID" in entry.attention[0]


def test_unmappable_duplicate_status_is_not_merged_in() -> None:
    old = rec(
        1,
        {"Run ID": "250930-100000-A", "Client ID": "A", "Status": "Completed"},
        "2025-09-30T10:00:00.000Z",
    )
    new = rec(
        2,
        {"Run ID": "250930-100000-A", "Client ID": "A", "Status": "Recovery"},
        "2025-09-30T10:00:01.000Z",
    )
    job = rec(3, {"Run ID": "250930-100000", "Status": "Running", "Last Updated": at(minutes=1)})
    plan = plan_of([job], [old, new])
    survivor = next(r for r in plan.records if r.record_id == old["id"])
    assert "Status" not in {c.field for c in survivor.changes}
    assert any("unmappable Status 'Recovery'" in a for a in survivor.attention)


@pytest.mark.parametrize(
    ("now", "stale_after"),
    [(datetime(2025, 10, 1), STALE), (NOW, timedelta(0)), (NOW, 7200)],
)
def test_bad_arguments_are_refused(now: Any, stale_after: Any) -> None:
    with pytest.raises(InvalidInputError):
        build_plan([], [], schema=load_schema(), now=now, stale_after=stale_after, base_id=BASE_ID)


def test_non_records_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="not an Airtable record"):
        plan_of([{"fields": {}}], [])
