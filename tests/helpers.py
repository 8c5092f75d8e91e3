"""Helpers shared by the test modules (no tests here); each section names its users.

Fixtures used by one group of modules live here too (``base_fixture``, ``archive_base``,
``clean_env``): a module imports the one it uses, so ``base`` means what that module needs.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import vcr
from typer.testing import CliRunner, Result

from jobtrack_airtable.admin.sync import Action, ApplyResult, Plan, apply_plan, plan_sync
from jobtrack_airtable.cli import app, embedded
from jobtrack_airtable.limiter.usage import counted_as
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.metrics import AGGREGATE_KEYS
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.timeutil import to_airtable
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.worker.tracker import Tracker

from .conftest import TEST_BASE_ID

# ------------------------------------------------------------------ the server's connections


def open_connections(srv: LocalAirtable) -> set[socket.socket]:
    """The server's open client connections now."""
    server = srv._server
    assert server is not None, "the server is not running"
    with server._lock:
        return set(server.connections)


def wait_for_connections(
    srv: LocalAirtable, *, at_most: set[socket.socket], timeout: float = 60.0
) -> None:
    """Wait until the server's open connections are among ``at_most``: every other client's
    requests have been served (a killed client's connection ends once its last request has)."""
    deadline = time.monotonic() + timeout
    while not open_connections(srv) <= at_most:
        assert time.monotonic() < deadline, "connections still open after the client ended"
        time.sleep(0.01)


# ------------------------------------------------------------------ tracker tables (stored rows)


#: Table names of the default schema (what the server's storage and request paths use).
CRR_TABLE = "Client Run Results"
JOB_TABLE = "Job Tracking"


def make_conn(srv: LocalAirtable, **settings: object) -> Connection:
    options: dict[str, object] = {"rate_limit": 0, "flush_interval": 3600.0}
    options.update(settings)
    return Connection.from_settings(srv.settings(**options), policy=DEFAULT_POLICY.scaled(0.01))


def rows(srv: LocalAirtable, table: str) -> list[dict]:
    """The stored rows, read from the server's storage: no request, no rate-limit budget.
    (Stored values only: computed fields are not included.)"""
    _, records = srv.store.snapshot(None, table)
    return [{"id": r.id, "createdTime": r.created_time, "fields": dict(r.fields)} for r in records]


