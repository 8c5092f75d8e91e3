"""The base's schema as the meta API gives it: one request, retried and classified like any
other.  It lives in the transport because the table layer needs it too (to learn what pinned
fields are called now), and the admin library's schema checks build on it."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequestError
from .client import Connection
from .recovery import classified
from .renames import learn

__all__ = ["fetch_meta"]


def fetch_meta(conn: Connection, *, learn_names: bool = True) -> dict[str, Any]:
    """The base's schema in the meta API's shape (``{"tables": [...]}``), one request (the one
    pyairtable's ``Base.schema()`` sends), retried and classified like every other request.
    ``learn_names``: tell :mod:`.renames` what the pinned fields are called now (off for a
    caller that learns them itself, to see what changed)."""
    base = conn.api.base(conn.base_id)
    with classified():
        meta = conn.api.get(base.urls.tables, params={"include": ["visibleFieldIds"]})
    # Not pyairtable's BaseSchema: its models cost ~50 ms of CPU per read of a 40-field base
    # (every sync plan, mirror refresh and schema check reads it), and all we use is the JSON.
    # The shape our readers rely on is checked here instead, so a bad answer is one clear error.
    _check_shape(meta)
    # Every meta read teaches the process what pinned fields are called today, so formulas
    # built later (sync's re-reads, the workers') use the current names at no extra cost.
    if learn_names:
        learn(conn.base_id, conn.schema, meta)
    return meta


def _check_shape(meta: Any) -> None:
    def refuse(what: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"the meta API answered with a schema this client cannot read: {what}", status=None
        )

    tables = meta.get("tables") if isinstance(meta, dict) else None
    if not isinstance(tables, list):
        raise refuse("no list of tables")
    for table in tables:
        if (
            not isinstance(table, dict)
            or not _named(table)
            or not isinstance(table.get("fields"), list)
        ):
            raise refuse(f"a table without an id, a name or fields: {str(table)[:200]!r}")
        for field in table["fields"]:
            if (
                not isinstance(field, dict)
                or not _named(field)
                or not isinstance(field.get("type"), str)
            ):
                raise refuse(f"a field without an id, a name or a type: {str(field)[:200]!r}")


def _named(item: dict[str, Any]) -> bool:
    return isinstance(item.get("id"), str) and isinstance(item.get("name"), str)
