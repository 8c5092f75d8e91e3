"""The one codec: a table's logical field keys ⇄ what Airtable calls its fields.

A field lives in three key spaces, and every map between them is built here, once per
table, and nowhere else (``tests/test_layers.py`` holds the rest of the package to it):

* the **logical key** (``profiles_examined``): what code speaks above the table layer;
* the **configured name** (``Profiles Examined for Scoring``): what the schema file calls
  the field; raw records read back (sync, archives, the mirror), plans and messages use it;
* the **wire reference**: the pinned field ID (``schema pin``) when the table has one, else
  the configured name.  Requests carry it; pinned tables answer by it
  (``returnFieldsByFieldId``), so a field renamed in the base still lands under its name.

A write goes out in one step, logical key → wire, checked against the schema in the same
pass (:meth:`Codec.encode`); a read comes back wire → configured name (:meth:`Codec.decode`,
nothing to do for an unpinned table) and the typed rows take names → logical keys
(:meth:`Codec.keys`).  The field spec → Airtable field *model* (what the meta API creates) is
:func:`~jobtrack_airtable.schema.field_model`, also once.

>>> from jobtrack_airtable.schema import load_schema
>>> crr = codec_for(load_schema().client_runs)
>>> crr.encode({"run_id": "250930-141522-Guy-Wilson", "profiles_examined": 5})
{'Run ID': '250930-141522-Guy-Wilson', 'Profiles Examined for Scoring': 5}
>>> crr.keys({"Profiles Examined for Scoring": 5, "Not Ours": 1})
{'profiles_examined': 5}
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import SchemaViolationError, show
from ..schema import FieldSpec, TableSpec, value_problem
from .renames import rewrite_refs

if TYPE_CHECKING:
    from pyairtable.api.types import RecordDict

__all__ = ["Codec", "codec_for"]


class Codec:
    """One table's maps between logical keys, configured names and wire references (built
    once from its frozen :class:`~jobtrack_airtable.schema.TableSpec`).  Only enabled
    fields exist here: a field the base does not have (``enabled = false``) is unknown."""

    __slots__ = ("_by_id", "_by_key", "_by_name", "_pins", "_wire", "options", "spec", "uses_ids")

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        enabled = [f for f in spec.fields.values() if f.enabled]
        self._by_key: dict[str, FieldSpec] = {f.key: f for f in enabled}
        self._by_name: dict[str, FieldSpec] = {f.name: f for f in enabled}
        self._by_id: dict[str, FieldSpec] = {f.id: f for f in enabled if f.id}
        self._wire: dict[str, str] = {f.key: f.id or f.name for f in enabled}
        self._pins: dict[str, str] = {f.name: f.id for f in enabled if f.id}
        #: Whether fields are pinned: requests key fields by ID, and answers come by ID.
        self.uses_ids = spec.uses_ids
        #: pyairtable's options for every read and write of the table (``use_field_ids``).
        self.options: dict[str, Any] = {"use_field_ids": True} if self.uses_ids else {}

    def __repr__(self) -> str:
        return f"Codec({self.spec.name!r}, pinned={self.uses_ids})"

    # -- configured names ---------------------------------------------------------------

    def named(self, name: str) -> FieldSpec | None:
        """The enabled field the schema calls ``name``, or ``None``."""
        return self._by_name.get(name)

    def names(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A dict keyed by logical key, keyed by configured name; fields this base does not
        have (unknown or ``enabled = false``) are dropped.  For records made locally (the
        embedded base, test data), never for a write: :meth:`encode` checks and keys those."""
        by_key = self._by_key
        return {by_key[k].name: v for k, v in values.items() if k in by_key}

    def keys(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A ``fields`` dict keyed by configured name, keyed by logical key; names the schema
        does not know are dropped."""
        by_name = self._by_name
        return {by_name[n].key: v for n, v in fields.items() if n in by_name}

    # -- the wire ---------------------------------------------------------------------------

    def ref(self, name: str) -> str:
        """How a request names the field configured as ``name`` (sorts, field lists, merge
        keys): its pinned ID, else ``name``."""
        spec = self._by_name.get(name)
        return spec.id if spec is not None and spec.id else name

    def wire(self, key: str) -> str:
        """How a request names the enabled field with logical key ``key``."""
        return self._wire[key]

    def encode(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A write's values, keyed by logical key, keyed for the wire: one map, checked in the
        same pass.  Refuses, before any request and listing every problem in one
        :class:`~jobtrack_airtable.errors.SchemaViolationError`, an unknown key (an
        Airtable name used as a key included: it would write another field, the natural
        key's too), a computed field, and a value Airtable would reject (a select value
        outside the options, a non-number for a number field, a non-string or an oversized
        string for a text field).  ``None`` clears a field and is always allowed.  A field
        the base has disabled (``enabled = false``) is dropped, as everywhere."""
        out: dict[str, Any] = {}
        unknown: list[str] = []
        problems: list[str] = []
        by_key, wire = self._by_key, self._wire
        for key, value in values.items():
            spec = by_key.get(key)
            if spec is None:
                # A field this base disabled is dropped, as everywhere; one it never had is
                # refused, never passed through.
                if key not in self.spec.fields:
                    unknown.append(self._unknown_key(key))
                continue
            problem = _problem(spec, value)
            if problem:
                problems.append(problem)
            else:
                out[wire[key]] = value
        if unknown or problems:
            raise SchemaViolationError(self.spec.name, unknown + problems)
        return out

    def check(self, values: Mapping[str, Any]) -> None:
        """Refuse what :meth:`encode` would refuse, without keying anything (a plan's
        values, all checked before its first write)."""
        self.encode(values)

    def check_names(self, fields: Mapping[str, Any]) -> None:
        """:meth:`check` for a ``fields`` dict keyed by configured name."""
        problems: list[str] = []
        for name, value in fields.items():
            spec = self._by_name.get(name)
            problem = f"unknown field {show(name)}" if spec is None else _problem(spec, value)
            if problem:
                problems.append(problem)
        if problems:
            raise SchemaViolationError(self.spec.name, problems)

    def formula(self, formula: str, current: Mapping[str, str]) -> str:
        """``formula`` (built from configured names) for the wire: formulas name fields, never
        IDs, so each reference to a pinned field the base renamed (``current``: {ID: its
        name now}, as learnt by :mod:`.renames`) becomes its current name.  Unchanged when
        nothing is renamed (the steady state costs one lookup)."""
        if not current or not self._pins:
            return formula
        mapping = {n: current[i] for n, i in self._pins.items() if i in current}
        return rewrite_refs(formula, mapping) if mapping else formula

    def decode(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A ``fields`` dict from the wire keyed by configured name, whatever the field is
        called in the base today (pinned tables answer by ID; unknown IDs stay as they are)."""
        by_id = self._by_id
        if not by_id:
            return dict(fields)
        return {(by_id[k].name if k in by_id else k): v for k, v in fields.items()}

    def decode_record(self, record: RecordDict) -> RecordDict:
        """A record from the wire with its fields keyed by configured name."""
        if not self._by_id:
            return record
        decoded: RecordDict = {**record, "fields": self.decode(record.get("fields", {}))}
        return decoded

    def _unknown_key(self, key: str) -> str:
        named = self._by_name.get(key)
        hint = f" (an Airtable name; the logical key is {named.key!r})" if named else ""
        return f"unknown field {show(key)}{hint}"


def _problem(spec: FieldSpec, value: Any) -> str | None:
    if spec.computed:
        return f"field {spec.name!r} is computed ({spec.type}) and cannot be written"
    if value is None:
        return None
    return value_problem(spec, value)


# Specs are frozen: a codec per spec object, built on first use.  Keyed by identity (a spec
# holds dicts, so it does not hash) and holding the spec, so an identity is never reused
# while its entry lives.
_CODECS: dict[int, tuple[TableSpec, Codec]] = {}
_CODECS_LOCK = threading.Lock()
_MAX_CODECS = 256


def codec_for(spec: TableSpec) -> Codec:
    """The codec of ``spec`` (built once per spec object)."""
    hit = _CODECS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    codec = Codec(spec)
    with _CODECS_LOCK:
        if len(_CODECS) >= _MAX_CODECS:
            _CODECS.clear()  # tests load hundreds of schemas; a worker, one
        _CODECS[id(spec)] = (spec, codec)
    return codec
