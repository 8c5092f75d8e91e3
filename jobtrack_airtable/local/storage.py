"""Airtable data model of the local server: in memory, indexed, persisted to SQLite.

Bases hold tables (``tbl…`` IDs, names, ordered fields with ``fld…`` IDs, types and options),
tables hold records.  Every write validates the *whole* batch first and commits it in one step
under the store lock, so a batch is all-or-nothing (SPEC §2.5) and concurrent writers never see
or produce a torn record.  The commit is one SQLite transaction of the changed rows
(:mod:`.persistence`; a file with ``data_path``, ``:memory:`` without), durable *before* the
write returns, so every acknowledged write survives a restart or a SIGKILL; only then is the
in-memory copy changed.  Reads are served from memory, with field indexes (:mod:`.index`) for
the primary field, merge fields and simple equality/prefix filters.

Records are immutable once committed (a write replaces the :class:`Record` object), which lets a
listing keep references to a consistent snapshot without copying it.

>>> store = Store()
>>> base = store.create_base("appExampleBase001")
>>> fields = [{"name": "Name", "type": "singleLineText"}]
>>> table = store.create_table("appExampleBase001", "Things", fields)
>>> [rec] = store.create_records("appExampleBase001", "Things", [{"Name": "a"}])
>>> rec.fields
{'Name': 'a'}
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sqlite3
import string
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..field_types import COMPUTED_TYPES, NUMBER_TYPES, TEXT_TYPES
from ..files import write_atomically as _write_atomically
from ..timeutil import parse_airtable, to_airtable
from . import errors as E
from .fieldmodels import complete_options, default_options, formula_result
from .index import STRING_FIELD_TYPES, FieldIndex, candidates
from .persistence import BaseFile, RecordRow, TableRow

MAX_RECORDS_PER_REQUEST = 10
#: Airtable's cap on a long text cell (SPEC §2.9); formulas are capped alike.
MAX_TEXT = 100_000
_ALNUM = string.ascii_letters + string.digits
_ID_RE = {p: re.compile(rf"^{p}[A-Za-z0-9]{{14}}$") for p in ("app", "tbl", "fld", "rec", "viw")}
_SELECT_COLORS = ("blueLight2", "cyanLight2", "tealLight2", "greenLight2", "yellowLight2")
_FORMAT_VERSION = 1


def new_id(prefix: str) -> str:
    """A fresh Airtable-style ID: ``prefix`` + 14 random alphanumerics.

    >>> len(new_id("rec")), new_id("rec")[:3]
    (17, 'rec')
    """
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(14))


def is_id(value: Any, prefix: str) -> bool:
    """Whether ``value`` is a well-formed ID with ``prefix`` (``rec``, ``tbl``, ``app``…)."""
    return isinstance(value, str) and _ID_RE[prefix].match(value) is not None


def is_empty(value: Any) -> bool:
    """Airtable's notion of an empty cell: ``None``, ``""``, ``[]``, ``false`` (never ``0``)."""
    return (
        value is None
        or value is False
        or (isinstance(value, str) and value == "")
        or (isinstance(value, list | dict) and not value)
    )


# -- model ----------------------------------------------------------------------------------


@dataclass
class FieldDef:
    """One field of a table as the meta API describes it."""

    id: str
    name: str
    type: str
    options: dict[str, Any] | None = None
    description: str | None = None

    @property
    def computed(self) -> bool:
        return self.type in COMPUTED_TYPES

    @property
    def formula(self) -> str | None:
        if self.type == "formula" and self.options:
            text = self.options.get("formula")
            return text if isinstance(text, str) else None
        return None

    @property
    def choices(self) -> list[str]:
        if not self.options:
            return []
        return [c["name"] for c in self.options.get("choices", []) if isinstance(c, dict)]

    def to_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.description:
            out["description"] = self.description
        if self.options is not None:
            out["options"] = self.options
        return out


@dataclass(frozen=True, slots=True)
class Record:
    """A committed record.  Never mutated: a write replaces the object."""

    id: str
    created_time: str
    created: datetime
    modified: datetime
    fields: Mapping[str, Any]


