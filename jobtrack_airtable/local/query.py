"""Reads of the local server: computed (formula) fields, ``filterByFormula``, ``sort``,
``maxRecords``, rendering records the way Airtable returns them, and paging iterators.

A listing computes its filtered, sorted result **once** and keeps it behind its offset token
(:class:`IteratorRegistry`), so paging through 50,000 rows costs one pass plus one slice per
page, not one pass per page (issue item 8).

>>> registry = IteratorRegistry(idle_seconds=60)
>>> registry.idle_seconds
60
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from . import errors as E
from .formulas import (
    ErrorValue,
    EvalContext,
    Formula,
    FormulaError,
    compile_formula,
    is_truthy,
    to_json_value,
)
from .storage import FieldDef, Record, TableDef, is_empty, new_id
from .users import LOCAL_USER

# -- computed fields ------------------------------------------------------------------------


@dataclass
class TableFormulas:
    """Compiled formula fields of one table at one schema version."""

    version: int
    field_types: dict[str, str]
    compiled: dict[str, Formula | None]
    computed: dict[str, Callable[[EvalContext], Any]]
    created_fields: tuple[str, ...]
    modified_fields: tuple[str, ...]


def table_formulas(table: TableDef) -> TableFormulas:
    """The table's compiled formula fields, cached on the table until its fields change."""
    cached = table.cache.get("formulas")
    if isinstance(cached, TableFormulas) and cached.version == table.schema_version:
        return cached
    names = [f.name for f in table.fields]
    compiled: dict[str, Formula | None] = {}
    computed: dict[str, Callable[[EvalContext], Any]] = {}
    for f in table.fields:
        if f.type == "formula":
            try:
                compiled[f.name] = compile_formula(f.formula or "BLANK()", known_fields=names)
            except FormulaError:
                # A formula that does not compile shows #ERROR! in every row, as in Airtable.
                compiled[f.name] = None
            computed[f.name] = _evaluator(compiled[f.name])
        elif f.type == "createdTime":
            computed[f.name] = lambda ctx: ctx.created_time
        elif f.type == "lastModifiedTime":
            computed[f.name] = lambda ctx: ctx.last_modified_time
        elif f.type in ("createdBy", "lastModifiedBy"):
            computed[f.name] = lambda ctx: dict(LOCAL_USER)
        elif f.type in _LINKED_KINDS:
            computed[f.name] = _linked_field(table, f)
        elif f.type == "button":
            computed[f.name] = _button(f, names)
    result = TableFormulas(
        version=table.schema_version,
        field_types={f.name: f.type for f in table.fields},
        compiled=compiled,
        computed=computed,
        created_fields=tuple(f.name for f in table.fields if f.type == "createdTime"),
        modified_fields=tuple(f.name for f in table.fields if f.type == "lastModifiedTime"),
    )
    table.cache["formulas"] = result
    return result


_LINKED_KINDS = ("count", "multipleLookupValues", "lookup", "rollup")


def _linked_field(table: TableDef, fdef: FieldDef) -> Callable[[EvalContext], Any]:
    """A count, lookup or rollup: computed from the records its link field points to
    (options ``recordLinkFieldId``, ``fieldIdInLinkedTable``; a rollup's aggregation
    formula over ``values`` is ``options.formula``, ``ARRAYJOIN(values)`` by default)."""
    options = fdef.options or {}
    link = next((f for f in table.fields if f.id == options.get("recordLinkFieldId")), None)
    target = table.linked_table(link) if link is not None else None
    if link is None or target is None:
        return lambda ctx: ErrorValue(f"{fdef.name}: its link field is missing")
    link_name = link.name
    if fdef.type == "count":
        return lambda ctx: sum(1 for r in ctx.fields.get(link_name) or () if r in target.records)
    looked = next((f for f in target.fields if f.id == options.get("fieldIdInLinkedTable")), None)
    if looked is None:
        return lambda ctx: ErrorValue(f"{fdef.name}: the field it reads is missing")
    aggregate = None
    if fdef.type == "rollup":
        aggregate = _evaluator(_compiled(str(options.get("formula") or "ARRAYJOIN(values)")))

    def values(ctx: EvalContext) -> Any:
        tf = table_formulas(target)
        out: list[Any] = []
        try:
            for rid in ctx.fields.get(link_name) or ():
                rec = target.records.get(rid)
                value = None if rec is None else _raw_value(tf, rec, looked.name, ctx.now)
                if isinstance(value, list):
                    out.extend(value)
                elif not is_empty(value):
                    out.append(value)
        except RecursionError:  # a lookup of itself through its links: Airtable refuses it
            return ErrorValue("circular lookup")
        if aggregate is None:
            return out
        return aggregate(replace(ctx, fields={"values": out}, computed={}))

    return values


