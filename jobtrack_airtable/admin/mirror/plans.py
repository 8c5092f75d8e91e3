"""Incremental planning: each group's plan kept in the mirror file, only what changed re-planned.

A plan is the union of independent groups' plans (:mod:`..sync.groups`: a job's base with
its job and client rows).  The mirror file keeps, beside its rows, each row's group and each
group's plan; SQLite triggers on ``records`` note every row a refresh inserts, updates or
deletes (``plan_touched``; a row read again unchanged, in the refresh's overlap, is not
one), whichever process refreshed.  Planning then re-examines only:

* the touched rows, and every row of the groups they left or joined;
* the groups whose plan the clock has made stale: those whose entries hold the plan's time
  (a note, a stale run's age) whenever "now" differs, those holding ``Running`` rows once
  "now" reaches the first instant a verdict may flip (the threshold, a future stamp becoming
  present) or goes back before their planning time;
* when the set of client IDs the data knows changed, every row whose legacy run ID needed it.

Everything else is taken from the file as it was planned.  The file's plans are trusted only
for the same configured schema (as fitted to the base), staleness threshold, base and library
version (:func:`signature`); otherwise, when they are missing, or when most rows changed, the
whole base is planned and the file's plans replaced.  Either way the plan is
:func:`~..sync.groups.assemble` of the groups' plans, so it is byte-for-byte the full plan.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any, Literal

from ...schema import Schema
from ..sync.groups import GroupPlan, assemble, group_of, split
from ..sync.model import TABLE_ORDER, Plan, TableKey
from ..sync.passes.aggregates import aggregates
from ..sync.passes.diff import diff
from ..sync.passes.fix import fix
from ..sync.passes.identify import identify
from ..sync.passes.ingest import ingest
from ..sync.passes.liveness import liveness
from ..sync.passes.merge import merge
from ..sync.state import Context, PlanState, layouts_of
from .store import MirrorFile

__all__ = ["CACHE_VERSION", "PlanCache", "PlanRun", "signature"]

#: Bump whenever what a group's plan means changes (the library version is checked too).
CACHE_VERSION = 1
#: Above this share of touched rows, planning everything is cheaper than sorting out groups.
_FULL_SHARE = 0.5
#: Record IDs per ``IN (...)`` lookup (SQLite allows 32,766 parameters).
_CHUNK = 500

_DDL = """
CREATE TABLE IF NOT EXISTS plan_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plan_rows (
    tbl      TEXT    NOT NULL,
    id       TEXT    NOT NULL,
    grp      TEXT    NOT NULL,
    clients  TEXT,
    deferred INTEGER NOT NULL,
    PRIMARY KEY (tbl, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS plan_rows_by_group ON plan_rows (grp);
CREATE TABLE IF NOT EXISTS plan_groups (
    grp         TEXT    PRIMARY KEY,
    planned_at  TEXT    NOT NULL,
    stamped     INTEGER NOT NULL,
    timed       INTEGER NOT NULL,
    valid_until TEXT,
    plan        TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plan_clients (
    client TEXT    PRIMARY KEY,
    rows   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plan_touched (
    tbl TEXT NOT NULL,
    id  TEXT NOT NULL,
    PRIMARY KEY (tbl, id)
) WITHOUT ROWID;
-- No INSERT OR IGNORE: an outer statement's conflict policy (the upsert's) overrides a
-- trigger's, so a second change of a row would fail the refresh.
CREATE TRIGGER IF NOT EXISTS plan_touch_insert AFTER INSERT ON records BEGIN
    INSERT INTO plan_touched SELECT new.tbl, new.id WHERE NOT EXISTS
        (SELECT 1 FROM plan_touched WHERE tbl = new.tbl AND id = new.id);
END;
CREATE TRIGGER IF NOT EXISTS plan_touch_update AFTER UPDATE ON records
WHEN old.fields IS NOT new.fields OR old.created_time IS NOT new.created_time BEGIN
    INSERT INTO plan_touched SELECT new.tbl, new.id WHERE NOT EXISTS
        (SELECT 1 FROM plan_touched WHERE tbl = new.tbl AND id = new.id);
END;
CREATE TRIGGER IF NOT EXISTS plan_touch_delete AFTER DELETE ON records BEGIN
    INSERT INTO plan_touched SELECT old.tbl, old.id WHERE NOT EXISTS
        (SELECT 1 FROM plan_touched WHERE tbl = old.tbl AND id = old.id);
END;
"""
_TRIGGERS = ("plan_touch_insert", "plan_touch_update", "plan_touch_delete")


def _version() -> str:
    try:
        return metadata.version("jobtrack-airtable")
    except metadata.PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


def signature(schema: Schema, stale_after: timedelta, base_id: str) -> str:
    """What every cached group plan depends on besides its rows and the clock."""
    text = json.dumps(
        [
            CACHE_VERSION,
            _version(),
            base_id,
            stale_after.total_seconds(),
            schema.model_dump(mode="json"),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PlanRun:
    """What one :meth:`PlanCache.plan` did: ``kind``, why it planned everything, the rows it
    examined (ingested and passed over), the groups it re-planned out of all."""

    kind: Literal["full", "incremental"]
    why_full: str | None
    rows_examined: int
    groups_planned: int
    groups: int


def _stamp(moment: datetime) -> str:
    return moment.isoformat()


class PlanCache:
    """The group plans of one mirror file (see the module docstring)."""

    def __init__(self, file: MirrorFile) -> None:
        self.file = file
        self.db: sqlite3.Connection = file.db
        self.db.executescript(_DDL)
        #: What the last :meth:`plan` did.
        self.last: PlanRun | None = None

    # -- reading the file -------------------------------------------------------------------

    def _select(self, sql: str, table: TableKey, ids: list[str]) -> Iterator[tuple[Any, ...]]:
        """``sql`` (ending ``IN``) for ``ids`` of ``table``, a few hundred at a time (one
        statement per row cost more than planning the row)."""
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            yield from self.db.execute(f"{sql} ({marks})", (table, *chunk))

    def _records(self, table: TableKey, ids: list[str]) -> Iterator[dict[str, Any]]:
        """The rows of ``ids`` the file holds (a deleted one is absent), as listed."""
        for record_id, created, fields in self._select(
            "SELECT id, created_time, fields FROM records WHERE tbl = ? AND id IN", table, ids
        ):
            yield {"id": record_id, "createdTime": created, "fields": json.loads(fields)}

    def _kept_rows(
        self, table: TableKey, ids: list[str]
    ) -> Iterator[tuple[str, tuple[str, str | None, int]]]:
        for rid, grp, clients, deferred in self._select(
            "SELECT id, grp, clients, deferred FROM plan_rows WHERE tbl = ? AND id IN",
            table,
            ids,
        ):
            yield rid, (grp, clients, deferred)

    def _known(self) -> Counter[str]:
        return Counter(dict(self.db.execute("SELECT client, rows FROM plan_clients")))

    # -- planning ---------------------------------------------------------------------------

    def plan(self, schema: Schema, *, now: datetime, stale_after: timedelta, base_id: str) -> Plan:
        """The plan of the mirror's rows at ``now``: the groups' plans the file holds where
        still valid, the others planned again (or everything, see the module docstring)."""
        ctx = Context.of(schema, now, stale_after, base_id)
        sig = signature(schema, stale_after, base_id)
        db = self.db
        triggers = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        lost = not set(_TRIGGERS) <= triggers
        if lost:
            # Rows changed while they were gone are unaccounted for: plan everything.
            db.executescript(_DDL)
        db.execute("BEGIN IMMEDIATE")
        try:
            meta = dict(db.execute("SELECT key, value FROM plan_meta"))
            touched = db.execute("SELECT tbl, id FROM plan_touched").fetchall()
            total = sum(self.file.counts().values())
            why: str | None = None
            if meta.get("signature") is None:
                why = "no plans kept yet"
            elif meta["signature"] != sig:
                why = "the schema, threshold or library changed since the kept plans"
            elif lost:
                why = "the file's change triggers were removed"
            elif len(touched) > _FULL_SHARE * max(total, 1):
                why = "most rows changed"
            plan = self._full(ctx, why) if why is not None else self._incremental(ctx, touched)
            db.execute("DELETE FROM plan_touched")
            db.execute("INSERT OR REPLACE INTO plan_meta VALUES ('signature', ?)", (sig,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return plan

    def _passes(self, state: PlanState, ctx: Context, known: Iterable[str]) -> None:
        state.known_clients = set(known)
        state.begin_passes(ctx)
        for run in (identify, merge, fix, liveness, aggregates, diff):
            run(state)

    def _full(self, ctx: Context, why: str) -> Plan:
        db = self.db
        state = PlanState(layouts_of(ctx.schema))
        state.contributions = {}
        for table in TABLE_ORDER:
            ingest(state, table, self.file.records(table))
        deferred = {r.id for t in TABLE_ORDER for r in state.rows[t] if not r.identified}
        self._passes(state, ctx, state.known_clients)
        groups = split(state)
        counts = {t: len(state.rows[t]) for t in TABLE_ORDER}
        plan = assemble(ctx, groups.values(), counts)
        for name in ("plan_rows", "plan_groups", "plan_clients"):
            db.execute(f"DELETE FROM {name}")
        contributions = state.contributions
        db.executemany(
            "INSERT INTO plan_rows VALUES (?, ?, ?, ?, ?)",
            (
                (t, r.id, group_of(r), _clients(contributions.get(r.id)), int(r.id in deferred))
                for t in TABLE_ORDER
                for r in state.rows[t]
            ),
        )
        known = Counter(c for added in contributions.values() for c in added)
        db.executemany("INSERT INTO plan_clients VALUES (?, ?)", known.items())
        self._store(ctx, groups)
        self.last = PlanRun("full", why, sum(counts.values()), len(groups), len(groups))
        return plan

    def _store(self, ctx: Context, groups: dict[str, GroupPlan]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO plan_groups VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    gid,
                    _stamp(ctx.now),
                    int(g.stamped),
                    int(g.timed),
                    None if g.until is None else _stamp(g.until),
                    None if g.empty else g.to_json(),
                )
                for gid, g in groups.items()
                if not g.empty or g.stamped or g.timed
            ),
        )

    def _incremental(self, ctx: Context, touched: list[tuple[str, str]]) -> Plan:
        db = self.db
        # The touched rows as they are now (gone ones are absent), in a probe state: their
        # contributions to the known client IDs, and (once identified) their groups.
        probe = PlanState(layouts_of(ctx.schema))
        probe.contributions = {}
        old: dict[tuple[str, str], tuple[str, str | None, int]] = {}
        by_table: dict[TableKey, list[str]] = {t: [] for t in TABLE_ORDER}
        for tbl, rid in touched:
            if tbl in by_table:
                by_table[tbl].append(rid)
        for table, ids in by_table.items():
            for rid, held in self._kept_rows(table, ids):
                old[(table, rid)] = held
            ingest(probe, table, self._records(table, ids))
        known = self._known()
        before = {c for c, n in known.items() if n > 0}
        for (_, _), (_, clients, _) in old.items():
            known.subtract(_unclients(clients))
        for added in probe.contributions.values():
            known.update(added)
        after = {c for c, n in known.items() if n > 0}
        if after != before:
            # Legacy run IDs are read with the known client IDs: re-read every such row.
            seen = {(t, r.id) for t in TABLE_ORDER for r in probe.rows[t]}
            for table in TABLE_ORDER:
                ids = [
                    rid
                    for (rid,) in db.execute(
                        "SELECT id FROM plan_rows WHERE tbl = ? AND deferred = 1", (table,)
                    )
                    if (table, rid) not in seen
                ]
                for rid, held in self._kept_rows(table, ids):
                    old[(table, rid)] = held
                ingest(probe, table, self._records(table, ids))
        deferred = {r.id for t in TABLE_ORDER for r in probe.rows[t] if not r.identified}
        probe.known_clients = set(after)
        probe.begin_passes(ctx)
        identify(probe)
        new_group = {(t, r.id): group_of(r) for t in TABLE_ORDER for r in probe.rows[t]}
        dirty = {g for g, _, _ in old.values()} | set(new_group.values())
        for gid, planned_at, stamped, timed, until in db.execute(
            "SELECT grp, planned_at, stamped, timed, valid_until FROM plan_groups "
            "WHERE stamped = 1 OR timed = 1"
        ):
            timing = GroupPlan(
                stamped=bool(stamped),
                timed=bool(timed),
                until=None if until is None else datetime.fromisoformat(until),
            )
            if not timing.valid_at(datetime.fromisoformat(planned_at), ctx.now):
                dirty.add(gid)
        # Every row of the dirty groups: the probed ones as they are now (their compact rows,
        # identified already, are taken over), the others as the file holds them.
        state = PlanState(layouts_of(ctx.schema))
        moved = {key for key in old if key not in new_group}  # deleted rows
        members: dict[TableKey, list[str]] = {t: [] for t in TABLE_ORDER}
        for gid in sorted(dirty):
            for tbl, rid in db.execute("SELECT tbl, id FROM plan_rows WHERE grp = ?", (gid,)):
                if (tbl, rid) not in old and (tbl, rid) not in new_group and tbl in members:
                    members[tbl].append(rid)
        for table in TABLE_ORDER:
            state.rows[table] = list(probe.rows[table])
            ingest(state, table, self._records(table, members[table]))
        self._passes(state, ctx, after)
        groups = split(state)
        # Keep the file's account of rows, client IDs and groups in step.
        for tbl, rid in moved:
            db.execute("DELETE FROM plan_rows WHERE tbl = ? AND id = ?", (tbl, rid))
        contributions = probe.contributions
        db.executemany(
            "INSERT OR REPLACE INTO plan_rows VALUES (?, ?, ?, ?, ?)",
            (
                (t, rid, gid, _clients(contributions.get(rid)), int(rid in deferred))
                for (t, rid), gid in new_group.items()
            ),
        )
        for client in {c for c, _ in known.items()} | before:
            n = known.get(client, 0)
            if n > 0:
                db.execute("INSERT OR REPLACE INTO plan_clients VALUES (?, ?)", (client, n))
            else:
                db.execute("DELETE FROM plan_clients WHERE client = ?", (client,))
        db.executemany("DELETE FROM plan_groups WHERE grp = ?", ((g,) for g in dirty))
        self._store(ctx, groups)
        kept = [
            GroupPlan.from_json(text)
            for gid, text in db.execute("SELECT grp, plan FROM plan_groups WHERE plan IS NOT NULL")
            if gid not in groups
        ]
        counts = self.file.counts()
        plan = assemble(ctx, [*kept, *groups.values()], counts)
        (n_groups,) = db.execute("SELECT count(DISTINCT grp) FROM plan_rows").fetchone()
        rows = sum(len(state.rows[t]) for t in TABLE_ORDER)
        self.last = PlanRun("incremental", None, rows, len(groups), int(n_groups))
        return plan


def _clients(added: tuple[str, ...] | None) -> str | None:
    # One per line: a valid client ID holds no control character (validate_client_id).
    return "\n".join(added) if added else None


def _unclients(text: str | None) -> list[str]:
    return text.split("\n") if text else []
