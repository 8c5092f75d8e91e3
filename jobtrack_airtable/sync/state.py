"""The typed state every detection pass works on (see :mod:`.detect` for the passes' order).

Compact by design (issue 11): one :class:`Row` per record as read -- the record ID, its created
time, the values of the fields sync writes as one tuple in schema order, and the SHA-256 of the
record as read (its fingerprint) -- instead of the record's dicts and parsed models.  The raw
page is dropped as soon as its rows are built, so planning holds about one small object per
row.  An :class:`Entity` is the row that will hold one natural key after the plan: for the
common row without duplicates it *is* that row plus the few values the plan changes.

Everything here speaks logical field keys (``status``, ``profiles_examined``); Airtable names
appear only where records are read (:mod:`.passes.ingest`) and in the plan's ``field_names``
for renderers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..errors import InvalidInputError, show
from ..schema import Schema, TableSpec
from ..statuses import Status
from ..timeutil import to_airtable
from .model import TABLE_ORDER, RecordChange, TableKey

__all__ = ["Context", "Entity", "Layout", "PlanState", "Row", "is_empty", "layouts_of"]

BASE_LEN = 13  # len("YYMMDD-HHMMSS")
PREFIX_LEN = BASE_LEN + 1  # the base and the hyphen before the client ID


def is_empty(value: Any) -> bool:
    """Airtable's empty: ``None``, ``""``, ``[]``, ``{}``, ``false`` (never ``0``)."""
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)


@dataclass(frozen=True, slots=True)
class Layout:
    """The fields sync reads and writes in one table: enabled, not computed, in schema order.
    A :class:`Row`'s ``values`` follow this order."""

    table: TableKey
    spec: TableSpec
    keys: tuple[str, ...]
    names: tuple[str, ...]
    index: Mapping[str, int]

    @classmethod
    def of(cls, table: TableKey, spec: TableSpec) -> Layout:
        fields = [f for f in spec.enabled_fields() if not f.computed]
        keys = tuple(f.key for f in fields)
        return cls(
            table, spec, keys, tuple(f.name for f in fields), {k: i for i, k in enumerate(keys)}
        )

    def has(self, key: str) -> bool:
        return key in self.index


@dataclass(slots=True, eq=False)
class Row:
    """One record as read, compact: see the module docstring.  ``key`` is its natural key
    once recognised (``None`` while unknown or unconvertible)."""

    table: TableKey
    id: str
    created: str
    values: tuple[Any, ...]
    digest: bytes
    raw_key: Any
    key: str | None = None
    identified: bool = False
    apify: str | None = None
    reasons: list[str] | None = None
    attention: list[str] | None = None

    @property
    def order(self) -> tuple[str, str]:
        """Oldest first: created time, then record ID (how every process picks survivors)."""
        return (self.created, self.id)

    def reason(self, text: str) -> None:
        if self.reasons is None:
            self.reasons = []
        self.reasons.append(text)

    def flag(self, text: str) -> None:
        if self.attention is None:
            self.attention = []
        self.attention.append(text)