def _button(fdef: FieldDef, names: Sequence[str]) -> Callable[[EvalContext], Any]:
    """A button cell: ``{"label", "url"}``, the URL from the ``options.url`` formula."""
    options = fdef.options or {}
    label = str(options.get("label") or fdef.name)
    url = _evaluator(_compiled(str(options["url"]), names)) if options.get("url") else None

    def cell(ctx: EvalContext) -> dict[str, Any]:
        link = url(ctx) if url is not None else None
        return {"label": label, "url": link if isinstance(link, str) and link else None}

    return cell


def _compiled(text: str, names: Sequence[str] = ("values",)) -> Formula | None:
    try:
        return compile_formula(text, known_fields=names)
    except FormulaError:
        return None


def _raw_value(tf: TableFormulas, record: Record, name: str, now: datetime) -> Any:
    fn = tf.computed.get(name)
    return record.fields.get(name) if fn is None else fn(context(tf, record, now))


def _evaluator(formula: Formula | None) -> Callable[[EvalContext], Any]:
    if formula is None:
        return lambda ctx: ErrorValue("the field's formula is invalid")
    return formula.evaluate


def context(tf: TableFormulas, record: Record, now: datetime) -> EvalContext:
    return EvalContext(
        fields=record.fields,
        record_id=record.id,
        created_time=record.created,
        now=now,
        field_types=tf.field_types,
        last_modified_time=record.modified,
        computed=tf.computed,
    )


def cell_value(tf: TableFormulas, record: Record, name: str, now: datetime) -> Any:
    """The JSON value of field ``name`` for ``record``: stored, or computed for computed
    fields (an evaluation error is Airtable's ``{"error": "#ERROR!"}`` cell)."""
    return to_json_value(_raw_value(tf, record, name, now))


# -- rendering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderOptions:
    """How records are rendered: which fields, keyed by name or ID, json or string cells."""

    fields: tuple[FieldDef, ...] | None = None
    by_field_id: bool = False
    cell_format: str = "json"


def render(
    table: TableDef, record: Record, options: RenderOptions, now: datetime
) -> dict[str, Any]:
    """A record as Airtable returns it: ``{"id", "createdTime", "fields"}``, empties omitted."""
    tf = table_formulas(table)
    wanted = options.fields if options.fields is not None else table.fields
    out: dict[str, Any] = {}
    for f in wanted:
        value = cell_value(tf, record, f.name, now) if f.computed else record.fields.get(f.name)
        if f.type == "multipleRecordLinks" and value:
            # A link without an inverse (to its own table) may still hold a deleted record.
            target = table.linked_table(f)
            value = value if target is None else [r for r in value if r in target.records]
        if is_empty(value):
            continue
        if options.cell_format == "string":
            value = _as_string(value)
        out[f.id if options.by_field_id else f.name] = value
    return {"id": record.id, "createdTime": record.created_time, "fields": out}


def _as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_as_string(v) for v in value)
    return json.dumps(value) if isinstance(value, dict) else str(value)


# -- filtering and sorting ------------------------------------------------------------------


#: Longer ``filterByFormula`` texts are refused (each node may build text up to the cap).
MAX_FORMULA_LENGTH = 100_000


def compile_filter(table: TableDef, text: str) -> Formula:
    """Compile a ``filterByFormula`` against the table's fields (422 if it is invalid).

    :func:`compile_formula` caches by text, so the same filter on every page costs nothing.
    """
    if len(text) > MAX_FORMULA_LENGTH:
        raise E.ApiError(
            422,
            "INVALID_FILTER_BY_FORMULA",
            f"The formula for filtering records is invalid: longer than {MAX_FORMULA_LENGTH:,} "
            "characters",
        )
    try:
        return compile_formula(text, known_fields=[f.name for f in table.fields])
    except FormulaError as exc:
        raise E.ApiError(
            422,
            "INVALID_FILTER_BY_FORMULA",
            f"The formula for filtering records is invalid: {exc}",
        ) from None


@dataclass(frozen=True)
class SortSpec:
    field: FieldDef
    descending: bool = False


def _sort_key(value: Any) -> tuple[Any, ...]:
    # Empty cells first in ascending order; then numbers, then text (case-insensitive).
    if is_empty(value):
        return (0,)
    if isinstance(value, bool):
        return (1, int(value), "")
    if isinstance(value, int | float):
        return (1, value, "")
    if isinstance(value, str):
        return (2, value.casefold(), value)
    return (3, json.dumps(value, sort_keys=True, default=str), "")