@dataclass
class ViewDef:
    """A view: what the meta API shows (ID, name, type) plus, as far as Airtable documents
    what a view does to a listing, its filter (a formula) and its sort."""

    id: str
    name: str
    type: str = "grid"
    filter: str | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)

    def to_meta(self, fields: Sequence[FieldDef] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if fields is not None:
            out["visibleFieldIds"] = [f.id for f in fields]
        return out

    def to_model(self) -> dict[str, Any]:
        return {
            **self.to_meta(),
            **({"filterByFormula": self.filter} if self.filter else {}),
            **(
                {"sort": [{"field": n, "direction": "desc" if d else "asc"} for n, d in self.sort]}
                if self.sort
                else {}
            ),
        }


def view_from_model(spec: Any) -> ViewDef:
    """A view from its model: ``{"name", "type"?, "id"?, "filterByFormula"?, "sort"?}``."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise E.invalid_request("each view needs a non-empty name")
    vid = spec.get("id")
    formula = spec.get("filterByFormula")
    sort = spec.get("sort") or []
    if formula is not None and not isinstance(formula, str):
        raise E.invalid_request(f'view "{spec["name"]}": filterByFormula must be a string')
    if not isinstance(sort, list) or not all(
        isinstance(s, Mapping)
        and isinstance(s.get("field"), str)
        and s.get("direction", "asc") in ("asc", "desc")
        for s in sort
    ):
        raise E.invalid_request(
            f'view "{spec["name"]}": sort must be a list of {{field, direction}}'
        )
    return ViewDef(
        vid if isinstance(vid, str) and is_id(vid, "viw") else new_id("viw"),
        spec["name"],
        str(spec.get("type") or "grid"),
        formula or None,
        [(s["field"], s.get("direction") == "desc") for s in sort],
    )


@dataclass
class TableDef:
    """A table: identity, ordered fields, views, and records in creation order."""

    id: str
    name: str
    fields: list[FieldDef]
    description: str | None = None
    views: list[ViewDef] = field(default_factory=lambda: [ViewDef(new_id("viw"), "Grid view")])
    records: dict[str, Record] = field(default_factory=dict)
    #: Bumped whenever fields change, so caches of compiled formulas know to recompile.
    schema_version: int = 0
    #: Per-table cache owned by :mod:`.query` (compiled formula fields).
    cache: dict[str, Any] = field(default_factory=dict)
    #: Creation order of each record (its storage sequence number).
    seq: dict[str, int] = field(default_factory=dict)
    #: Field name → index, built on first use and kept current by every commit.
    indexes: dict[str, FieldIndex] = field(default_factory=dict)
    #: The base holding the table (links, lookups and rollups read other tables).
    base: BaseDef | None = field(default=None, repr=False, compare=False)
    #: The next auto number (``None``: not computed yet since the table was loaded).
    next_auto_number: int | None = None

    @property
    def primary_field_id(self) -> str:
        return self.fields[0].id

    @property
    def view_id(self) -> str:
        return self.views[0].id

    def view(self, ref: str) -> ViewDef | None:
        """The view with this name or ID."""
        return next((v for v in self.views if ref in (v.id, v.name)), None)

    def linked_table(self, fdef: FieldDef) -> TableDef | None:
        """The table a link field points to (``None`` if unknown)."""
        target = (fdef.options or {}).get("linkedTableId")
        if self.base is None or not isinstance(target, str):
            return None
        return self.base.table(target)

    def field_named(self, name_or_id: str) -> FieldDef | None:
        """The field with this name, else with this ID, else ``None``."""
        for f in self.fields:
            if f.name == name_or_id:
                return f
        for f in self.fields:
            if f.id == name_or_id:
                return f
        return None

    def index(self, name: str) -> FieldIndex:
        """The index of field ``name`` (built now, in one scan, if it does not exist)."""
        idx = self.indexes.get(name)
        if idx is None:
            idx = FieldIndex()
            for rec in self.records.values():
                idx.add(rec.id, rec.fields.get(name))
            self.indexes[name] = idx
        return idx

    def string_index(self, name: str) -> FieldIndex | None:
        """The index of ``name`` if filters may use it: a stored field holding plain text."""
        fdef = self.field_named(name)
        if fdef is None or fdef.name != name or fdef.type not in STRING_FIELD_TYPES:
            return None
        return self.index(name)

    def candidates(self, formula: Any) -> list[Record] | None:
        """Records that may match ``formula`` (creation order), or ``None``: check them all."""
        ids = candidates(getattr(formula, "tree", None), self.string_index)
        if ids is None:
            return None
        found = [self.records[r] for r in ids if r in self.records]
        found.sort(key=lambda r: self.seq[r.id])
        return found

    def to_model(self) -> dict[str, Any]:
        """What the base file stores of the table (its meta model and view ID)."""
        return {
            **self.to_meta(),
            "views": [v.to_model() for v in self.views],
            "viewId": self.view_id,
        }

    def to_meta(self, *, visible_field_ids: bool = False) -> dict[str, Any]:
        visible = self.fields if visible_field_ids else None
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "primaryFieldId": self.primary_field_id,
            "fields": [f.to_meta() for f in self.fields],
            "views": [v.to_meta(visible) for v in self.views],
        }
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class BaseDef:
    id: str
    tables: list[TableDef] = field(default_factory=list)
    #: The base's name in the meta API (its ID unless one was given; kept in memory only).
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.id

    def table(self, ref: str) -> TableDef | None:
        """The table with this ID, else with this name (Airtable accepts both in URLs)."""
        for t in self.tables:
            if t.id == ref:
                return t
        for t in self.tables:
            if t.name == ref:
                return t
        return None


# -- value validation -----------------------------------------------------------------------


def _choice(name: str, index: int) -> dict[str, Any]:
    return {"id": new_id("sel"), "name": name, "color": _SELECT_COLORS[index % 5]}


class _Batch:
    """Select options a ``typecast`` write wants to add; applied only if the batch commits."""

    def __init__(self) -> None:
        self.new_choices: dict[str, tuple[FieldDef, list[str]]] = {}

    def add_choice(self, fdef: FieldDef, name: str) -> None:
        entry = self.new_choices.setdefault(fdef.id, (fdef, []))
        if name not in entry[1]:
            entry[1].append(name)

    def pending(self, fdef: FieldDef) -> list[str]:
        entry = self.new_choices.get(fdef.id)
        return entry[1] if entry else []


def _normalise(fdef: FieldDef, value: Any, typecast: bool, batch: _Batch) -> Any:
    """Validate and normalise one incoming cell value; ``None`` means "clear the cell"."""
    if is_empty(value):
        return None
    ftype = fdef.type
    if ftype in NUMBER_TYPES:
        if isinstance(value, str) and typecast:
            try:
                value = float(value.strip().replace(",", ""))
            except ValueError:
                raise E.bad_value(fdef.name) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise E.bad_value(fdef.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise E.bad_value(fdef.name)
        precision = (fdef.options or {}).get("precision")
        if isinstance(precision, int):
            # Airtable stores numbers at the field's precision: 3.0 in an integer field reads
            # back as 3, a cost of 1.005 as 1.0 (banker's rounding is close enough here).
            value = round(value) if precision == 0 else round(float(value), precision)
        return value
    if ftype in TEXT_TYPES:
        if not isinstance(value, str):
            if typecast and isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)
            raise E.bad_value(fdef.name)
        if len(value) > MAX_TEXT:
            raise E.bad_value(fdef.name, f"text is limited to {MAX_TEXT:,} characters")
        return rich_text(value) if ftype == "richText" else value
    if ftype == "singleSelect":
        if not isinstance(value, str):
            raise E.bad_value(fdef.name)
        _check_choice(fdef, value, typecast, batch)
        return value
    if ftype == "multipleSelects":
        if isinstance(value, str) and typecast:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise E.bad_value(fdef.name)
        for v in value:
            _check_choice(fdef, v, typecast, batch)
        return value or None
    if ftype == "dateTime" and isinstance(value, int | float) and not isinstance(value, bool):
        # Airtable takes a number in a date-time field as milliseconds since the epoch.
        try:
            return to_airtable(datetime.fromtimestamp(value / 1000, UTC))
        except (OverflowError, OSError, ValueError):
            raise E.bad_value(fdef.name, f"cannot read {value!r} as epoch milliseconds") from None
    if ftype in ("dateTime", "date"):
        if not isinstance(value, str):
            raise E.bad_value(fdef.name)
        try:
            parsed = parse_airtable(value)
        except InvalidInputError:
            raise E.bad_value(fdef.name, f"cannot parse date value {value!r}") from None
        return to_airtable(parsed) if ftype == "dateTime" else parsed.date().isoformat()
    if ftype == "checkbox":
        if not isinstance(value, bool):
            if not typecast:
                raise E.bad_value(fdef.name)
            value = str(value).strip().lower() in ("1", "true", "yes", "checked", "on")
        return value or None
    if ftype == "multipleRecordLinks":
        if isinstance(value, str) and typecast:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(is_id(v, "rec") for v in value):
            raise E.bad_value(fdef.name, "a link takes a list of record IDs")
        return list(dict.fromkeys(value)) or None
    # Types this server does not model (collaborators, barcodes…) are stored as sent;
    # attachments come here already normalised (:mod:`.attachments`).
    return value


_BULLET = re.compile(r"^(\s*)\* ", re.MULTILINE)


def rich_text(text: str) -> str:
    r"""Rich text (Markdown) as Airtable stores it: ``*`` bullets written as ``-``, and a
    trailing newline.

    >>> rich_text("* a\n* b")
    '- a\n- b\n'
    """
    text = _BULLET.sub(r"\1- ", text)
    return text if text.endswith("\n") else text + "\n"


def _check_choice(fdef: FieldDef, value: str, typecast: bool, batch: _Batch) -> None:
    if value in fdef.choices or value in batch.pending(fdef):
        return
    if not typecast:
        raise E.ApiError(
            422,
            "INVALID_MULTIPLE_CHOICE_OPTIONS",
            f'Insufficient permissions to create new select option ""{value}""',
        )
    batch.add_choice(fdef, value)


# -- the store ------------------------------------------------------------------------------

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


#: What :attr:`Store.listeners` hear of one record: table, record ID, before, after.
CommittedChange = tuple["TableDef", str, "Record | None", "Record | None"]


@dataclass
class _Change:
    table: TableDef
    record_id: str
    old: Record | None
    new: Record | None


class Store:
    """Thread-safe storage of bases, tables and records, persisted to a SQLite base file
    (``data_path``; in memory when ``None``).  A context manager: leaving it (or
    :meth:`close`) closes the file and releases its lock; the in-memory copy stays readable.

    Table arguments accept a table ID or name; a ``base_id`` of ``None`` means the only base
    (handy in fixtures).  Write methods raise :class:`~.errors.ApiError` exactly as the HTTP
    API would answer, and change nothing when they raise.

    >>> store = Store()
    >>> _ = store.create_base("appExampleBase001")
    >>> store.base_ids()
    ['appExampleBase001']
    """

    def __init__(self, data_path: str | Path | None = None, *, clock: Clock = _utcnow) -> None:
        self.lock = threading.RLock()
        self.data_path = Path(data_path) if data_path is not None else None
        self.clock = clock
        self._bases: dict[str, BaseDef] = {}
        self._next_seq = 0
        self._file: BaseFile | None = None
        #: Called after every committed record write with the base ID and, per record, its
        #: table, ID, value before the write (``None``: created) and after (``None``: deleted).
        self.listeners: list[Callable[[str, list[CommittedChange]], None]] = []
        self.open()

    def open(self) -> None:
        """(Re)open the base file and load it (a no-op while open)."""
        with self.lock:
            if self._file is not None:
                return
            file = BaseFile(self.data_path)
            try:
                self._load(file)
            except BaseException:
                file.close()
                raise
            self._file = file

    def close(self) -> None:
        """Close the base file (releasing its lock); reads keep working from memory."""
        with self.lock:
            file, self._file = self._file, None
            if file is not None:
                file.close()

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_as(self, path: str | Path) -> None:
        """Write a copy of the whole state to the base file ``path`` (atomically)."""
        with self.lock:
            self._writer().save_as(path)

    # -- bases and tables -------------------------------------------------------------------

    def base_ids(self) -> list[str]:
        with self.lock:
            return list(self._bases)

    def base(self, base_id: str | None = None) -> BaseDef:
        """The base ``base_id`` (the only base when ``None``); 403-style error if absent."""
        with self.lock:
            if base_id is None:
                if len(self._bases) != 1:
                    raise ValueError("base_id is required when the store holds several bases")
                return next(iter(self._bases.values()))
            base = self._bases.get(base_id)
            if base is None:
                raise E.model_not_found()
            return base

    def has_base(self, base_id: str) -> bool:
        with self.lock:
            return base_id in self._bases

    def create_base(self, base_id: str, name: str | None = None) -> BaseDef:
        """Create (or return the existing) base ``base_id`` (``app`` + 14 alphanumerics);
        ``name`` names it (else it keeps its name, by default its ID)."""
        if not is_id(base_id, "app"):
            raise ValueError(f"base ID must be 'app' + 14 alphanumerics, got {base_id!r}")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"a base name must be a non-empty string, got {name!r}")
        with self.lock:
            base = self._bases.get(base_id)
            if base is None:
                self._write(bases=[base_id])
                base = self._bases[base_id] = BaseDef(base_id)
            if name is not None:
                base.name = name
            return base

    def table(self, base_id: str | None, table_ref: str) -> TableDef:
        """The table by ID or name; 404 ``TABLE_NOT_FOUND`` if absent."""
        with self.lock:
            table = self.base(base_id).table(table_ref)
            if table is None:
                raise E.table_not_found(table_ref)
            return table

    def tables(self, base_id: str | None = None) -> list[TableDef]:
        with self.lock:
            return list(self.base(base_id).tables)

    def create_table(
        self,
        base_id: str | None,
        name: str,
        fields: Sequence[Mapping[str, Any]],
        description: str | None = None,
        views: Sequence[Mapping[str, Any]] | None = None,
    ) -> TableDef:
        """Create a table from Airtable field models (``{"name", "type", "options"?}``) and,
        when given, view models (``{"name", "type"?, "filterByFormula"?, "sort"?}``; else
        one "Grid view").

        The first field is the primary field.  A link field to another table gets its
        inverse field there, as in Airtable.  Errors: 422 for a duplicate or empty name, no
        fields, or a bad field or view model.
        """
        with self.lock:
            base = self.base(base_id)
            if not isinstance(name, str) or not name.strip():
                raise E.invalid_request("table name must be a non-empty string")
            if base.table(name) is not None:
                raise E.ApiError(
                    422, "DUPLICATE_TABLE_NAME", f'A table named "{name}" already exists'
                )
            if not isinstance(fields, list | tuple) or not fields:
                raise E.invalid_request("a table needs at least one field")
            table = TableDef(new_id("tbl"), name, [], description=description, base=base)
            if views:
                table.views = [view_from_model(v) for v in views]
            for spec in fields:
                table.fields.append(self._field_from_model(table, spec))
            if table.fields[0].computed:
                raise E.invalid_request(f'field "{table.fields[0].name}" cannot be primary')
            _link_formulas(table)
            inverses = [self._inverse_of(table, f, base) for f in table.fields]
            self._add_table(base, table, [i for i in inverses if i is not None])
            return table

    def _add_table(
        self, base: BaseDef, table: TableDef, inverses: Sequence[tuple[TableDef, FieldDef]] = ()
    ) -> None:
        rows = [self._table_row(base, table, len(self._all_tables()))]
        for other, inverse in inverses:
            other.fields.append(inverse)
            rows.append(self._table_row(base, other))
        try:
            self._write(tables=rows)
        except BaseException:
            for other, inverse in inverses:
                other.fields.remove(inverse)
            raise
        for other, _ in inverses:
            other.schema_version += 1
            other.cache.clear()
        table.base = base
        base.tables.append(table)

    def _inverse_of(
        self, table: TableDef, fdef: FieldDef, base: BaseDef
    ) -> tuple[TableDef, FieldDef] | None:
        """The inverse field Airtable adds to the linked table for a new link field (none
        for a link to its own table, or when the model already names its inverse)."""
        options = fdef.options or {}
        if fdef.type != "multipleRecordLinks" or options.get("inverseLinkFieldId"):
            return None
        target = base.table(str(options.get("linkedTableId")))
        if target is None or target is table:
            return None
        name = table.name
        taken = {f.name for f in target.fields}
        n = 1
        while name in taken:
            n += 1
            name = f"{table.name} {n}"
        inverse = FieldDef(
            new_id("fld"),
            name,
            "multipleRecordLinks",
            {
                "linkedTableId": table.id,
                "inverseLinkFieldId": fdef.id,
                "isReversed": False,
                "prefersSingleRecordLink": False,
            },
        )
        fdef.options = {**options, "inverseLinkFieldId": inverse.id}
        return target, inverse

    def _all_tables(self) -> list[TableDef]:
        return [t for b in self._bases.values() for t in b.tables]

    def _table_row(self, base: BaseDef, table: TableDef, position: int | None = None) -> TableRow:
        if position is None:
            position = self._all_tables().index(table)
        return TableRow(table.id, base.id, position, table.to_model())

    def _base_of(self, table: TableDef) -> BaseDef:
        return next(b for b in self._bases.values() if any(t is table for t in b.tables))

    def create_field(
        self, base_id: str | None, table_ref: str, spec: Mapping[str, Any]
    ) -> FieldDef:
        """Add a field (an Airtable field model) to a table."""
        with self.lock:
            table = self.table(base_id, table_ref)
            base = self._base_of(table)
            fdef = self._field_from_model(table, spec)
            table.fields.append(fdef)
            _link_formulas(table)
            inverse = self._inverse_of(table, fdef, base)
            rows = [self._table_row(base, table)]
            if inverse is not None:
                inverse[0].fields.append(inverse[1])
                rows.append(self._table_row(base, inverse[0]))
            try:
                self._write(tables=rows)
            except BaseException:
                table.fields.pop()
                if inverse is not None:
                    inverse[0].fields.pop()
                raise
            for t in (table, *([inverse[0]] if inverse else [])):
                t.schema_version += 1
                t.cache.clear()
            return fdef

    def create_view(self, base_id: str | None, table_ref: str, spec: Mapping[str, Any]) -> ViewDef:
        """Add a view (``{"name", "type"?, "filterByFormula"?, "sort"?}``) to a table: seeding
        only, as Airtable's API cannot create views."""
        with self.lock:
            table = self.table(base_id, table_ref)
            view = view_from_model(spec)
            if table.view(view.name) is not None:
                raise E.invalid_request(f'a view named "{view.name}" already exists')
            table.views.append(view)
            try:
                self._write(tables=[self._table_row(self._base_of(table), table)])
            except BaseException:
                table.views.pop()
                raise
            return view

    def update_field(
        self, base_id: str | None, table_ref: str, field_id: str, changes: Mapping[str, Any]
    ) -> FieldDef:
        """Rename a field and/or change its description (Airtable's update-field endpoint).

        As in Airtable, a field keeps its ID through a rename, and every formula referencing
        it follows (Airtable stores formulas by field ID; here the texts are rewritten).
        Records store values by field name, so a rename re-keys (and re-persists) them all.
        """
        with self.lock:
            table = self.table(base_id, table_ref)
            fdef = next((f for f in table.fields if f.id == field_id), None)
            if fdef is None:
                raise E.ApiError(404, "NOT_FOUND", f"Could not find field {field_id}")
            name = changes.get("name", fdef.name)
            if not isinstance(name, str) or not name.strip():
                raise E.ApiError(422, "DUPLICATE_OR_EMPTY_FIELD_NAME", "A field needs a name")
            if name != fdef.name and any(f.name == name for f in table.fields):
                raise E.ApiError(
                    422, "DUPLICATE_OR_EMPTY_FIELD_NAME", f'A field named "{name}" already exists'
                )
            desc = changes.get("description", fdef.description)
            if desc is not None and not isinstance(desc, str):
                raise E.invalid_request("description must be a string")
            old = fdef.name
            if name != old:
                self._rename_field(table, fdef, name)
            fdef.description = desc or None
            self._write(tables=[self._table_row(self._base_of(table), table)])
            return fdef

    def _rename_field(self, table: TableDef, fdef: FieldDef, name: str) -> None:
        old = fdef.name
        fdef.name = name
        for other in table.fields:
            text = other.formula
            if text and "{" + old + "}" in text:
                other.options = {
                    **(other.options or {}),
                    "formula": text.replace("{" + old + "}", "{" + name + "}"),
                }
        _link_formulas(table)
        rows = []
        for rid, rec in list(table.records.items()):
            if old in rec.fields:
                fields = {(name if k == old else k): v for k, v in rec.fields.items()}
                table.records[rid] = Record(
                    rec.id, rec.created_time, rec.created, rec.modified, fields
                )
                rows.append(_row(table, table.records[rid], table.seq[rid]))
        if rows:
            self._write(upsert=rows)
        # Indexes and compiled formulas are keyed by name: rebuild them.
        table.indexes.clear()
        table.index(table.fields[0].name)
        table.schema_version += 1
        table.cache.clear()

    def update_table(
        self, base_id: str | None, table_ref: str, changes: Mapping[str, Any]
    ) -> TableDef:
        """Rename a table and/or change its description (Airtable's update-table endpoint);
        it keeps its ID."""
        with self.lock:
            base = self.base(base_id)
            table = self.table(base_id, table_ref)
            name = changes.get("name", table.name)
            if not isinstance(name, str) or not name.strip():
                raise E.invalid_request("table name must be a non-empty string")
            other = base.table(name)
            if other is not None and other is not table:
                raise E.ApiError(
                    422, "DUPLICATE_TABLE_NAME", f'A table named "{name}" already exists'
                )
            desc = changes.get("description", table.description)
            if desc is not None and not isinstance(desc, str):
                raise E.invalid_request("description must be a string")
            before = (table.name, table.description)
            table.name, table.description = name, desc or None
            try:
                self._write(tables=[self._table_row(base, table)])
            except BaseException:
                table.name, table.description = before
                raise
            return table

    @staticmethod
    def _field_from_model(table: TableDef, spec: Any) -> FieldDef:
        if not isinstance(spec, Mapping):
            raise E.invalid_request("each field must be an object")
        name, ftype = spec.get("name"), spec.get("type")
        if not isinstance(name, str) or not name.strip() or not isinstance(ftype, str):
            raise E.invalid_request("a field needs a non-empty name and a type")
        if table.field_named(name) is not None and any(f.name == name for f in table.fields):
            raise E.ApiError(
                422, "DUPLICATE_OR_EMPTY_FIELD_NAME", f'A field named "{name}" already exists'
            )
        options = spec.get("options")
        if options is not None and not isinstance(options, Mapping):
            raise E.invalid_request(f'options of field "{name}" must be an object')
        options = dict(options) if options is not None else None
        if ftype in ("singleSelect", "multipleSelects"):
            raw = (options or {}).get("choices", [])
            choices = []
            for i, c in enumerate(raw):
                cname = c.get("name") if isinstance(c, Mapping) else None
                if not isinstance(cname, str):
                    raise E.invalid_request(f'bad choice in field "{name}"')
                choices.append({**_choice(cname, i), **dict(c)})
            options = {**(options or {}), "choices": choices}
        elif ftype == "formula":
            formula = (options or {}).get("formula")
            if not isinstance(formula, str):
                raise E.invalid_request(f'formula field "{name}" needs options.formula')
            types = {f.name: f.type for f in table.fields}
            options = {
                "formula": formula,
                "isValid": True,
                "referencedFieldIds": [],
                "result": formula_result(formula, types),
            }
        elif ftype == "multipleRecordLinks":
            if not isinstance((options or {}).get("linkedTableId"), str):
                raise E.invalid_request(f'link field "{name}" needs options.linkedTableId')
            # The defaults Airtable fills in for a link created with only its table.
            options = {"isReversed": False, "prefersSingleRecordLink": False, **(options or {})}
            ref = options["linkedTableId"]
            target = table.base.table(ref) if table.base is not None else None
            # Seeding may name the table (its ID is not known before it exists).
            options["linkedTableId"] = (
                target.id if target is not None else table.id if ref == table.name else ref
            )
        elif ftype in ("count", "multipleLookupValues", "rollup"):
            options = {"isValid": True, **(options or {})}
            looked = _looked_up(table, options)
            if ftype == "multipleLookupValues" and looked is not None:
                # What a lookup holds: the looked-up field's model (Airtable's field model).
                options.setdefault(
                    "result",
                    {k: v for k, v in looked.to_meta().items() if k in ("type", "options")},
                )
        elif options is None:
            options = default_options(ftype)
        else:
            options = complete_options(ftype, options)
        desc = spec.get("description")
        return FieldDef(
            new_id("fld"), name, ftype, options, desc if isinstance(desc, str) else None
        )

    def ensure_tables(self, base_id: str, tables: Sequence[Mapping[str, Any]]) -> None:
        """Create the base and every table of ``tables`` (Airtable table models:
        ``{"name", "fields": [{"name", "type", "options"?}], "description"?}``) it lacks.

        Any field type may be seeded this way, formulas included (the meta API refuses
        those).  Existing tables are left as they are, so a persisted base keeps its data.
        """
        with self.lock:
            base = self.create_base(base_id)
            for model in tables:
                # A JSON value: create_table answers 422 unless it is a non-empty string.
                name: Any = model.get("name")
                if not isinstance(name, str) or base.table(name) is None:
                    fields = model.get("fields") or []
                    self.create_table(
                        base_id, name, fields, model.get("description"), model.get("views")
                    )

    # -- records: reads ---------------------------------------------------------------------

    def get_record(self, base_id: str | None, table_ref: str, record_id: str) -> Record:
        with self.lock:
            table = self.table(base_id, table_ref)
            if not is_id(record_id, "rec"):
                raise E.not_found()
            rec = table.records.get(record_id)
            if rec is None:
                raise E.record_not_found()
            return rec

    def snapshot(self, base_id: str | None, table_ref: str) -> tuple[TableDef, list[Record]]:
        """The table and a consistent list of its records (creation order), O(N) references."""
        with self.lock:
            table = self.table(base_id, table_ref)
            return table, list(table.records.values())

    def snapshot_for(
        self, base_id: str | None, table_ref: str, formula: Any
    ) -> tuple[TableDef, list[Record]]:
        """Like :meth:`snapshot`, but only the records an index says may match ``formula``
        (a compiled filter) when it can tell; every record otherwise."""
        with self.lock:
            table = self.table(base_id, table_ref)
            found = table.candidates(formula) if formula is not None else None
            return table, list(table.records.values()) if found is None else found

    # -- records: writes --------------------------------------------------------------------

    def create_records(
        self,
        base_id: str | None,
        table_ref: str,
        items: Sequence[Mapping[str, Any]],
        *,
        typecast: bool = False,
        created_time: datetime | None = None,
        limit: int | None = MAX_RECORDS_PER_REQUEST,
    ) -> list[Record]:
        """Create records from ``fields`` dicts, all or none.

        ``created_time`` back-dates the records (fixtures for stale runs); ``limit=None`` lifts
        the 10-record cap for direct (non-HTTP) seeding.
        """
        _check_count(items, limit, "created")
        with self.lock:
            table = self.table(base_id, table_ref)
            batch = _Batch()
            now = self.clock()
            created = created_time.astimezone(UTC) if created_time is not None else now
            changes = []
            for fields in items:
                values = self._validated(table, fields, typecast, batch)
                rec = self._new_record(table, values, created, now)
                changes.append(_Change(table, rec.id, None, rec))
            self._commit(changes, batch)
            return [c.new for c in changes if c.new is not None]

    def update_records(
        self,
        base_id: str | None,
        table_ref: str,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        replace: bool = False,
        typecast: bool = False,
    ) -> list[Record]:
        """Update ``(record_id, fields)`` pairs: PATCH semantics, or PUT with ``replace``."""
        _check_count(items, MAX_RECORDS_PER_REQUEST, "updated")
        with self.lock:
            table = self.table(base_id, table_ref)
            batch = _Batch()
            now = self.clock()
            staged: dict[str, Record] = {}
            changes = []
            for rid, fields in items:
                old = staged.get(rid) or self._existing(table, rid)
                values = self._validated(table, fields, typecast, batch)
                new = _apply(old, values, replace, now, _kept(table))
                staged[rid] = new
                changes.append(_Change(table, rid, old, new))
            self._commit(changes, batch)
            return [c.new for c in changes if c.new is not None]

    def upsert_records(
        self,
        base_id: str | None,
        table_ref: str,
        items: Sequence[Mapping[str, Any]],
        merge_on: Sequence[str],
        *,
        replace: bool = False,
        typecast: bool = False,
    ) -> tuple[list[Record], list[str], list[str]]:
        """``performUpsert``: per item, 0 matches → create, 1 → update, more → the request fails.

        Items may carry an ``id`` (then that record is updated).  Returns the records in
        request order and the created and updated record IDs.
        """
        _check_count(items, MAX_RECORDS_PER_REQUEST, "upserted")
        with self.lock:
            table = self.table(base_id, table_ref)
            merge_fields = _merge_fields(table, merge_on)
            batch = _Batch()
            now = self.clock()
            staged: dict[str, Record] = {}
            order: list[str] = []
            changes: list[_Change] = []
            created_ids: list[str] = []
            updated_ids: list[str] = []
            for item in items:
                values = self._validated(table, item.get("fields", {}), typecast, batch)
                rid = item.get("id")
                if rid is not None:
                    old: Record | None = staged.get(rid) or self._existing(table, rid)
                elif _blank_merge_value(merge_fields, values):
                    # A blank merge value ("" or null) matches nothing, as in Airtable: the
                    # item creates a record rather than updating some blank row.
                    old = None
                else:
                    old = self._match(table, staged, merge_fields, values)
                if old is None:
                    new = self._new_record(table, values, now, now)
                    rid = new.id
                    created_ids.append(rid)
                else:
                    rid = old.id
                    new = _apply(old, values, replace, now, _kept(table))
                    if rid not in created_ids and rid not in updated_ids:
                        updated_ids.append(rid)
                changes.append(_Change(table, rid, old, new))
                staged[rid] = new
                if rid not in order:  # a record matched by two items is listed once
                    order.append(rid)
            self._commit(changes, batch)
            return [staged[r] for r in order], created_ids, updated_ids

    def delete_records(self, base_id: str | None, table_ref: str, ids: Sequence[str]) -> list[str]:
        """Delete records by ID, all or none (404 if any is unknown)."""
        _check_count(ids, MAX_RECORDS_PER_REQUEST, "deleted")
        with self.lock:
            table = self.table(base_id, table_ref)
            changes = []
            seen: set[str] = set()
            for rid in ids:
                old = self._existing(table, rid)
                if rid not in seen:
                    changes.append(_Change(table, rid, old, None))
                    seen.add(rid)
            self._commit(changes, _Batch())
            return list(ids)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _new_record(
        table: TableDef, values: Mapping[str, Any], created: datetime, now: datetime
    ) -> Record:
        fields = _compact(values)
        autos = [f.name for f in table.fields if f.type == "autoNumber"]
        if autos:
            # Auto numbers are stored with the record, so they never change; the counter
            # restarts after the highest stored number when the base is reopened.
            if table.next_auto_number is None:
                numbers = [r.fields.get(n) for r in table.records.values() for n in autos]
                table.next_auto_number = 1 + max(
                    (n for n in numbers if isinstance(n, int)), default=0
                )
            for name in autos:
                fields[name] = table.next_auto_number
            table.next_auto_number += 1
        return Record(new_id("rec"), to_airtable(created), created, now, fields)

    def _inverse_changes(self, changes: Sequence[_Change]) -> list[_Change]:
        """The other side of every link these changes add or remove, as Airtable keeps a
        link and its inverse field in step (records of the linked table change too)."""
        latest: dict[str, Record | None] = {c.record_id: c.new for c in changes}
        owner: dict[str, TableDef] = {c.record_id: c.table for c in changes}
        extra: dict[str, _Change] = {}
        now = self.clock()
        for rid in list(latest):
            table, new = owner[rid], latest[rid]
            old = table.records.get(rid)
            for fdef in table.fields:
                inverse_id = (fdef.options or {}).get("inverseLinkFieldId")
                target = table.linked_table(fdef) if fdef.type == "multipleRecordLinks" else None
                inverse = (
                    next((g for g in target.fields if g.id == inverse_id), None) if target else None
                )
                if target is None or target is table or inverse is None:
                    continue
                before = set(old.fields.get(fdef.name) or []) if old is not None else set()
                after = set(new.fields.get(fdef.name) or []) if new is not None else set()
                for other_id in sorted(before ^ after):
                    other = latest[other_id] if other_id in latest else target.records.get(other_id)
                    if other is None:
                        continue
                    ids = [i for i in other.fields.get(inverse.name) or [] if i != rid]
                    if other_id in after:
                        ids.append(rid)
                    fields = {k: v for k, v in other.fields.items() if k != inverse.name}
                    if ids:
                        fields[inverse.name] = ids
                    rec = Record(other.id, other.created_time, other.created, now, fields)
                    latest[other_id] = rec
                    owner[other_id] = target
                    extra[other_id] = _Change(target, other_id, target.records.get(other_id), rec)
        return list(extra.values())

    @staticmethod
    def _existing(table: TableDef, rid: Any) -> Record:
        if not is_id(rid, "rec"):
            raise E.not_found()
        rec = table.records.get(rid)
        if rec is None:
            raise E.record_not_found(rid)
        return rec

    @staticmethod
    def _validated(table: TableDef, fields: Any, typecast: bool, batch: _Batch) -> dict[str, Any]:
        """Validate a ``fields`` object; returns values keyed by field *name* (None = clear)."""
        if not isinstance(fields, Mapping):
            raise E.invalid_request("fields must be an object")
        out: dict[str, Any] = {}
        for key, value in fields.items():
            fdef = table.field_named(key) if isinstance(key, str) else None
            if fdef is None:
                raise E.unknown_field(str(key))
            if fdef.computed:
                raise E.computed_field(fdef.name)
            out[fdef.name] = value = _normalise(fdef, value, typecast, batch)
            target = table.linked_table(fdef) if fdef.type == "multipleRecordLinks" else None
            if target is None or not value:
                continue
            for rid in value:
                if rid not in target.records:
                    raise E.ApiError(
                        422,
                        "ROW_DOES_NOT_EXIST",
                        f"Record ID {rid} does not exist in {target.name}",
                    )
        return out

    @staticmethod
    def _match(
        table: TableDef,
        staged: Mapping[str, Record],
        merge_fields: Sequence[FieldDef],
        values: Mapping[str, Any],
    ) -> Record | None:
        key = [values[f.name] for f in merge_fields]
        # The first merge field's index gives the committed candidates; records staged earlier
        # in this request win over their committed versions.
        ids = dict.fromkeys(table.index(merge_fields[0].name).equal(key[0]))
        ids.update(dict.fromkeys(staged))
        pool = [staged.get(r) or table.records[r] for r in ids]
        matches = [r for r in pool if [r.fields.get(f.name) for f in merge_fields] == key]
        if len(matches) > 1:
            shown = ", ".join(
                f"{{{f.name}}} = {json.dumps(v)}" for f, v in zip(merge_fields, key, strict=True)
            )
            raise E.invalid_records(
                f"Cannot upsert: {len(matches)} records match fieldsToMergeOn ({shown}); "
                "at most one record may match"
            )
        return matches[0] if matches else None

    def _commit(self, changes: list[_Change], batch: _Batch) -> None:
        """Persist the staged changes in one transaction, then apply them in memory.

        Nothing changes (in the file or in memory) if persisting fails: a 500, as Airtable
        answers when it cannot store a write.
        """
        changes = [*changes, *self._inverse_changes(changes)]
        added_choices: list[tuple[FieldDef, dict[str, Any] | None]] = []
        for fdef, names in batch.new_choices.values():
            added_choices.append((fdef, dict(fdef.options) if fdef.options else None))
            existing = list((fdef.options or {}).get("choices", []))
            start = len(existing)
            existing += [_choice(n, start + i) for i, n in enumerate(names)]
            fdef.options = {**(fdef.options or {}), "choices": existing}
        # The last change of each record is what gets stored.
        final = {ch.record_id: ch for ch in changes}
        seqs: dict[str, int] = {}
        rows: list[RecordRow] = []
        for ch in final.values():
            if ch.new is None:
                continue
            seq = ch.table.seq.get(ch.record_id)
            if seq is None:
                seq = seqs[ch.record_id] = self._next_seq + len(seqs)
            rows.append(_row(ch.table, ch.new, seq))
        touched = {id(c.table): c.table for c in changes}.values()
        tables = [
            self._table_row(self._base_of(t), t)
            for t in touched
            if any(f is g for f, _ in added_choices for g in t.fields)
        ]
        try:
            self._write(
                tables=tables,
                upsert=rows,
                delete=[c.record_id for c in final.values() if c.new is None],
            )
        except BaseException:
            for fdef, options in added_choices:
                fdef.options = options
            raise
        self._next_seq += len(seqs)
        for ch in final.values():
            table = ch.table
            before = table.records.get(ch.record_id)
            for name, idx in table.indexes.items():
                if before is not None:
                    idx.remove(ch.record_id, before.fields.get(name))
                if ch.new is not None:
                    idx.add(ch.record_id, ch.new.fields.get(name))
            if ch.new is None:
                table.records.pop(ch.record_id, None)
                table.seq.pop(ch.record_id, None)
            else:
                table.records[ch.record_id] = ch.new
                if ch.record_id in seqs:
                    table.seq[ch.record_id] = seqs[ch.record_id]
        if self.listeners and final:
            was: dict[str, Record | None] = {}
            for ch in changes:
                was.setdefault(ch.record_id, ch.old)
            heard = [(c.table, rid, was[rid], c.new) for rid, c in final.items()]
            base_id = self._base_of(changes[0].table).id
            for listener in self.listeners:
                listener(base_id, heard)

    # -- persistence ------------------------------------------------------------------------

    def _writer(self) -> BaseFile:
        if self._file is None:
            raise E.ApiError(503, "SERVICE_UNAVAILABLE", "The local base is closed")
        return self._file

    def _write(
        self,
        *,
        bases: Sequence[str] = (),
        tables: Sequence[TableRow] = (),
        upsert: Sequence[RecordRow] = (),
        delete: Sequence[str] = (),
    ) -> None:
        try:
            self._writer().write(bases=bases, tables=tables, upsert=upsert, delete=delete)
        except (sqlite3.Error, OSError) as exc:
            raise E.ApiError(500, "SERVER_ERROR", f"could not persist the write: {exc}") from exc

    def _load(self, file: BaseFile) -> None:
        bases, tables, records = file.load()
        loaded: dict[str, BaseDef] = {b: BaseDef(b) for b in bases}
        by_id: dict[str, TableDef] = {}
        try:
            for row in tables:
                table = _table_from_model(row.model)
                loaded.setdefault(row.base_id, BaseDef(row.base_id)).tables.append(table)
                by_id[table.id] = table
            next_seq = 0
            for r in records:
                table = by_id[r.table_id]
                created = parse_airtable(r.created_time)
                modified = parse_airtable(r.modified_time)
                table.records[r.id] = Record(r.id, r.created_time, created, modified, r.fields)
                table.seq[r.id] = r.seq
                next_seq = max(next_seq, r.seq + 1)
        except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as exc:
            where = str(file.path) if file.path is not None else ":memory:"
            raise ValueError(f"cannot load local Airtable data from {where!r}: {exc!r}") from exc
        for base in loaded.values():
            for table in base.tables:
                table.base = base
        for table in by_id.values():
            table.index(table.fields[0].name)  # the primary field is always indexed
        self._bases = loaded
        self._next_seq = next_seq


def _row(table: TableDef, rec: Record, seq: int) -> RecordRow:
    return RecordRow(
        rec.id, table.id, seq, rec.created_time, to_airtable(rec.modified), dict(rec.fields)
    )


def _table_from_model(tdata: Mapping[str, Any]) -> TableDef:
    views = [view_from_model(v) for v in tdata.get("views") or []] or [
        ViewDef(tdata.get("viewId") or new_id("viw"), "Grid view")
    ]
    table = TableDef(
        tdata["id"],
        tdata["name"],
        [
            FieldDef(
                f["id"],
                f["name"],
                f["type"],
                _with_choice_ids(f.get("options")),
                f.get("description"),
            )
            for f in tdata["fields"]
        ],
        description=tdata.get("description"),
        views=views,
    )
    types = {f.name: f.type for f in table.fields}
    for fdef in table.fields:
        # Files written before formula fields showed their result type.
        if fdef.formula is not None and "result" not in (fdef.options or {}):
            fdef.options = {**(fdef.options or {}), "result": formula_result(fdef.formula, types)}
    return table


def _looked_up(table: TableDef, options: Mapping[str, Any]) -> FieldDef | None:
    """The field a lookup or rollup reads in the linked table (``None`` if unknown)."""
    link = next((f for f in table.fields if f.id == options.get("recordLinkFieldId")), None)
    target = table.linked_table(link) if link is not None else None
    if target is None:
        return None
    return next((f for f in target.fields if f.id == options.get("fieldIdInLinkedTable")), None)


def _with_choice_ids(options: Any) -> Any:
    """Options whose select choices all have IDs (files written before choices had them)."""
    if not isinstance(options, Mapping) or not isinstance(options.get("choices"), list):
        return options
    choices = [
        {**_choice(c["name"], i), **c} if isinstance(c, Mapping) and "name" in c else c
        for i, c in enumerate(options["choices"])
    ]
    return {**options, "choices": choices}


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (its directory made if missing) so that a crash never leaves
    half a file behind and a write is acknowledged only once it is on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, text)


