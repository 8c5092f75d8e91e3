"""What the pinned tables and fields are called in the base *today* (issue 15 item 5).

With IDs pinned (``schema pin``), every request addresses tables and fields by ID, so a rename
in Airtable's UI breaks no read or write.  One thing still speaks names: ``filterByFormula``
(Airtable formulas reference fields as ``{Name}``).  So the formulas the library builds from
the configured names are rewritten, field reference by field reference (:func:`rewrite_refs`,
applied by the codec, :meth:`~.codec.Codec.formula`), to the names the base uses now, as far
as this process knows them; this module keeps what was learnt.

It learns them from every meta-API read it makes anyway (``sync`` and ``schema check`` read
the schema first), and the repository, when a formula is refused because it names a field
the base no longer knows, reads the schema once (1 request), learns the renames, warns, and
retries.  What was learnt holds for the whole process (every connection to the base), so a
rename costs one extra request per process, and the steady state none.

>>> rewrite_refs("AND({Run ID}='x', {Stream}=2)", {"Stream": "Worker Stream"})
"AND({Run ID}='x', {Worker Stream}=2)"
>>> rewrite_refs("{Run ID}='{Stream}'", {"Stream": "Worker Stream"})  # literals untouched
"{Run ID}='{Stream}'"
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import forks
from ..schema import Schema

__all__ = [
    "Rename",
    "current_names",
    "forget",
    "learn",
    "likely_table_renames",
    "rewrite_refs",
]

_lock = threading.Lock()


def _fresh_lock() -> None:
    global _lock
    _lock = threading.Lock()


forks.at_fork(_fresh_lock)
#: base ID → {table or field ID: the name the base gave it at the last meta read}.
_names: dict[str, dict[str, str]] = {}


@dataclass(frozen=True)
class Rename:
    """A pinned table or field whose name in the base differs from the configured one."""

    table_key: str
    field_key: str | None
    id: str
    configured: str
    current: str

    def __str__(self) -> str:
        what = "table" if self.field_key is None else "field"
        return f"{what} {self.configured!r} is now called {self.current!r}"


def renames_in(schema: Schema, meta: Mapping[str, Any]) -> list[Rename]:
    """Every pinned table and field that ``meta`` (the meta API's answer) names differently
    from ``schema``; pinned IDs absent from the base are not renames (``schema check`` says
    they are missing)."""
    out: list[Rename] = []
    tables = {t.get("id"): t for t in meta.get("tables", []) if isinstance(t, Mapping)}
    for table_key, spec in schema.tables.items():
        meta_table = tables.get(spec.id) if spec.id else None
        if meta_table is None:
            meta_table = next((t for t in tables.values() if t.get("name") == spec.name), None)
            if meta_table is None:
                continue
        name = str(meta_table.get("name"))
        if spec.id and name != spec.name:
            out.append(Rename(table_key, None, spec.id, spec.name, name))
        fields = {
            f.get("id"): str(f.get("name"))
            for f in meta_table.get("fields", [])
            if isinstance(f, Mapping)
        }
        for fspec in spec.enabled_fields():
            current = fields.get(fspec.id) if fspec.id else None
            if current is not None and current != fspec.name:
                out.append(Rename(table_key, fspec.key, fspec.id or "", fspec.name, current))
    return out


def likely_table_renames(schema: Schema, meta: Mapping[str, Any]) -> list[Rename]:
    """Configured tables found neither by ID nor by name, each paired with the one table of
    the base holding its fields (names and types, at least half of them) that no configured
    table claims: a table renamed in Airtable before ``schema pin`` recorded its ID.

    The advice for those is "fix the name, then pin", never ``schema init`` (which would
    create a second, empty table beside the renamed one).
    """
    tables = [t for t in meta.get("tables", []) if isinstance(t, Mapping)]
    claimed = {
        str(t.get("id"))
        for t in tables
        for spec in schema.tables.values()
        if t.get("name") == spec.name or (spec.id and t.get("id") == spec.id)
    }
    out: list[Rename] = []
    for table_key, spec in schema.tables.items():
        if any(t.get("name") == spec.name or (spec.id and t.get("id") == spec.id) for t in tables):
            continue
        wanted = {(f.name, f.type) for f in spec.enabled_fields()}
        candidates = []
        for t in tables:
            if str(t.get("id")) in claimed:
                continue
            have = {
                (str(f.get("name")), str(f.get("type")))
                for f in t.get("fields", [])
                if isinstance(f, Mapping)
            }
            if wanted and len(wanted & have) * 2 >= len(wanted):
                candidates.append(t)
        if len(candidates) == 1:
            found = candidates[0]
            out.append(
                Rename(table_key, None, str(found.get("id")), spec.name, str(found.get("name")))
            )
    return out


def learn(base_id: str, schema: Schema, meta: Mapping[str, Any]) -> list[Rename]:
    """Remember the current names of ``schema``'s pinned tables and fields in ``base_id``
    from a meta-API answer; returns the renames not known before (to warn about once)."""
    renames = renames_in(schema, meta)
    fresh = {r.id: r.current for r in renames}
    ids = {t.id for t in schema.tables.values() if t.id} | {
        f.id for t in schema.tables.values() for f in t.enabled_fields() if f.id
    }
    with _lock:
        known = _names.get(base_id, {})
        new = [r for r in renames if known.get(r.id) != r.current]
        # This schema's pinned items no longer renamed go back to their configured names;
        # what another schema of the same base pinned is left alone.
        _names[base_id] = {**{k: v for k, v in known.items() if k not in ids}, **fresh}
    return new


def current_names(base_id: str) -> dict[str, str]:
    """{ID: current name} of the renamed pinned tables and fields known for ``base_id``."""
    with _lock:
        return dict(_names.get(base_id, {}))


def forget(base_id: str | None = None) -> None:
    """Forget what was learnt (one base, or all): tests, and a schema file re-pinned."""
    with _lock:
        if base_id is None:
            _names.clear()
        else:
            _names.pop(base_id, None)


def rewrite_refs(formula: str, mapping: Mapping[str, str]) -> str:
    """``formula`` with every ``{field}`` reference named in ``mapping`` renamed; string
    literals (``'…'``, ``"…"``) are copied untouched."""
    out: list[str] = []
    i, n = 0, len(formula)
    while i < n:
        ch = formula[i]
        if ch in "'\"":
            j = i + 1
            while j < n and formula[j] != ch:
                j += 2 if formula[j] == "\\" else 1
            out.append(formula[i : j + 1])
            i = j + 1
        elif ch == "{":
            j = i + 1
            while j < n and formula[j] != "}":
                j += 2 if formula[j] == "\\" else 1
            name = formula[i + 1 : j].replace("\\}", "}")
            if name in mapping:
                out.append("{" + mapping[name].replace("}", "\\}") + "}")
            else:
                out.append(formula[i : j + 1])
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)