@dataclass(slots=True, eq=False)
class Entity:
    """The row that will hold one natural key after the plan: the oldest of its duplicates
    (``members[0]``) with ``changed`` the values the plan gives it (logical key → value,
    ``None`` = empty)."""

    table: TableKey
    key: str | None
    members: list[Row]
    layout: Layout
    # Created on first use: most rows need no change, and planning holds one entity per row.
    changed: dict[str, Any] | None = None
    reasons: list[str] | None = None
    attention: list[str] | None = None
    notes: list[str] | None = None
    status: Status | None = None
    stale: str | None = None
    #: The parsed job row (jobs only: client rows are re-read when aggregated, so that
    #: planning never holds a parsed model per client row).
    job: Any = None

    @property
    def survivor(self) -> Row:
        return self.members[0]

    def read(self, key: str) -> Any:
        """The survivor's value of ``key`` as read (``None`` when empty or not in the layout)."""
        i = self.layout.index.get(key)
        return None if i is None else self.survivor.values[i]

    def get(self, key: str) -> Any:
        """The value of ``key`` as it will be after the plan."""
        if self.changed is not None and key in self.changed:
            return self.changed[key]
        return self.read(key)

    def reason(self, text: str) -> None:
        """Say why the plan changes this row."""
        if self.reasons is None:
            self.reasons = []
        self.reasons.append(text)

    def flag(self, text: str) -> None:
        """Report a problem a human must look at."""
        if self.attention is None:
            self.attention = []
        self.attention.append(text)

    def set(self, key: str, value: Any) -> None:
        """Give ``key`` a new value (``None`` empties it); only layout fields are written."""
        if key not in self.layout.index:
            return
        if is_empty(value):
            value = None
        if self.changed is None:
            old = self.read(key)
            if value == old and type(value) is type(old):
                return  # no change, and no dict for the many rows that need none
            self.changed = {}
        self.changed[key] = value

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every non-empty field as it will be, ``(logical key, value)``, in layout order."""
        for key in self.layout.keys:
            value = self.get(key)
            if value is not None:
                yield key, value

    def record(self) -> dict[str, Any]:
        """The row as it will be, as an Airtable record (for the metrics row readers)."""
        names = self.layout.spec
        return {
            "id": self.survivor.id,
            "createdTime": self.survivor.created or None,
            "fields": {names.name_of(k): v for k, v in self.items()},
        }


@dataclass(frozen=True, slots=True)
class Context:
    """What every pass may consult and none changes: the schema, the clock, the threshold."""

    schema: Schema
    now: datetime
    stamp: str
    stale_after: timedelta
    base_id: str
    layouts: Mapping[TableKey, Layout]

    @classmethod
    def of(cls, schema: Schema, now: datetime, stale_after: timedelta, base_id: str) -> Context:
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise InvalidInputError(f"now must be a timezone-aware datetime, not {show(now)}")
        if not isinstance(stale_after, timedelta) or stale_after <= timedelta(0):
            raise InvalidInputError(
                f"stale_after must be a positive timedelta, not {show(stale_after)}"
            )
        return cls(schema, now, to_airtable(now), stale_after, base_id, layouts_of(schema))

    def note(self, entity: Entity, text: str) -> None:
        """Queue a ``[<now>] sync: <text>`` line for the entity's System Notes."""
        if entity.notes is None:
            entity.notes = []
        entity.notes.append(f"[{self.stamp}] sync: {text}")


def layouts_of(schema: Schema) -> dict[TableKey, Layout]:
    return {t: Layout.of(t, schema.table(t)) for t in TABLE_ORDER}


@dataclass(slots=True, eq=False)
class PlanState:
    """Everything the passes compute, in the order they compute it.

    Records are ingested as they are read, before "now" is known (it is taken after the
    reads, on the server's clock): ``context`` is set by :meth:`begin_passes`.
    """

    layouts: Mapping[TableKey, Layout]
    context: Context | None = None
    #: pass ``ingest``: every record as a compact row.
    rows: dict[TableKey, list[Row]] = field(default_factory=lambda: {"jobs": [], "client_runs": []})
    #: client IDs known from the data (valid Client ID values, standard client run IDs).
    known_clients: set[str] = field(default_factory=set)
    #: pass ``merge``: one entity per natural key (and per unconvertible row).
    entities: dict[TableKey, list[Entity]] = field(
        default_factory=lambda: {"jobs": [], "client_runs": []}
    )
    #: pass ``liveness``: every base with client rows or a job row, with its clients and job.
    bases: list[tuple[str, list[Entity], Entity | None]] = field(default_factory=list)
    #: the status of each job row the plan creates (orphan client rows).
    created_status: dict[str, Status] = field(default_factory=dict)
    #: passes ``aggregates`` and ``diff``: the plan's entries and what apply must re-check.
    records: list[RecordChange] = field(default_factory=list)
    fingerprints: dict[TableKey, dict[str, str]] = field(
        default_factory=lambda: {"jobs": {}, "client_runs": {}}
    )
    guard_keys: dict[TableKey, set[str]] = field(
        default_factory=lambda: {"jobs": set(), "client_runs": set()}
    )
    guard_prefixes: set[str] = field(default_factory=set)

    @property
    def ctx(self) -> Context:
        if self.context is None:
            raise RuntimeError("the plan's context is set after ingesting, before the passes")
        return self.context

    def begin_passes(self, ctx: Context) -> None:
        self.context = ctx

    def fingerprint(self, row: Row) -> None:
        """Have apply re-check ``row`` (its fingerprint as read)."""
        self.fingerprints[row.table][row.id] = row.digest.hex()