def _link_formulas(table: TableDef) -> None:
    """Fill in each formula field's ``referencedFieldIds`` (what the meta API shows)."""
    for fdef in table.fields:
        formula = fdef.formula
        if formula:
            refs = [f.id for f in table.fields if "{" + f.name + "}" in formula]
            fdef.options = {**(fdef.options or {}), "referencedFieldIds": refs}


def _check_count(items: Sequence[Any], limit: int | None, verb: str) -> None:
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise E.invalid_records("records must be an array")
    if limit is not None and len(items) > limit:
        raise E.invalid_records(
            f"A maximum of {limit} records can be {verb} per request but you have provided "
            f"{len(items)}."
        )
    if not items:
        raise E.invalid_records(f"You must provide an array of up to {limit or 10} records")


def _merge_fields(table: TableDef, merge_on: Any) -> list[FieldDef]:
    if (
        not isinstance(merge_on, list)
        or not 1 <= len(merge_on) <= 3
        or not all(isinstance(n, str) for n in merge_on)
    ):
        raise E.invalid_request("performUpsert.fieldsToMergeOn must list 1 to 3 field names")
    out = []
    for name in merge_on:
        fdef = table.field_named(name)
        if fdef is None:
            raise E.unknown_field(name)
        if fdef.computed:
            raise E.ApiError(
                422,
                "INVALID_VALUE_FOR_COLUMN",
                f'Field "{fdef.name}" cannot be used in fieldsToMergeOn because the field is '
                "computed",
            )
        out.append(fdef)
    return out


def _blank_merge_value(merge_fields: Sequence[FieldDef], values: Mapping[str, Any]) -> bool:
    missing = [f.name for f in merge_fields if f.name not in values]
    if missing:
        raise E.invalid_records(
            f"Each record must include every field of fieldsToMergeOn; missing {missing}"
        )
    return any(values[f.name] is None for f in merge_fields)


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _kept(table: TableDef) -> tuple[str, ...]:
    """Stored values a replacing write keeps: auto numbers (never written by clients)."""
    return tuple(f.name for f in table.fields if f.type == "autoNumber")


def _apply(
    old: Record,
    values: Mapping[str, Any],
    replace: bool,
    now: datetime,
    keep: Sequence[str] = (),
) -> Record:
    fields = {k: v for k, v in old.fields.items() if k in keep} if replace else dict(old.fields)
    for name, value in values.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return Record(old.id, old.created_time, old.created, now, fields)