def by_key(srv: LocalAirtable, table: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows(srv, table):
        out.setdefault(r["fields"]["Run ID"], []).append(r["fields"])
    return out


# ------------------------------------------------------------------ sync: a base to plan and apply


NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
STALE = timedelta(hours=2)
JOBS = "jobs"
CRR = "client_runs"
WRITES = ("PATCH", "POST", "DELETE", "PUT")


def at(**delta: float) -> str:
    """``NOW - delta`` as Airtable text, e.g. ``at(hours=3)``."""
    return to_airtable(NOW - timedelta(**delta))


def zero_aggregates(**overrides: int) -> dict[str, int]:
    """Job aggregate fields (Airtable names, default schema) all 0, with overrides by name."""
    from jobtrack_airtable.schema import load_schema

    spec = load_schema().jobs
    values = {spec.name_of(k): 0 for k in AGGREGATE_KEYS}
    values.update(overrides)
    return values


def fresh_running_job(run_id: str) -> dict[str, Any]:
    """A job still running and recently updated: never stale, aggregates left to its worker."""
    return {
        "Run ID": run_id,
        "Status": "Running",
        "Start Time": at(minutes=30),
        "Last Updated": at(minutes=1),
    }


class SyncBase:
    """A local Airtable base for one test, with a :class:`Repository` talking to it."""

    def __init__(self, srv: LocalAirtable) -> None:
        self.srv = srv
        self.schema = srv.schema
        settings = Settings(
            _env_file=None,
            api_key=srv.token,
            base_id=srv.base_id,
            endpoint_url=srv.url,
            rate_limit=0,
        )
        self.conn = Connection.from_settings(settings, schema=srv.schema)
        self.repo = Repository(self.conn)
        self.log = srv.request_log

    def table_name(self, table: str) -> str:
        return self.schema.table(table).name

    def add(self, table: str, fields: Mapping[str, Any], *, created: datetime | None = None) -> str:
        """Insert one row straight into storage (no HTTP, not logged); returns its ID."""
        (record,) = self.srv.store.create_records(
            self.srv.base_id,
            self.table_name(table),
            [dict(fields)],
            typecast=True,  # legacy select values exist in old bases as options
            created_time=created or NOW - timedelta(days=1),
            limit=None,
        )
        return record.id

    def add_many(self, table: str, rows: list[Mapping[str, Any]], *, created: datetime) -> None:
        self.srv.store.create_records(
            self.srv.base_id,
            self.table_name(table),
            [dict(r) for r in rows],
            typecast=True,
            created_time=created,
            limit=None,
        )

    def get(self, table: str, record_id: str) -> dict[str, Any]:
        return dict(
            self.srv.store.get_record(self.srv.base_id, self.table_name(table), record_id).fields
        )

    def rows(self, table: str) -> dict[str, dict[str, Any]]:
        """Every row of ``table`` as ``{record_id: fields}`` (stored fields only)."""
        _, records = self.srv.store.snapshot(self.srv.base_id, self.table_name(table))
        return {r.id: dict(r.fields) for r in records}

    def by_key(self, table: str) -> dict[str, dict[str, Any]]:
        return {f["Run ID"]: f for f in self.rows(table).values()}

    def plan(self, **kwargs: Any) -> Plan:
        kwargs.setdefault("now", NOW)
        kwargs.setdefault("stale_after", STALE)
        return plan_sync(self.repo, **kwargs)

    def apply(self, plan: Plan) -> ApplyResult:
        return apply_plan(self.repo, plan)

    def writes(self) -> int:
        return sum(self.log.count(method=m) for m in WRITES)

    def converge(self, plan: Plan) -> Plan:
        """Apply ``plan``, re-plan, and check the new plan writes nothing; returns it."""
        self.apply(plan)
        again = self.plan()
        assert not again.has_changes, [r for r in again.records if r.action != Action.ATTENTION]
        return again


def changes(
    plan: Plan,
    table: str,
    record_id: str | None = None,
    *,
    key: str | None = None,
    action: Action | None = None,
) -> dict[str, tuple[Any, Any]]:
    """``{Airtable name: (old, new)}`` of the one plan entry for a record (or a created key).
    Plans speak logical keys; the names (as a renderer shows them) keep assertions readable."""
    (entry,) = entries(plan, table, record_id, key=key, action=action)
    return {plan.field_name(table, c.field): (c.old, c.new) for c in entry.changes}


def entries(
    plan: Plan,
    table: str,
    record_id: str | None = None,
    *,
    key: str | None = None,
    action: Action | None = None,
) -> list[Any]:
    return [
        r
        for r in plan.records
        if r.table == table
        and (record_id is None or r.record_id == record_id)
        and (key is None or r.key == key)
        and (action is None or r.action is action)
    ]


@pytest.fixture(name="base")
def base_fixture(local_airtable: LocalAirtable) -> Iterator[SyncBase]:
    """A :class:`SyncBase` on a fresh local server (import this into a test module to use
    the ``base`` fixture)."""
    b = SyncBase(local_airtable)
    yield b
    b.conn.close()


# ------------------------------------------------------------------ archive


ARCHIVE_NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def archive_conn(srv: LocalAirtable) -> Connection:
    settings = srv.settings(rate_limit=0, flush_interval=3600.0)
    return Connection.from_settings(settings, policy=DEFAULT_POLICY.scaled(0.01))


def record_job(srv: LocalAirtable, clock: datetime, clients: int, *, finish: bool = True) -> str:
    tracker = Tracker(archive_conn(srv), clock=lambda: clock)
    job = tracker.job(stream=1)
    for i in range(clients):
        run = job.client(f"Client-{i}")
        run.add(profiles_examined=i + 1, profiles_scored=i)
        if finish:
            run.close()
    if finish:
        job.complete()
    tracker.close()  # writes what is pending (the unfinished runs' rows too)
    return str(job.run_id)


@pytest.fixture(name="base")
def archive_base(local_airtable: LocalAirtable) -> dict[str, object]:
    """Two old finished jobs (3 and 12 clients), one old job still running, one recent
    (import this into a test module to use the ``base`` fixture)."""
    old = ARCHIVE_NOW - timedelta(days=120)
    keys = {
        "old_a": record_job(local_airtable, old, 3),
        "old_b": record_job(local_airtable, old + timedelta(hours=1), 12),
        "old_running": record_job(local_airtable, old + timedelta(hours=2), 2, finish=False),
        "recent": record_job(local_airtable, ARCHIVE_NOW - timedelta(days=10), 2),
    }
    return {"srv": local_airtable, "keys": keys, "repo": Repository(archive_conn(local_airtable))}


def stored_by_id(srv: LocalAirtable, table: str) -> dict[str, dict]:
    _, records = srv.store.snapshot(None, table)
    return {r.id: {"id": r.id, "fields": dict(r.fields)} for r in records}


# ------------------------------------------------------------------ the CLI in-process


SUMMARY_RE = re.compile(
    r"^Plan: (\d+) to create, (\d+) to update, (\d+) to delete, (\d+) need attention\.$"
)
FAKE_TOKEN = "patRECOGNISABLEfake.0123456789abcdefTOKEN"


def clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials or settings from the developer's environment (``JOBTRACK_TEST_*``, the
    test suite's own, stay)."""
    for var in list(os.environ):
        if var.startswith(("AIRTABLE_", "JOBTRACK_")) and not var.startswith("JOBTRACK_TEST_"):
            monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_settings_env(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    # Never touch the developer's real per-user base.
    default = tmp_path / "user-data" / "local-base.sqlite"
    monkeypatch.setattr(embedded, "default_local_path", lambda: default)


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def local(base: Path, *args: str, input: str | None = None) -> Result:
    return run("--local", str(base), *args, input=input)


def summary(result: Result) -> tuple[int, ...]:
    last = result.stdout.strip().splitlines()[-1]
    match = SUMMARY_RE.match(last)
    assert match, f"no summary line in: {last!r}"
    return tuple(int(n) for n in match.groups())


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if not line.startswith("Using the ")]


def drop_field(base: Path, table: str, field: str) -> None:
    """Remove ``field`` from ``table`` of a (closed) local base file, values included, as an
    admin deleting it in the Airtable UI would (the meta API cannot delete fields)."""
    db = sqlite3.connect(base, isolation_level=None)
    try:
        db.execute("BEGIN")
        for table_id, text in db.execute("SELECT id, model FROM tables").fetchall():
            model = json.loads(text)
            if model["name"] != table:
                continue
            model["fields"] = [f for f in model["fields"] if f["name"] != field]
            db.execute("UPDATE tables SET model = ? WHERE id = ?", (json.dumps(model), table_id))
            rows = db.execute("SELECT id, fields FROM records WHERE table_id = ?", (table_id,))
            for record_id, values in rows.fetchall():
                fields = json.loads(values)
                fields.pop(field, None)
                db.execute(
                    "UPDATE records SET fields = ? WHERE id = ?", (json.dumps(fields), record_id)
                )
        db.execute("COMMIT")
    finally:
        db.close()


# ------------------------------------------------------------------ usage counting


def usage_work(srv: LocalAirtable, settings: Settings) -> None:
    """A worker's job with two clients, one retried 503 and one 429, then a sync-style read."""
    srv.faults.add("503", method="PATCH", path="Client", times=1, retry_after=0)
    srv.faults.add("429", method="PATCH", path="Job", times=1)
    with Connection.from_settings(settings, policy=DEFAULT_POLICY.scaled(0.01)) as conn:
        tracker = Tracker(conn)
        job = tracker.job()
        for cid in ("Guy-Wilson", "Dana-Li"):
            with job.client(cid) as run:
                run.add(profiles_examined=3)
        job.complete()
        with counted_as("sync"):
            conn.table("jobs").all()
            conn.table("client_runs").all()


def usage_expected(srv: LocalAirtable) -> dict[str, int]:
    entries = srv.request_log.entries
    reads = [e for e in entries if e.method == "GET" or e.path.endswith("/listRecords")]
    return {
        "total": len(entries),
        "reads": len(reads),
        "writes": len(entries) - len(reads),
        "rate_limited": sum(e.status == 429 for e in entries),
        # Each injected fault was retried once.
        "retries": srv.faults.total(),
    }


# ------------------------------------------------------------------ cassettes


#: Where recordings go: a re-record writes into JOBTRACK_CASSETTE_DIR (never the clone's
#: tracked cassettes unless asked), replays read the clone's.
CASSETTES = Path(
    os.environ.get("JOBTRACK_CASSETTE_DIR") or Path(__file__).resolve().parent.parent / "cassettes"
)
MODE = os.environ.get("JOBTRACK_RECORD_CASSETTES", "")  # "", "local" or "airtable"


def _rewrite_base(real_base: str | None) -> Any:
    def before_record_request(request: Any) -> Any:
        if real_base:
            request.uri = request.uri.replace(real_base, TEST_BASE_ID)
        return request

    return before_record_request


def cassette_vcr(real_base: str | None = None) -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if MODE else "none",
        match_on=("method", "path", "query", "body"),
        filter_headers=["authorization"],
        before_record_request=_rewrite_base(real_base),
        decode_compressed_response=True,
    )
