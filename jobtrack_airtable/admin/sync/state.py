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

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ...aggregation import JobAggregate
from ...errors import InvalidInputError, show
from ...metrics import JOB_SUM_KEYS
from ...rows import ClientRunRow
from ...schema import NUMBER_TYPES, Schema, TableSpec
from ...statuses import Status
from ...timeutil import to_airtable
from .model import TABLE_ORDER, RecordChange, TableKey

__all__ = [
    "ClientTimes",
    "ClientTotals",
    "Context",
    "Entity",
    "Layout",
    "PlanState",
    "Row",
    "is_empty",
    "layouts_of",
    "moment",
    "pack",
    "unpack",
]

BASE_LEN = 13  # len("YYMMDD-HHMMSS")
PREFIX_LEN = BASE_LEN + 1  # the base and the hyphen before the client ID


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: The one form :func:`pack` packs: what Airtable sends (and :func:`_format` gives back).
_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)


def pack(value: Any) -> Any:
    """A timestamp field's value as planning holds it: a canonical Airtable timestamp
    (``2025-09-30T14:15:22.000Z``) that round-trips exactly becomes its milliseconds since the
    epoch, a plain ``int`` (32 bytes instead of a 73-byte string; a row holds several); any
    other value is kept as it is, wrapped in a 1-tuple when it is not a string, so that
    :func:`unpack` can tell the two apart.  Only for the positions of timestamp fields
    (:attr:`Layout.times`) and the created time.

    >>> pack("2025-09-30T14:15:22.000Z"), unpack(pack("2025-09-30T14:15:22.000Z"))
    (1759241722000, '2025-09-30T14:15:22.000Z')
    >>> unpack(pack("30/09/2025")), unpack(pack(12)), unpack(pack(None))
    ('30/09/2025', 12, None)
    """
    if type(value) is str:
        if len(value) == 24 and _CANONICAL.fullmatch(value):
            try:
                moment = datetime.fromisoformat(value[:23] + "+00:00")
            except ValueError:  # digits in place but no such date or time
                return value
            # Every digit is in its canonical place and the instant exists, so its text is
            # exactly the value: no need to format it back to check.
            return (moment - _EPOCH) // _MS
        return value
    return value if value is None else (value,)


def _format(ms: int) -> str:
    # What to_airtable gives, without strftime (the planner's hottest call): only instants
    # whose text round-trips are packed (pack), so years of four digits.
    t = _EPOCH + ms * _MS
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}Z"
    )


def unpack(value: Any) -> Any:
    """The value :func:`pack` was given."""
    if type(value) is int:
        return _format(value)
    if type(value) is tuple:
        return value[0]
    return value


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
    #: Positions of the dateTime fields, held packed (:func:`pack`).
    times: frozenset[int] = frozenset()
    #: Positions of the number fields (counts repeat across rows: one shared object each).
    numbers: tuple[int, ...] = ()

    @classmethod
    def of(cls, table: TableKey, spec: TableSpec) -> Layout:
        fields = [f for f in spec.enabled_fields() if not f.computed]
        keys = tuple(f.key for f in fields)
        return cls(
            table,
            spec,
            keys,
            tuple(f.name for f in fields),
            {k: i for i, k in enumerate(keys)},
            frozenset(i for i, f in enumerate(fields) if f.type == "dateTime"),
            tuple(i for i, f in enumerate(fields) if f.type in NUMBER_TYPES),
        )

    def has(self, key: str) -> bool:
        return key in self.index


