"""Schema check and init (jobtrack_airtable.admin.schema_check) against the meta API."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobtrack_airtable.admin.schema_check import (
    check_schema,
    compare_schema,
    fetch_meta,
    field_model,
    init_schema,
)
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.schema import Schema, load_schema
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.transport.client import Connection

from .conftest import TEST_TOKEN, MakeLocalAirtable


def _connect(srv: LocalAirtable, schema: Schema | None = None) -> Connection:
    settings = Settings(
        _env_file=None,
        api_key=TEST_TOKEN,
        base_id=srv.base_id,
        endpoint_url=srv.url,
        rate_limit=0,
    )
    return Connection.from_settings(settings, schema=schema or load_schema())


@pytest.fixture
def good_meta(local_airtable: LocalAirtable) -> dict[str, Any]:
    return fetch_meta(_connect(local_airtable))


def _field(meta: dict[str, Any], table: str, name: str) -> dict[str, Any]:
    t = next(t for t in meta["tables"] if t["name"] == table)
    return next(f for f in t["fields"] if f["name"] == name)


def _drop_field(meta: dict[str, Any], table: str, name: str) -> dict[str, Any]:
    meta = copy.deepcopy(meta)
    t = next(t for t in meta["tables"] if t["name"] == table)
    t["fields"] = [f for f in t["fields"] if f["name"] != name]
    return meta


# -- compare (pure) ---------------------------------------------------------------------------


def test_a_base_built_from_the_schema_matches(good_meta: dict[str, Any]) -> None:
    report = compare_schema(load_schema(), good_meta)
    assert report.ok, report.problems
    assert report.tables_checked == 2
    assert report.fields_checked == sum(
        1 for t in load_schema().tables.values() for _ in t.enabled_fields()
    )


def test_missing_table_and_fields(good_meta: dict[str, Any]) -> None:
    meta = copy.deepcopy(good_meta)
    meta["tables"] = [t for t in meta["tables"] if t["name"] != "Client Run Results"]
    meta = _drop_field(meta, "Job Tracking", "Stream")
    meta = _drop_field(meta, "Job Tracking", "Clients Processed")
    report = compare_schema(load_schema(), meta)
    kinds = {(p.kind, p.table, p.field) for p in report.problems}
    assert kinds == {
        ("missing_table", "Client Run Results", None),
        ("missing_field", "Job Tracking", "Stream"),
        ("missing_field", "Job Tracking", "Clients Processed"),
    }
    optional = next(p for p in report.problems if p.field == "Clients Processed")
    assert optional.hint and "enabled = false" in optional.hint
    stream = next(p for p in report.problems if p.field == "Stream")
    assert stream.hint is None and stream.field_key == "stream"


def test_wrong_types_and_compatible_types(good_meta: dict[str, Any]) -> None:
    meta = copy.deepcopy(good_meta)
    _field(meta, "Job Tracking", "Stream")["type"] = "singleLineText"
    _field(meta, "Job Tracking", "Duration")["type"] = "rollup"  # computed either way: fine
    _field(meta, "Job Tracking", "Total Tokens Used")["type"] = "number"  # would stay empty
    _field(meta, "Client Run Results", "Apify API Costs")["type"] = "currency"  # a number too
    _field(meta, "Job Tracking", "System Notes")["type"] = "richText"
    report = compare_schema(load_schema(), meta)
    problems = {(p.field, p.expected, p.actual) for p in report.problems}
    assert problems == {
        ("Stream", "number", "singleLineText"),
        ("Total Tokens Used", "formula", "number"),
    }
    assert all(p.kind == "wrong_type" for p in report.problems)


def test_missing_select_options(good_meta: dict[str, Any]) -> None:
    meta = copy.deepcopy(good_meta)
    status = _field(meta, "Client Run Results", "Status")
    status["options"]["choices"] = [
        c for c in status["options"]["choices"] if c["name"] != "No Leads To Score"
    ]
    status["options"]["choices"].append({"id": "selX", "name": "Success"})  # extra: fine
    report = compare_schema(load_schema(), meta)
    [problem] = report.problems
    assert problem.kind == "missing_options"
    assert problem.options == ("No Leads To Score",)
    assert report.to_json()["problems"][0]["options"] == ["No Leads To Score"]


def test_disabled_fields_are_not_checked(good_meta: dict[str, Any]) -> None:
    data = load_schema().model_dump()
    data["tables"]["jobs"]["fields"]["clients_processed"]["enabled"] = False
    schema = Schema.model_validate(data)
    meta = _drop_field(good_meta, "Job Tracking", "Clients Processed")
    assert compare_schema(schema, meta).ok


def test_field_models() -> None:
    jobs = load_schema().jobs
    assert field_model(jobs.field("run_id")) == {"name": "Run ID", "type": "singleLineText"}
    assert field_model(jobs.field("stream")) == {
        "name": "Stream",
        "type": "number",
        "options": {"precision": 0},
    }
    start = field_model(jobs.field("start_time"))
    assert start is not None and start["options"]["timeZone"] == "utc"
    assert field_model(jobs.field("total_tokens")) is None
    formula = field_model(jobs.field("total_tokens"), create_formulas=True)
    assert formula == {
        "name": "Total Tokens Used",
        "type": "formula",
        "options": {"formula": "{Profile Scoring Tokens} + {Post Scoring Tokens}"},
    }
    costs = field_model(load_schema().client_runs.field("apify_costs"))
    assert costs is not None and costs["options"]["precision"] == 2


# -- against the local server -----------------------------------------------------------------


def test_check_schema_costs_one_request(local_airtable: LocalAirtable) -> None:
    local_airtable.request_log.clear()
    assert check_schema(_connect(local_airtable)).ok
    assert local_airtable.request_log.count() == 1


def test_init_creates_everything_on_the_local_server(
    make_local_airtable: MakeLocalAirtable,
) -> None:
    # Formula fields through the meta API: as the embedded base allows (Airtable does not).
    srv = make_local_airtable(create_tables=False, formula_fields_via_api=True)
    conn = _connect(srv)
    steps: list[str] = []
    result = init_schema(conn, create_formulas=True, on_step=steps.append)
    assert result.after.ok, result.after.problems
    assert result.created_tables == ["Job Tracking", "Client Run Results"]
    assert ("Job Tracking", "Total Tokens Used") in result.created_fields
    assert result.manual == []
    assert steps[0] == "create table 'Job Tracking' (16 fields)"
    # The formula fields work: the local server computes them.
    table = srv.table("jobs")
    rec = table.create(
        {"Run ID": "250930-141522", "Profile Scoring Tokens": 3, "Post Scoring Tokens": 4}
    )
    assert table.get(rec["id"])["fields"]["Total Tokens Used"] == 7
    # A second run has nothing to do.
    again = init_schema(conn, create_formulas=True)
    assert not again.changed and again.after.ok


def test_init_against_airtable_leaves_formulas_as_manual_steps(
    make_local_airtable: MakeLocalAirtable,
) -> None:
    srv = make_local_airtable(create_tables=False)
    conn = _connect(srv)
    result = init_schema(conn, create_formulas=False)
    assert set(result.created_tables) == {"Job Tracking", "Client Run Results"}
    manual = {(m.table, m.field) for m in result.manual}
    assert manual == {
        ("Job Tracking", "Duration"),
        ("Job Tracking", "Total Tokens Used"),
        ("Client Run Results", "Duration"),
        ("Client Run Results", "Profile Scoring Success Rate"),
        ("Client Run Results", "Post Scoring Success Rate"),
    }
    tokens = next(m for m in result.manual if m.field == "Total Tokens Used")
    assert "{Profile Scoring Tokens} + {Post Scoring Tokens}" in tokens.action
    assert not result.after.ok
    assert {p.kind for p in result.after.problems} == {"missing_field"}
    doc = result.to_json()
    assert doc["ok"] is False and len(doc["manual_steps"]) == 5


def test_init_adds_missing_fields_by_table_id_and_never_converts(
    local_airtable: LocalAirtable,
) -> None:
    srv = local_airtable
    table = srv.store.table(srv.base_id, "Job Tracking")
    table.fields = [f for f in table.fields if f.name not in ("Stream", "Status")]
    srv.store.table(srv.base_id, "Client Run Results").field_named("Client Name").type = "number"  # type: ignore[union-attr]
    conn = _connect(srv)
    srv.request_log.clear()
    result = init_schema(conn)
    assert sorted(result.created_fields) == [("Job Tracking", "Status"), ("Job Tracking", "Stream")]
    [manual] = result.manual
    assert manual.field == "Client Name" and "convert" in manual.action
    assert [p.kind for p in result.after.problems] == ["wrong_type"]
    posts = [e.path for e in srv.request_log.entries if e.method == "POST"]
    assert len(posts) == 2 and all(f"/tables/{table.id}/fields" in p for p in posts)
    status = _field(fetch_meta(conn), "Job Tracking", "Status")
    assert [c["name"] for c in status["options"]["choices"]] == list(
        load_schema().jobs.field("status").options or ()
    )
