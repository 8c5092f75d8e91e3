"""Helpers shared by the sync tests (no tests here): a fixture base on the local server whose
rows are inserted directly into its storage (with chosen created times), a repository over
real HTTP, and shortcuts to plan, apply and inspect."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobtrack_airtable.admin.sync import Action, ApplyResult, Plan, apply_plan, plan_sync
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.metrics import AGGREGATE_KEYS
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.timeutil import to_airtable
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.repository import Repository

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
