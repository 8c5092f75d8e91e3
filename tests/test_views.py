"""Views of runs (jobtrack_airtable.admin.views): runs list / runs show as library functions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from jobtrack_airtable.admin.views import (
    detail_to_json,
    list_runs,
    parse_since,
    run_time,
    runs_to_json,
    show_run,
)
from jobtrack_airtable.cli.demo import DemoRecord, demo_records
from jobtrack_airtable.cli.embedded import seed_store
from jobtrack_airtable.errors import InvalidInputError, InvalidStatusError, NotFoundError
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.metrics import AGGREGATE_KEYS
from jobtrack_airtable.schema import Schema, load_schema
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.repository import Repository

from .conftest import TEST_TOKEN, MakeLocalAirtable

NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
DEMO = demo_records(now=NOW)


def _connect(srv: LocalAirtable) -> Repository:
    settings = Settings(
        _env_file=None,
        api_key=TEST_TOKEN,
        base_id=srv.base_id,
        endpoint_url=srv.url,
        rate_limit=0,
    )
    return Repository(Connection.from_settings(settings, schema=srv.schema))


@pytest.fixture
def seeded(make_local_airtable: MakeLocalAirtable) -> tuple[LocalAirtable, Repository]:
    srv = make_local_airtable()
    seed_store(srv.store, srv.base_id, srv.schema, now=NOW)
    return srv, _connect(srv)


def _tagged(tag: str) -> DemoRecord:
    return next(r for r in DEMO if tag in r.tags)


def _job_of(pred: Callable[[DemoRecord], bool]) -> DemoRecord:
    return next(r for r in DEMO if r.table == "jobs" and pred(r))


# -- parse_since ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("7d", NOW - timedelta(days=7)),
        ("2W", NOW - timedelta(weeks=2)),
        ("2025-09-30", datetime(2025, 9, 30, tzinfo=UTC)),
        ("2025-09-30T14:00:00Z", datetime(2025, 9, 30, 14, tzinfo=UTC)),
        ("2025-09-30T16:00:00+02:00", datetime(2025, 9, 30, 14, tzinfo=UTC)),
        ("2025-09-30T14:00:00", datetime(2025, 9, 30, 14, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "7x", "2025-13-01", "-3d"])
def test_parse_since_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidInputError, match="--since"):
        parse_since(text, now=NOW)


# -- list_runs --------------------------------------------------------------------------------


def test_list_runs_newest_first_with_limit(seeded: tuple[LocalAirtable, Repository]) -> None:
    _, repo = seeded
    rows = list_runs(repo)
    assert len(rows) == sum(r.table == "jobs" for r in DEMO)
    times = [run_time(r) for r in rows]
    assert times == sorted(times, reverse=True)  # type: ignore[type-var]
    newest = max((r for r in DEMO if r.table == "jobs"), key=lambda r: r.created_time)
    assert rows[0].run_id == newest.fields["run_id"]
    assert [r.run_id for r in list_runs(repo, limit=3)] == [r.run_id for r in rows[:3]]


def test_list_runs_status_matches_legacy_spellings(
    seeded: tuple[LocalAirtable, Repository],
) -> None:
    _, repo = seeded
    completed = list_runs(repo, status="completed")
    raws = {r.status_raw for r in completed}
    assert raws == {"Completed", "Success"}  # the legacy row is listed under its standard
    running = list_runs(repo, status=Status.RUNNING)
    assert {r.status_raw for r in running} == {"Running"}
    assert len(running) == 2
    with pytest.raises(InvalidStatusError):
        list_runs(repo, status="Bogus")
    with pytest.raises(InvalidInputError, match="--limit"):
        list_runs(repo, limit=0)


def test_list_runs_since_filters_in_the_query(
    seeded: tuple[LocalAirtable, Repository],
) -> None:
    srv, repo = seeded
    srv.request_log.clear()
    rows = list_runs(repo, since=NOW - timedelta(days=2))
    # The demo jobs start every 17 h from 12 min before NOW: 3 fall within two days.
    assert len(rows) == 3
    assert all(run_time(r) >= NOW - timedelta(days=2) for r in rows)  # type: ignore[operator]
    [entry] = srv.request_log.entries
    assert "filterByFormula" in entry.query


def test_list_runs_without_a_start_time_field_uses_created_time(
    make_local_airtable: MakeLocalAirtable,
) -> None:
    data = load_schema().model_dump()
    data["tables"]["jobs"]["fields"]["start_time"]["enabled"] = False
    schema = Schema.model_validate(data)
    srv = make_local_airtable(schema=schema)
    seed_store(srv.store, srv.base_id, schema, now=NOW)
    repo = _connect(srv)
    rows = list_runs(repo, since=NOW - timedelta(days=2))
    assert len(rows) == 3
    assert all(r.start_time is None for r in rows)


def test_runs_to_json_is_serialisable(seeded: tuple[LocalAirtable, Repository]) -> None:
    _, repo = seeded
    doc = runs_to_json(list_runs(repo, limit=5), filters={"limit": 5})
    text = json.dumps(doc)
    assert json.loads(text)["format_version"] == 1
    assert doc["count"] == 5
    first = doc["runs"][0]
    assert first["start_time"].endswith("Z")
    assert set(first) >= {"run_id", "status", "standard_status", "stream", "aggregates"}


# -- show_run ---------------------------------------------------------------------------------


def test_show_run_computes_aggregates_and_reports_drift(
    seeded: tuple[LocalAirtable, Repository],
) -> None:
    _, repo = seeded
    job = _tagged("wrong_aggregates")
    run_id = job.fields["run_id"]
    clients = [
        r for r in DEMO if r.table == "client_runs" and r.fields["run_id"].startswith(run_id)
    ]
    detail = show_run(repo, run_id)
    assert detail.job is not None and detail.job.run_id == run_id
    assert len(detail.clients) == len(clients)
    assert detail.computed.clients_processed == len(clients)
    expected = sum(c.fields.get("profiles_examined", 0) for c in clients)
    assert detail.computed.profiles_examined == expected
    assert detail.drift["profiles_examined"] == (expected + 37, expected)
    assert detail.drift["clients_processed"] == (len(clients) + 1, len(clients))


def test_show_run_healthy_job_has_no_drift(seeded: tuple[LocalAirtable, Repository]) -> None:
    _, repo = seeded
    healthy = _job_of(lambda r: not r.tags and r.fields["status"] == "Completed")
    detail = show_run(repo, healthy.fields["run_id"])
    assert detail.drift == {}
    assert detail.duplicates == []
    assert detail.suggested_status is Status.COMPLETED


def test_show_run_running_job_has_no_drift_for_unwritten_aggregates(
    seeded: tuple[LocalAirtable, Repository],
) -> None:
    _, repo = seeded
    running = _job_of(lambda r: r.fields["status"] == "Running" and not r.tags)
    detail = show_run(repo, running.fields["run_id"])
    assert detail.stored and all(v is None for v in detail.stored.values())
    assert detail.drift == {}
    assert detail.computed.clients_processed == len(detail.clients) > 0


def test_show_run_works_when_the_base_lacks_aggregate_fields(
    make_local_airtable: MakeLocalAirtable,
) -> None:
    data = load_schema().model_dump()
    for key in AGGREGATE_KEYS:
        data["tables"]["jobs"]["fields"][key]["enabled"] = False
    data["tables"]["jobs"]["fields"]["total_tokens"]["enabled"] = False
    schema = Schema.model_validate(data)
    srv = make_local_airtable(schema=schema)
    seed_store(srv.store, srv.base_id, schema, now=NOW)
    repo = _connect(srv)
    healthy = _job_of(lambda r: not r.tags and r.fields["status"] == "Completed")
    detail = show_run(repo, healthy.fields["run_id"])
    assert detail.stored == {} and detail.drift == {}
    assert detail.computed.clients_processed == len(detail.clients) > 0
    assert detail.computed.total_tokens > 0
    doc = detail_to_json(detail)
    assert doc["computed"]["clients_processed"] == len(detail.clients)
    assert doc["stored"] == {}


def test_show_run_orphan_clients(seeded: tuple[LocalAirtable, Repository]) -> None:
    _, repo = seeded
    # Job 12 of the demo lost its job row: its client rows are orphans.
    base_ids = {r.fields["run_id"] for r in DEMO if r.table == "jobs"}
    orphan = next(
        r
        for r in DEMO
        if r.table == "client_runs"
        and r.fields["run_id"][:13] not in base_ids
        and r.fields["run_id"][:2].isdigit()
    )
    detail = show_run(repo, orphan.fields["run_id"][:13])
    assert detail.job is None
    assert detail.clients and detail.stored == {}


def test_show_run_duplicates_and_legacy_ids(seeded: tuple[LocalAirtable, Repository]) -> None:
    _, repo = seeded
    dup = _tagged("duplicate")
    detail = show_run(repo, dup.fields["run_id"])
    assert detail.job is not None and len(detail.duplicates) == 1
    assert detail.job.created_time < detail.duplicates[0].created_time  # type: ignore[operator]

    legacy = _tagged("legacy_job_process_id").fields["run_id"]
    detail = show_run(repo, legacy)
    assert detail.job is not None and detail.job.run_id == legacy
    assert detail.base_run_id is not None and detail.clients


def test_show_run_accepts_a_client_run_id(seeded: tuple[LocalAirtable, Repository]) -> None:
    _, repo = seeded
    healthy = _job_of(lambda r: not r.tags and r.fields["status"] == "Completed")
    base = healthy.fields["run_id"]
    client = next(r for r in DEMO if r.table == "client_runs" and r.fields["run_id"][:13] == base)
    detail = show_run(repo, client.fields["run_id"])
    assert detail.base_run_id == base and detail.job is not None


def test_show_run_not_found(seeded: tuple[LocalAirtable, Repository]) -> None:
    _, repo = seeded
    with pytest.raises(NotFoundError, match="no run '200101-000000'"):
        show_run(repo, "200101-000000")
    with pytest.raises(NotFoundError, match="no run"):
        show_run(repo, 'it\'s "quoted"')  # escaped into the formula, not a formula error
    with pytest.raises(InvalidInputError):
        show_run(repo, "  ")


def test_detail_to_json_is_serialisable(seeded: tuple[LocalAirtable, Repository]) -> None:
    _, repo = seeded
    job = _tagged("wrong_aggregates")
    doc = json.loads(json.dumps(detail_to_json(show_run(repo, job.fields["run_id"]))))
    assert doc["format_version"] == 1
    assert doc["job"]["run_id"] == job.fields["run_id"]
    assert (
        doc["drift"]["profiles_examined"]["stored"] - doc["drift"]["profiles_examined"]["computed"]
        == 37
    )
    cost = next(c["metrics"]["apify_costs"] for c in doc["clients"] if c["metrics"])
    assert isinstance(cost, float)
    assert doc["suggested_status"] in {s.value for s in Status}