@dataclass(slots=True, eq=False)
class Row:
    """One record as read, compact (see the module docstring), and -- once :mod:`.passes.merge`
    has run -- the *entity* of its natural key when it survives: the row that will hold the
    key after the plan, with its merged ``duplicates`` (newer rows of the same key, deleted by
    the plan) and ``changed`` the values the plan gives it (logical key → value, ``None`` =
    empty).  One object per row, whatever it turns out to be: planning holds nothing else per
    row.  ``key`` is the natural key once recognised (``None`` while unknown or unconvertible).
    """

    layout: Layout
    id: str
    created_at: Any  # the created time, packed (see pack)
    packed: tuple[Any, ...]  # field values in layout order, timestamps packed
    digest: bytes
    raw_key: Any
    key: str | None = None
    identified: bool = False
    apify: str | None = None
    reasons: list[str] | None = None
    attention: list[str] | None = None
    # As an entity (each created on first use: most rows need none of them).
    duplicates: list[Row] | None = None
    changed: dict[str, Any] | None = None
    notes: list[str] | None = None
    status: Status | None = None
    stale: str | None = None

    @property
    def table(self) -> TableKey:
        return self.layout.table

    @property
    def created(self) -> str:
        """The record's created time as read."""
        return str(unpack(self.created_at))

    def value(self, i: int) -> Any:
        """The value of layout field ``i`` as read."""
        value = self.packed[i]
        return unpack(value) if i in self.layout.times else value

    @property
    def values(self) -> tuple[Any, ...]:
        """Every layout field's value as read."""
        return tuple(self.value(i) for i in range(len(self.packed)))

    @property
    def order(self) -> tuple[str, str]:
        """Oldest first: created time, then record ID (how every process picks survivors)."""
        return (self.created, self.id)

    # -- as an entity ---------------------------------------------------------------------

    @property
    def survivor(self) -> Row:
        """The row that keeps the key: this one (an entity is its surviving row)."""
        return self

    @property
    def members(self) -> list[Row]:
        """The survivor and its duplicates, oldest first."""
        return [self, *self.duplicates] if self.duplicates else [self]

    def read(self, key: str) -> Any:
        """The value of ``key`` as read (``None`` when empty or not in the layout)."""
        i = self.layout.index.get(key)
        return None if i is None else self.value(i)

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
        # items() by position, without a lookup per field: once per row, on the hot path.
        layout, changed, packed = self.layout, self.changed, self.packed
        times = layout.times
        fields: dict[str, Any] = {}
        for i, name in enumerate(layout.names):
            key = layout.keys[i]
            if changed is not None and key in changed:
                value = changed[key]
            else:
                value = packed[i]
                if i in times:
                    value = unpack(value)
            if value is not None:
                fields[name] = value
        return {
            "id": self.survivor.id,
            "createdTime": self.survivor.created or None,
            "fields": fields,
        }


#: What the passes after :mod:`.passes.merge` work on: a surviving :class:`Row`.
Entity = Row


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


def moment(ms: int) -> datetime:
    """The instant of a packed timestamp (what parse_airtable gives for its text)."""
    return _EPOCH + ms * _MS


@dataclass(frozen=True, slots=True)
class ClientTimes:
    """The parsed times of one client row as it will be: what liveness and the job's
    aggregate need of it besides its counts."""

    created_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    last_updated: datetime | None


@dataclass(slots=True)
class ClientTotals:
    """What a job's aggregate takes from its client rows except their statuses, summed as
    :mod:`.passes.fix` parses each client row, so that aggregation needs no second parse of
    every row (the planner's costliest step) and memory holds one of these per base, not a
    parsed row per client row.  Statuses are counted at the end: liveness may still fail a
    row after it was parsed."""

    sums: list[int] = field(default_factory=lambda: [0] * len(JOB_SUM_KEYS))
    start: datetime | None = None
    end: datetime | None = None

    def add(self, row: ClientRunRow) -> None:
        metrics = row.metrics
        self.add_parts([getattr(metrics, key) or 0 for key in JOB_SUM_KEYS], row)

    def add_parts(self, counts: list[int], times: ClientTimes | ClientRunRow) -> None:
        """Add one client row: its :data:`JOB_SUM_KEYS` counts (0 for unset) and times."""
        sums = self.sums
        for i, n in enumerate(counts):
            sums[i] += n
        start, end = times.start_time, times.end_time
        # Compared as instants, as aggregation.aggregate does; the first of equal ones kept.
        if start is not None and (self.start is None or start < self.start):
            self.start = start
        if end is not None and (self.end is None or end > self.end):
            self.end = end

    def aggregate(self, clients: list[Row]) -> JobAggregate:
        """What :func:`~jobtrack_airtable.aggregation.aggregate` gives for ``clients`` with
        their final statuses (the rows these totals were summed from)."""
        return JobAggregate(
            clients_processed=len(clients),
            clients_with_errors=sum(c.status is Status.FAILED for c in clients),
            **dict(zip(JOB_SUM_KEYS, self.sums, strict=True)),
            start_time=self.start.astimezone(UTC) if self.start is not None else None,
            end_time=self.end.astimezone(UTC) if self.end is not None else None,
        )


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
    #: one object per distinct count, shared by every row holding it.
    shared_numbers: dict[int, int] = field(default_factory=dict)
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
    #: pass ``fix``: the parsed job rows by record ID (jobs only: client rows are read again
    #: when aggregated, so that planning never holds a parsed model per client row).
    job_rows: dict[str, Any] = field(default_factory=dict)
    #: pass ``fix``: each base's client rows summed as they are parsed (see ClientTotals).
    client_totals: dict[str, ClientTotals] = field(default_factory=dict)
    #: pass ``fix``: the ``Running`` entities by record ID, with the instant their verdict
    #: may change as time passes (``None``: not unless the clock goes back); see .groups.
    timed: dict[str, datetime | None] = field(default_factory=dict)
    #: pass ``ingest``, when set: the client IDs each row adds to ``known_clients``.
    contributions: dict[str, tuple[str, ...]] | None = None

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