class Budget:
    """A per-request CPU budget (this thread's CPU time), checked between records, so no
    single listing can hold a server thread for long: 422 once it is spent.

    >>> Budget(None).check()  # no budget: never raises
    """

    __slots__ = ("deadline", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.deadline = None if seconds is None else time.thread_time() + seconds

    def check(self) -> None:
        if self.deadline is not None and time.thread_time() >= self.deadline:
            raise E.ApiError(
                422,
                "INVALID_REQUEST_UNKNOWN",
                f"The request needed more than the server's CPU budget of {self.seconds:g} s; "
                "use a simpler filterByFormula or sort",
            )


_BUDGET_EVERY = 64  # records between budget checks (a check costs a clock read)


def select(
    table: TableDef,
    records: Sequence[Record],
    *,
    formula: Formula | None,
    sort: Sequence[SortSpec],
    max_records: int | None,
    now: datetime,
    budget: Budget | None = None,
) -> list[Record]:
    """Filter, sort and cap ``records``: one pass over the table."""
    tf = table_formulas(table)
    budget = budget if budget is not None else Budget(None)
    result: list[Record]
    if formula is None:
        # The caller's snapshot is already a private list: no second O(n) copy.
        result = records if isinstance(records, list) else list(records)
    else:
        result = []
        for i, rec in enumerate(records):
            if i % _BUDGET_EVERY == 0:
                budget.check()
            # A row whose filter evaluates to #ERROR! is falsy, hence not returned.
            if is_truthy(formula.evaluate(context(tf, rec, now))):
                result.append(rec)
    # Stable sorts from the last key to the first give a multi-key sort with mixed directions.
    for spec in reversed(sort):
        name = spec.field.name
        if spec.field.computed:
            keys = {}
            for i, r in enumerate(result):
                if i % _BUDGET_EVERY == 0:
                    budget.check()
                keys[r.id] = _sort_key(cell_value(tf, r, name, now))
            result.sort(key=lambda r: keys[r.id], reverse=spec.descending)
        else:
            result.sort(key=lambda r: _sort_key(r.fields.get(name)), reverse=spec.descending)
    if max_records is not None:
        result = result[:max_records]
    return result


# -- paging ---------------------------------------------------------------------------------


@dataclass
class Listing:
    """The result of one listing, kept while its client pages through it."""

    id: str
    base_id: str
    table: TableDef
    records: list[Record]
    render: RenderOptions
    now: datetime
    last_used: float
    offsets: dict[str, int] = field(default_factory=dict)


class IteratorRegistry:
    """Offset tokens → listings; a token idle longer than ``idle_seconds`` is gone (422).

    Thread-safe.  At most ``max_listings`` listings holding at most ``max_records`` record
    references in all are kept (oldest dropped first), so abandoned listings cannot exhaust
    memory; a listing that fits in its first page is not kept at all (it has no offset).
    """

    def __init__(
        self,
        idle_seconds: float = 300.0,
        *,
        max_listings: int = 1000,
        max_records: int = 5_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_listings = max_listings
        self.max_records = max_records
        self._clock = clock
        self._lock = threading.Lock()
        self._listings: OrderedDict[str, Listing] = OrderedDict()

    def start(
        self,
        base_id: str,
        table: TableDef,
        records: list[Record],
        render: RenderOptions,
        now: datetime,
    ) -> Listing:
        listing = Listing(new_id("itr"), base_id, table, records, render, now, self._clock())
        with self._lock:
            self._sweep()
            self._listings[listing.id] = listing
            kept = sum(len(v.records) for v in self._listings.values())
            while len(self._listings) > 1 and (
                len(self._listings) > self.max_listings or kept > self.max_records
            ):
                _, dropped = self._listings.popitem(last=False)
                kept -= len(dropped.records)
        return listing

    def resume(self, base_id: str, table: TableDef, token: Any) -> tuple[Listing, int]:
        """The listing and position behind ``token``; 422 if unknown or expired."""
        gone = E.ApiError(
            422,
            "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
            "The iterator for this offset is no longer available; restart the listing",
        )
        if not isinstance(token, str) or "/" not in token:
            raise gone
        with self._lock:
            listing = self._listings.get(token.split("/", 1)[0])
            now = self._clock()
            if listing is None or now - listing.last_used > self.idle_seconds:
                self._listings.pop(token.split("/", 1)[0], None)
                raise gone
            if listing.base_id != base_id or listing.table is not table:
                raise gone
            position = listing.offsets.get(token)
            if position is None:
                raise gone
            listing.last_used = now
            self._listings.move_to_end(listing.id)
            return listing, position

    def page(self, listing: Listing, position: int, page_size: int) -> dict[str, Any]:
        """One page of ``listing`` from ``position``: ``{"records", "offset"?}``."""
        chunk = listing.records[position : position + page_size]
        body: dict[str, Any] = {
            "records": [render(listing.table, r, listing.render, listing.now) for r in chunk]
        }
        end = position + len(chunk)
        if position == 0 and end >= len(listing.records):
            with self._lock:  # one page, no offset: nothing can come back for it
                self._listings.pop(listing.id, None)
        if end < len(listing.records):
            token = f"{listing.id}/{listing.records[end].id}"
            with self._lock:
                listing.offsets[token] = end
                listing.last_used = self._clock()
            body["offset"] = token
        # The listing is kept after its last page too: a client whose response was lost
        # retries the same offset and must get the same page (idle sweeping frees it).
        return body

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, v in self._listings.items() if now - v.last_used > self.idle_seconds]:
            del self._listings[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._listings)
