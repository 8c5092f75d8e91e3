"""Rename-proof schema (issue 15 item 5), end to end against the local server over HTTP.

``schema pin`` writes the base's IDs into a copy of the schema file (comments kept); then
fields *and* tables are renamed in the base through the meta API, and a worker (job start,
client runs, completion with aggregation), ``sync`` plan/apply and ``schema check`` keep
working.  Request counts are exact, from the server's request log: the rename costs the first
formula that names a renamed field one refused listing (422) and one meta read, once per
process; everything else costs what it costs without a rename.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyairtable
import pytest
from typer.testing import CliRunner, Result

from jobtrack_airtable.admin.schema_check import check_schema, fetch_meta
from jobtrack_airtable.admin.schema_pin import pin_schema_file, refuse_default_schema
from jobtrack_airtable.admin.sync import Action, apply_budget, apply_plan, plan_budget, plan_sync
from jobtrack_airtable.cli import app
from jobtrack_airtable.errors import ConfigError, InvalidFormulaError, UnknownFieldError
from jobtrack_airtable.schema import Schema, default_schema_path, load_schema
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.transport import renames
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.worker.tracker import Tracker

#: What the admin renames in the base: (table key, field key) -> new name; tables too.
FIELD_RENAMES = {
    ("jobs", "run_id"): "Job Run ID",
    ("jobs", "stream"): "Worker Stream",
    ("jobs", "profiles_examined"): "Profiles Examined (total)",
    ("client_runs", "run_id"): "Client Run ID",
    ("client_runs", "profiles_examined"): "Profiles Examined",
}
TABLE_RENAMES = {"jobs": "Worker Jobs", "client_runs": "Client Results"}


@pytest.fixture(autouse=True)
def _fresh_process() -> Iterator[None]:
    """Each test starts as a new process would: nothing learnt about renames."""
    renames.forget()
    yield
    renames.forget()


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    path = tmp_path / "schema.toml"
    shutil.copyfile(default_schema_path(), path)
    return path


def cli(srv: TrackingServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """The real CLI, talking to ``srv`` over HTTP as it would to Airtable."""
    monkeypatch.setenv("AIRTABLE_API_KEY", srv.token)
    monkeypatch.setenv("AIRTABLE_BASE_ID", srv.base_id)
    monkeypatch.setenv("JOBTRACK_ENDPOINT_URL", srv.url)
    return CliRunner().invoke(app, list(args))


def conn_for(srv: TrackingServer, schema: Schema) -> Connection:
    settings = srv.settings(rate_limit=0, flush_interval=3600.0)
    return Connection.from_settings(settings, schema=schema, policy=DEFAULT_POLICY.scaled(0.01))


def rename_in_base(srv: TrackingServer, schema: Schema) -> None:
    """Rename fields, then tables, through the meta API (pyairtable's schema models)."""
    api = srv.api()
    for (table_key, field_key), new in FIELD_RENAMES.items():
        table = api.base(srv.base_id).table(schema.table(table_key).address)
        fschema = table.schema(force=True).field(schema.table(table_key).field(field_key).id)
        fschema.name = new
        fschema.save()
    for table_key, new in TABLE_RENAMES.items():
        tschema = api.base(srv.base_id).table(schema.table(table_key).address).schema(force=True)
        tschema.name = new
        tschema.save()


def pinned(srv: TrackingServer, path: Path, monkeypatch: pytest.MonkeyPatch) -> Schema:
    result = cli(srv, monkeypatch, "schema", "pin", "--schema-file", str(path))
    assert result.exit_code == 0, result.output
    return load_schema(path)


# --- pinning ---------------------------------------------------------------------------------


def test_pin_writes_ids_and_keeps_the_file_as_it_was(
    local_airtable: TrackingServer, schema_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = schema_copy.read_text(encoding="utf-8")
    local_airtable.request_log.clear()
    result = cli(local_airtable, monkeypatch, "schema", "pin", "--schema-file", str(schema_copy))
    assert result.exit_code == 0, result.output
    assert local_airtable.request_log.total == 1  # the meta read
    after = schema_copy.read_text(encoding="utf-8")
    # Every line of the file is still there, in order, comments included: only IDs were added.
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert all(line.startswith('id = "') for line in added)
    assert [line for line in after.splitlines() if not line.startswith("id = ")] == (
        before.splitlines()
    )
    meta = local_airtable.api().base(local_airtable.base_id).schema(force=True)
    schema = load_schema(schema_copy)
    for spec in schema.tables.values():
        table = meta.table(spec.name)
        assert spec.id == table.id
        for fspec in spec.enabled_fields():
            assert fspec.id == table.field(fspec.name).id
    # The disabled Error Details of Job Tracking is not pinned.
    assert schema.jobs.fields["error_details"].id is None
    assert "Pinned 42 new ID(s)" in result.output
    # Pinning again changes nothing.
    again = cli(local_airtable, monkeypatch, "schema", "pin", "--schema-file", str(schema_copy))
    assert "Nothing new to pin: 42 ID(s)" in again.output
    assert schema_copy.read_text(encoding="utf-8") == after


def test_pin_refuses_the_packaged_default(
    local_airtable: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBTRACK_SCHEMA_FILE", raising=False)
    local_airtable.request_log.clear()
    result = cli(local_airtable, monkeypatch, "schema", "pin")
    assert result.exit_code != 0
    assert "packaged default" in result.output and "JOBTRACK_SCHEMA_FILE" in result.output
    assert local_airtable.request_log.total == 0  # refused before any request
    with pytest.raises(ConfigError, match="--schema-file"):
        refuse_default_schema(default_schema_path())


def test_pin_matches_renamed_items_by_their_pinned_id(
    local_airtable: TrackingServer, schema_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = pinned(local_airtable, schema_copy, monkeypatch)
    rename_in_base(local_airtable, schema)
    text = schema_copy.read_text(encoding="utf-8")
    conn = conn_for(local_airtable, schema)
    result = pin_schema_file(schema_copy, fetch_meta(conn))
    assert not result.changed and not result.missing
    assert schema_copy.read_text(encoding="utf-8") == text  # configured names are kept


# --- after a rename ----------------------------------------------------------------------


def _worker_job(tracker: Tracker, clients: int) -> str:
    with tracker.job(stream=2) as job:
        for i in range(clients):
            with job.client(f"Client-{i}", name=f"Client {i}") as run:
                run.add(profiles_examined=10, profiles_scored=8, profile_tokens=100)
    return str(job.run_id)


def _tracker(srv: TrackingServer, schema: Schema, day: int) -> Tracker:
    """A tracker whose clock reads a day of its own: jobs of different blocks never race
    for the same run ID (a lost claim would cost requests the counts are not about)."""
    at = datetime(2026, 1, day, 8, 0, tzinfo=UTC)
    return Tracker(conn_for(srv, schema), clock=lambda: at)


def _stored(srv: TrackingServer, table_id: str) -> list[dict]:
    _, records = srv.store.snapshot(None, table_id)
    return [dict(r.fields) for r in records]


def test_a_worker_survives_renamed_fields_and_tables(
    local_airtable: TrackingServer,
    schema_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = pinned(local_airtable, schema_copy, monkeypatch)
    log = local_airtable.request_log

    # Baseline: the same job before any rename (3 clients).
    log.clear()
    with _tracker(local_airtable, schema, 1) as tracker:
        _worker_job(tracker, 3)
    baseline = log.total
    # start (create + verify) + 1 group-committed write of the 3 runs + completion
    # (job row read, client rows read, job write).
    assert baseline == 2 + 1 + 3
    assert log.count(path="/v0/meta/") == 0

    rename_in_base(local_airtable, schema)
    log.clear()
    caplog.set_level(logging.WARNING, logger="jobtrack_airtable.transport.repository")
    with _tracker(local_airtable, schema, 2) as tracker:
        run_id = _worker_job(tracker, 3)
    # The first formula naming a renamed field (the start's verify read) is refused once,
    # the names are read once, the read retried: 2 extra requests, 1 of them a meta read.
    assert log.total == baseline + 2, [(e.method, e.path) for e in log.entries]
    assert log.count(path="/v0/meta/") == 1
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "field 'Run ID' is now called 'Job Run ID'" in warned

    jobs = {r["Job Run ID"]: r for r in _stored(local_airtable, str(schema.jobs.id))}
    job = jobs[run_id]
    assert job["Status"] == Status.COMPLETED.value
    assert job["Worker Stream"] == 2
    assert job["Clients Processed"] == 3
    assert job["Profiles Examined (total)"] == 30
    clients = [
        r
        for r in _stored(local_airtable, str(schema.client_runs.id))
        if r["Client Run ID"].startswith(run_id)
    ]
    assert len(clients) == 3 and all(r["Profiles Examined"] == 10 for r in clients)
    assert not any("Run ID" in r or "Stream" in r for r in jobs.values())

    # The same process again: what was learnt holds, no extra request at all.
    log.clear()
    with _tracker(local_airtable, schema, 3) as tracker:
        _worker_job(tracker, 3)
        rows = tracker.client_runs(run_id)
    assert log.total == baseline + 1, log.counts  # + the client_runs read just above
    assert log.count(path="/v0/meta/") == 0
    assert sorted(r.client_id for r in rows) == ["Client-0", "Client-1", "Client-2"]


def test_sync_plans_and_applies_after_renames(
    local_airtable: TrackingServer, schema_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = pinned(local_airtable, schema_copy, monkeypatch)
    rename_in_base(local_airtable, schema)
    # A job a dead worker left Running a day ago, with one client row, written straight to
    # the store by field ID (the base's names are not the configured ones any more).
    old = datetime.now(UTC) - timedelta(days=1)
    stamp = old.isoformat().replace("+00:00", "Z")
    jobs, crr = schema.jobs, schema.client_runs
    local_airtable.store.create_records(
        None,
        str(jobs.id),
        [
            {
                jobs.field("run_id").id: "250101-000000",
                jobs.field("status").id: "Running",
                jobs.field("stream").id: 1,
                jobs.field("start_time").id: stamp,
            }
        ],
        created_time=old,
    )
    local_airtable.store.create_records(
        None,
        str(crr.id),
        [
            {
                crr.field("run_id").id: "250101-000000-Guy-Wilson",
                crr.field("client_id").id: "Guy-Wilson",
                crr.field("status").id: "Completed",
                crr.field("start_time").id: stamp,
                crr.field("end_time").id: stamp,
                crr.field("profiles_examined").id: 7,
            }
        ],
        created_time=old,
    )
    repo = Repository(conn_for(local_airtable, schema))
    log = local_airtable.request_log
    log.clear()
    plan = plan_sync(repo)
    assert log.total == plan_budget(1, 1)  # schema read + one page per table: no extra
    assert plan.summary.update >= 1
    [change] = plan.changes("jobs", Action.UPDATE)
    log.clear()
    apply_plan(repo, plan)
    # The re-read formulas name renamed fields, but the plan's meta read taught the process
    # their current names: exactly the budget, no refused request, no second meta read.
    assert log.total == apply_budget(plan, schema).total
    assert log.count(path="/v0/meta/") == 0
    [job] = _stored(local_airtable, str(jobs.id))
    assert job["Status"] != "Running"
    assert job["Profiles Examined (total)"] == 7  # aggregated under the renamed field
    assert change.record_id


def test_schema_check_reports_renames_not_failures(
    local_airtable: TrackingServer, schema_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = pinned(local_airtable, schema_copy, monkeypatch)
    rename_in_base(local_airtable, schema)
    monkeypatch.setenv("JOBTRACK_SCHEMA_FILE", str(schema_copy))
    result = cli(local_airtable, monkeypatch, "schema", "check")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "field 'Stream' is now called 'Worker Stream'" in out
    assert "table 'Job Tracking' is now called 'Worker Jobs'" in out
    assert "Schema OK" in out
    as_json = json.loads(cli(local_airtable, monkeypatch, "schema", "check", "--json").stdout)
    assert as_json["ok"] is True
    got = {(r["table_key"], r["field_key"]): r["current"] for r in as_json["renames"]}
    assert got == {**FIELD_RENAMES, **{(t, None): n for t, n in TABLE_RENAMES.items()}}


# --- without pins --------------------------------------------------------------------------


def test_without_pins_a_rename_fails_as_before_with_no_meta_read(
    local_airtable: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = load_schema()
    assert not schema.jobs.uses_ids and schema.jobs.address == "Job Tracking"
    api: pyairtable.Api = local_airtable.api()
    fschema = api.base(local_airtable.base_id).table("Job Tracking").schema().field("Stream")
    fschema.name = "Worker Stream"
    fschema.save()
    log = local_airtable.request_log
    log.clear()
    tracker = Tracker(conn_for(local_airtable, schema))
    with pytest.raises(UnknownFieldError, match="Stream"):
        tracker.job(stream=2)
    assert log.count(path="/v0/meta/") == 0
    # A formula naming an unknown field is refused as before, never "recovered".
    repo = Repository(conn_for(local_airtable, schema))
    with pytest.raises(InvalidFormulaError):
        repo.list_records("jobs", formula="{Stream} = 2")
    assert log.count(path="/v0/meta/") == 0
    report = check_schema(conn_for(local_airtable, schema))
    assert [p.kind for p in report.problems] == ["missing_field"] and not report.renames


# --- the pieces ------------------------------------------------------------------------------


def test_formula_references_are_rewritten_outside_string_literals() -> None:
    mapping = {"Run ID": "Job Run ID", "Stream": "Worker } Stream"}
    assert renames.rewrite_refs("OR({Run ID}='a', {Stream}=2)", mapping) == (
        r"OR({Job Run ID}='a', {Worker \} Stream}=2)"
    )
    # Literals that look like references, escaped quotes, unknown fields: untouched.
    text = r"""AND({Run ID}="{Stream}", {Other}='it\'s {Run ID}', {Stream})"""
    assert renames.rewrite_refs(text, mapping) == (
        r"""AND({Job Run ID}="{Stream}", {Other}='it\'s {Run ID}', {Worker \} Stream})"""
    )
    assert renames.rewrite_refs("", mapping) == ""


def test_bad_pinned_ids_are_refused_when_the_schema_loads(schema_copy: Path) -> None:
    text = schema_copy.read_text(encoding="utf-8")
    schema_copy.write_text(
        text.replace('name = "Stream"', 'name = "Stream"\nid = "recNotAFieldId00"'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="stream"):
        load_schema(schema_copy)
    schema_copy.write_text(
        text.replace('name = "Stream"', 'name = "Stream"\nid = "fldAAAAAAAAAAAAAA"').replace(
            'name = "Status"', 'name = "Status"\nid = "fldAAAAAAAAAAAAAA"', 1
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="field IDs used twice"):
        load_schema(schema_copy)


def test_a_renamed_table_alone_costs_nothing_extra(
    local_airtable: TrackingServer, schema_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = pinned(local_airtable, schema_copy, monkeypatch)
    log = local_airtable.request_log
    log.clear()
    with _tracker(local_airtable, schema, 1) as tracker:
        _worker_job(tracker, 2)
    baseline = log.total
    api = local_airtable.api()
    for key, new in TABLE_RENAMES.items():
        tschema = api.base(local_airtable.base_id).table(str(schema.table(key).id)).schema()
        tschema.name = new
        tschema.save()
    log.clear()
    with _tracker(local_airtable, schema, 2) as tracker:
        run_id = _worker_job(tracker, 2)
    # Tables are addressed by ID and no formula names a table: not one extra request.
    assert log.total == baseline
    assert log.count(path="/v0/meta/") == 0
    assert log.count(path="Job%20Tracking") == 0 and log.count(path=str(schema.jobs.id)) > 0
    [job] = [r for r in _stored(local_airtable, str(schema.jobs.id)) if r["Run ID"] == run_id]
    assert job["Status"] == "Completed" and job["Clients Processed"] == 2
