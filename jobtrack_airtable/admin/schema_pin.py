"""``schema pin``: record the base's table and field IDs in the schema file (issue 15 item 5).

Reads the base's schema through the meta API (1 request, pyairtable's ``Base.schema()``),
matches every configured table and enabled field -- by its already-pinned ID, else by its
current name -- and writes ``id = "tbl…"`` / ``id = "fld…"`` into the file with ``tomlkit``,
so the admin's comments, order and layout stay as they were.  From then on the library
addresses them by ID and a rename in Airtable's UI breaks nothing (see :mod:`.renames`).

A pinned item the base renamed keeps its configured name in the file: the code never needs
it, and the admin decides when to catch up.  Fields the base lacks are left unpinned and
listed; a disabled field is never pinned.

>>> result = pin_schema_file(path, meta)                        # doctest: +SKIP
>>> result.pinned                                                # doctest: +SKIP
[('jobs', None, 'tbl…'), ('jobs', 'run_id', 'fld…'), …]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from ..errors import ConfigError
from ..schema import Schema, default_schema_path, load_schema

__all__ = ["PinResult", "pin_schema_file", "refuse_default_schema"]


@dataclass
class PinResult:
    """What :func:`pin_schema_file` did.  Items are ``(table_key, field_key or None, id)``."""

    path: Path
    pinned: list[tuple[str, str | None, str]] = field(default_factory=list)
    already: list[tuple[str, str | None, str]] = field(default_factory=list)
    missing: list[tuple[str, str | None, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.pinned)

    def to_json(self) -> dict[str, Any]:
        def rows(items: list[tuple[str, str | None, str]]) -> list[dict[str, Any]]:
            return [{"table": t, "field": f, "id": i} for t, f, i in items]

        return {
            "format_version": 1,
            "schema_file": str(self.path),
            "pinned": rows(self.pinned),
            "already_pinned": rows(self.already),
            "missing": [{"table": t, "field": f, "name": n} for t, f, n in self.missing],
        }


def refuse_default_schema(path: Path | None) -> Path:
    """The schema file to pin, or :class:`ConfigError` when it is the packaged default (which
    an upgrade overwrites, and which every base shares)."""
    if path is None or path.resolve() == default_schema_path().resolve():
        raise ConfigError(
            "schema pin writes the base's IDs into the schema file, and this is the packaged "
            f"default ({default_schema_path()}); copy it, point JOBTRACK_SCHEMA_FILE at the "
            "copy (or pass --schema-file PATH), and run schema pin again"
        )
    return path


def _match(
    items: list[Mapping[str, Any]], pinned: str | None, name: str
) -> Mapping[str, Any] | None:
    if pinned:
        by_id = next((i for i in items if i.get("id") == pinned), None)
        if by_id is not None:
            return by_id
    return next((i for i in items if i.get("name") == name), None)


def pin_schema_file(path: Path, meta: Mapping[str, Any]) -> PinResult:
    """Write into the schema file at ``path`` the IDs of its tables and enabled fields found
    in ``meta`` (the meta API's ``{"tables": [...]}``); comments and layout are kept.  The
    file is validated before (as a :class:`Schema`) and after writing."""
    schema: Schema = load_schema(path)
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except TOMLKitError as exc:  # pragma: no cover - load_schema refused it already
        raise ConfigError(f"schema file {str(path)!r} is not valid TOML: {exc}") from None
    result = PinResult(path=path)
    meta_tables = [t for t in meta.get("tables", []) if isinstance(t, Mapping)]
    for table_key, spec in schema.tables.items():
        table_doc: Any = doc["tables"][table_key]
        meta_table = _match(meta_tables, spec.id, spec.name)
        if meta_table is None:
            result.missing.append((table_key, None, spec.name))
            continue
        _pin(result, table_doc, table_key, None, spec.id, str(meta_table["id"]))
        meta_fields = [f for f in meta_table.get("fields", []) if isinstance(f, Mapping)]
        for fspec in spec.enabled_fields():
            meta_field = _match(meta_fields, fspec.id, fspec.name)
            if meta_field is None:
                result.missing.append((table_key, fspec.key, fspec.name))
                continue
            field_doc = table_doc["fields"][fspec.key]
            _pin(result, field_doc, table_key, fspec.key, fspec.id, str(meta_field["id"]))
    if result.changed:
        text = tomlkit.dumps(doc)
        Schema.model_validate(tomlkit.parse(text).unwrap())  # never write a file we can't load
        path.write_text(text, encoding="utf-8")
    return result


def _pin(
    result: PinResult,
    node: Any,
    table_key: str,
    field_key: str | None,
    have: str | None,
    found: str,
) -> None:
    item = (table_key, field_key, found)
    if have == found:
        result.already.append(item)
        return
    if "id" in node:
        node["id"] = found
    elif "name" in node and hasattr(node, "value") and hasattr(node.value, "_insert_after"):
        # Right after the name, where a reader looks for it (tomlkit keeps the comments).
        node.value._insert_after("name", "id", found)
    else:  # pragma: no cover - a tomlkit without _insert_after: at the table's end
        node["id"] = found
    result.pinned.append(item)
