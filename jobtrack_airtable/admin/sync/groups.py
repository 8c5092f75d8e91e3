"""A plan as the union of independent groups' plans: what incremental planning caches.

Every pass works within one **group**: a job's base run ID (``YYMMDD-HHMMSS``) with its job
rows and client rows, and every row whose Run ID as read starts with that base (the guards
count those; see :func:`group_of`); a row whose Run ID names no base is a group of its own.
Merging needs one natural key's rows, a job's aggregate and liveness its client rows, the
guards the rows under its prefix: all in one group.  What crosses groups is only the set of
client IDs the data knows (legacy run IDs need it; the caller passes it in) and the clock.

So a plan is :func:`assemble` of the :class:`GroupPlan` s that :func:`split` cuts a planned
state into; :func:`~.passes.diff.to_plan` makes every plan that way, so a plan assembled
from cached groups and re-planned ones is the full plan by construction, as long as each
group's rows and the clock are the same.  The clock matters in two ways, both recorded per
group: ``stamped`` (its entries carry the plan's time: a note, a stale run's age) and
``timed`` (it holds ``Running`` rows: its verdicts hold for ``now`` in
``[planned_at, until)``, see :func:`~jobtrack_airtable.statuses.verdict_until`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ...errors import show
from .model import TABLE_ORDER, Action, Guards, Plan, RecordChange, TableKey
from .state import BASE_LEN, PREFIX_LEN, Context, PlanState, Row

__all__ = ["GroupPlan", "assemble", "group_of", "split"]

_BASE = re.compile(r"[0-9]{6}-[0-9]{6}")
_ACTION_ORDER = {Action.UPDATE: 0, Action.CREATE: 0, Action.ATTENTION: 1, Action.DELETE: 2}


def group_of(row: Row) -> str:
    """The group of a row once its key is known (after :mod:`.passes.identify`)."""
    key = row.key
    if key is not None:
        return key[:BASE_LEN]
    raw = row.raw_key
    if isinstance(raw, str) and _BASE.fullmatch(raw[:BASE_LEN]):
        # Unconvertible, yet counted under its job's prefix by the guards.
        return raw[:BASE_LEN]
    return f"!{row.table}:{row.id}"


@dataclass(slots=True)
class GroupPlan:
    """One group's share of a plan, and what the clock does to it."""

    records: list[RecordChange] = field(default_factory=list)
    fingerprints: dict[TableKey, dict[str, str]] = field(default_factory=dict)
    keys: dict[TableKey, dict[str, int]] = field(default_factory=dict)
    prefixes: dict[str, int] = field(default_factory=dict)
    #: Its entries hold the plan's time (notes, a stale run's age): valid at that time only.
    stamped: bool = False
    #: It holds ``Running`` rows: valid from its planning time until ``until`` (if any).
    timed: bool = False
    until: datetime | None = None

    @property
    def empty(self) -> bool:
        return not (self.records or self.fingerprints or self.keys or self.prefixes)

    def valid_at(self, planned_at: datetime, now: datetime) -> bool:
        """Whether this plan, made at ``planned_at``, is the group's plan at ``now``."""
        if self.stamped:
            return now == planned_at
        if self.timed:
            return planned_at <= now and (self.until is None or now < self.until)
        return True

    def to_json(self) -> str:
        """The plan's content (not its timing, kept beside it) as compact JSON."""
        return json.dumps(
            {
                "records": [r.model_dump(mode="json") for r in self.records],
                "fingerprints": self.fingerprints,
                "keys": self.keys,
                "prefixes": self.prefixes,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> GroupPlan:
        data = json.loads(text)
        return cls(
            records=[RecordChange.model_validate(r) for r in data["records"]],
            fingerprints=data["fingerprints"],
            keys=data["keys"],
            prefixes=data["prefixes"],
        )


def split(state: PlanState) -> dict[str, GroupPlan]:
    """Cut a state the passes up to :mod:`.passes.diff` have run over into its groups'
    plans (every group with a row, empty or not).  Adds to ``state.fingerprints`` the rows
    under a guarded prefix, as a plan does."""
    groups: dict[str, GroupPlan] = {}
    of_row: dict[str, str] = {}
    for table in TABLE_ORDER:
        for row in state.rows[table]:
            gid = group_of(row)
            of_row[row.id] = gid
            if gid not in groups:
                groups[gid] = GroupPlan()

    def group(gid: str) -> GroupPlan:
        found = groups.get(gid)
        if found is None:  # a created job's base holds no row of its own
            found = groups[gid] = GroupPlan()
        return found

    for record in state.records:
        gid = of_row[record.record_id] if record.record_id is not None else str(record.key)
        group(gid).records.append(record)
        if record.action is Action.CREATE:
            group(gid).stamped = True  # its notes line
    # One scan for what the guards count: rows holding a guarded Run ID, and every client row
    # under a guarded job prefix as read (fingerprinted too, so apply tells it from a new row).
    for table in TABLE_ORDER:
        keys = state.guard_keys[table]
        prefixes = state.guard_prefixes if table == "client_runs" else set()
        for key in keys:
            group(key[:BASE_LEN]).keys.setdefault(table, {})[key] = 0
        for prefix in prefixes:
            group(prefix[:BASE_LEN]).prefixes[prefix] = 0
        if not keys and not prefixes:
            continue
        for row in state.rows[table]:
            raw = row.raw_key
            if not isinstance(raw, str):
                continue
            if raw in keys:
                group(raw[:BASE_LEN]).keys[table][raw] += 1
            if prefixes and raw[:PREFIX_LEN] in prefixes:
                group(raw[:BASE_LEN]).prefixes[raw[:PREFIX_LEN]] += 1
                state.fingerprint(row)
    for table in TABLE_ORDER:
        for rid, digest in state.fingerprints[table].items():
            group(of_row[rid]).fingerprints.setdefault(table, {})[rid] = digest
        for entity in state.entities[table]:
            if entity.notes:
                group(of_row[entity.id]).stamped = True
    for rid, until in state.timed.items():
        g = group(of_row[rid])
        g.timed = True
        if until is not None and (g.until is None or until < g.until):
            g.until = until
    return groups


def assemble(ctx: Context, groups: Iterable[GroupPlan], row_counts: Mapping[TableKey, int]) -> Plan:
    """The plan of the whole base from every group's plan (in any order)."""

    def order(r: RecordChange) -> tuple[int, str, int, str]:
        key = r.key if isinstance(r.key, str) else show(r.key)
        return (TABLE_ORDER.index(r.table), key, _ACTION_ORDER[r.action], r.record_id or "")

    records: list[RecordChange] = []
    fingerprints: dict[TableKey, dict[str, str]] = {t: {} for t in TABLE_ORDER}
    keys: dict[TableKey, dict[str, int]] = {t: {} for t in TABLE_ORDER}
    prefixes: dict[str, int] = {}
    for g in groups:
        records.extend(g.records)
        for table, digests in g.fingerprints.items():
            fingerprints[table].update(digests)
        for table, counts in g.keys.items():
            keys[table].update(counts)
        prefixes.update(g.prefixes)
    records.sort(key=order)
    guards = Guards(
        fingerprints={t: dict(sorted(v.items())) for t, v in fingerprints.items() if v},
        keys={t: dict(sorted(v.items())) for t, v in keys.items() if v},
        prefixes={"client_runs": dict(sorted(prefixes.items()))} if prefixes else {},
        row_counts={t: row_counts.get(t, 0) for t in TABLE_ORDER},
    )
    return Plan(
        base_id=ctx.base_id,
        generated_at=ctx.stamp,
        stale_after_seconds=ctx.stale_after.total_seconds(),
        table_names={t: ctx.layouts[t].spec.name for t in TABLE_ORDER},
        field_names={
            t: dict(zip(ctx.layouts[t].keys, ctx.layouts[t].names, strict=True))
            for t in TABLE_ORDER
        },
        records=records,
        guards=guards,
    )
