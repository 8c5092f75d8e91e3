"""What the CLI does with plans besides showing them: targeting (``sync --target``), the list of
rows an apply wrote, and telling an already-applied plan from a stale one.

Built on the public plan model (:class:`~jobtrack_airtable.admin.sync.Plan`, whose field changes
name a field by its Airtable name or its logical key; both are accepted here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from ..admin.sync import ApplyResult, FieldChange, Plan, RecordChange
    from ..schema import Schema, TableSpec
    from ..transport.repository import Repository

#: ``--target`` kinds of fix, by the action they take.
ACTIONS = ("create", "update", "delete", "attention")
TABLES = ("jobs", "client_runs")


@dataclass(frozen=True)
class Target:
    """One ``--target``: a table (``jobs``, ``client_runs`` or its Airtable name), a run
    (``run:250930-141522``, its job row and client rows) or a kind of fix (``create``,
    ``update``, ``delete``, ``attention``)."""

    kind: str  # "table" | "run" | "action"
    value: str

    def __str__(self) -> str:
        return self.value if self.kind != "run" else f"run:{self.value}"

    def matches(self, record: RecordChange, table_names: Mapping[Any, str]) -> bool:
        if self.kind == "table":
            return self.value in (record.table, table_names.get(record.table))
        if self.kind == "action":
            return record.action.value == self.value
        key = record.key if isinstance(record.key, str) else ""
        return key == self.value or key.startswith(self.value + "-")


def parse_target(text: str, schema: Schema) -> Target:
    """``--target`` value → :class:`Target`; a usage error naming the value otherwise."""
    names = {schema.table(t).name: t for t in TABLES}
    if text.startswith("run:") and len(text) > 4:
        from ..run_ids import as_base_run_id

        try:
            return Target("run", str(as_base_run_id(text[4:])))
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is not run:YYMMDD-HHMMSS (e.g. run:250930-141522)",
                param_hint="'--target'",
            ) from None
    if text in TABLES or text in names:
        return Target("table", text)
    if text in ACTIONS:
        return Target("action", text)
    choices = ", ".join([*TABLES, *(repr(n) for n in names), *ACTIONS, "run:RUN_ID"])
    raise typer.BadParameter(
        f"{text!r} is not a table, a kind of fix or run:RUN_ID ({choices})",
        param_hint="'--target'",
    )


def target_plan(plan: Plan, targets: Sequence[Target]) -> tuple[Plan, int]:
    """``plan`` limited to the rows matching every kind of target given (targets of one kind
    are alternatives), and how many planned rows were left out.

    A merge is kept whole: a duplicate's delete and the update of the row it merges into go
    together (applying one without the other would lose the duplicate's values).
    """
    if not targets:
        return plan, 0
    by_kind: dict[str, list[Target]] = {}
    for t in targets:
        by_kind.setdefault(t.kind, []).append(t)

    def wanted(record: RecordChange) -> bool:
        return all(
            any(t.matches(record, plan.table_names) for t in group) for group in by_kind.values()
        )

    keep = {id(r) for r in plan.records if wanted(r)}
    survivors = {r.merged_into for r in plan.records if id(r) in keep and r.merged_into}
    survivors |= {r.record_id for r in plan.records if id(r) in keep and r.record_id}
    for r in plan.records:
        if r.record_id in survivors or (r.merged_into and r.merged_into in survivors):
            keep.add(id(r))
    records = [r for r in plan.records if id(r) in keep]
    return plan.model_copy(update={"records": records}), len(plan.records) - len(records)


# -- what an apply wrote --------------------------------------------------------------------


@dataclass(frozen=True)
class WrittenRow:
    table: str
    action: str
    record_id: str
    key: Any


def written_rows(plan: Plan, result: ApplyResult) -> list[WrittenRow]:
    """Every row ``result`` wrote, with its Run ID from the plan (created rows are matched to
    the plan's creates in order: apply creates them in plan order)."""
    from ..admin.sync import Action

    rows: list[WrittenRow] = []
    for table in TABLES:
        keys = {r.record_id: r.key for r in plan.of_table(table)}  # type: ignore[arg-type]
        for rid in result.updated.get(table, []):
            rows.append(WrittenRow(table, "update", rid, keys.get(rid)))
        creates = plan.changes(table, Action.CREATE)  # type: ignore[arg-type]
        for i, rid in enumerate(result.created.get(table, [])):
            rows.append(
                WrittenRow(table, "create", rid, creates[i].key if i < len(creates) else None)
            )
        for rid in result.deleted.get(table, []):
            rows.append(WrittenRow(table, "delete", rid, keys.get(rid)))
    return rows


# -- already applied? ---------------------------------------------------------------------


def already_applied(repo: Repository, plan: Plan) -> bool:
    """Whether the base already holds everything ``plan`` would write: every update's fields
    hold their new values, every deleted row is gone, every created Run ID has a row with the
    planned values.  Asked only after apply refused the plan as stale (two table reads)."""
    from ..admin.sync import Action

    schema = repo.schema
    for table in TABLES:
        changes = [r for r in plan.of_table(table) if r.action is not Action.ATTENTION]  # type: ignore[arg-type]
        if not changes:
            continue
        spec = schema.table(table)
        rows = {r["id"]: r for r in repo.list_records(table)}
        by_key: dict[Any, list[Mapping[str, Any]]] = {}
        for r in rows.values():
            by_key.setdefault((r.get("fields") or {}).get(spec.key_name), []).append(r)
        for change in changes:
            if change.action is Action.DELETE:
                if change.record_id in rows:
                    return False
            elif change.action is Action.UPDATE:
                row = rows.get(change.record_id or "")
                if row is None or not _holds(spec, row, change.changes):
                    return False
            elif not any(_holds(spec, r, change.changes) for r in by_key.get(change.key, [])):
                return False
    return True


def _holds(spec: TableSpec, row: Mapping[str, Any], changes: Iterable[FieldChange]) -> bool:
    from ..transport.codec import codec_for

    fields = row.get("fields") or {}
    codec = codec_for(spec)
    for change in changes:
        name = change.field if codec.named(change.field) else _name_of(spec, change.field)
        if name is None or not _same(fields.get(name), change.new):
            return False
    return True


def _name_of(spec: TableSpec, key: str) -> str | None:
    try:
        return spec.name_of(key)
    except (KeyError, ValueError, LookupError):
        return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value is False


def _same(read: Any, planned: Any) -> bool:
    """Equal as Airtable stores them: empty is empty, numbers by value, datetimes by instant."""
    from ..timeutil import parse_airtable

    if _empty(read) and _empty(planned):
        return True
    if isinstance(read, int | float) and isinstance(planned, int | float):
        return math.isclose(float(read), float(planned), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(read, str) and isinstance(planned, str) and read != planned:
        try:
            return parse_airtable(read) == parse_airtable(planned)
        except (ValueError, TypeError):
            return False
    return bool(read == planned)
