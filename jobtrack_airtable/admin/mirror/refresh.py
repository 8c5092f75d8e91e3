"""Bringing the mirror up to date: changed rows by a last-modified filter, deleted rows from
:mod:`.deletions`, or everything at once (a full read).

Changed rows are listed with ``IS_AFTER(LAST_MODIFIED_TIME(), '<watermark - overlap>')``:
the watermark is the *server's* time (:meth:`Connection.server_now`, learnt from the ``Date``
headers) taken before the previous refresh's reads, and :data:`OVERLAP` covers that clock's
error (½ s + ½ round trip, whole-second ``Date`` headers) and a write committed just before
it became visible to a listing.  Rows changed in the overlap are read twice; none is missed.

A full read happens on the first refresh, on ``full=True``, and whenever the layout of the
tracking tables changed since the last refresh (a field renamed, added, retyped; the
configured schema changed): rows do not change their last-modified time when a field is
renamed, yet what they decode to does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from ...schema import Schema
from ...timeutil import parse_airtable, to_airtable, utcnow
from ...transport.repository import Repository
from ..sync.model import TABLE_ORDER, TableKey
from .deletions import DEFAULT_SCAN_INTERVAL, Deletions, find_deletions, start_watching
from .store import MirrorFile

__all__ = ["OVERLAP", "RefreshResult", "changed_since", "layout_digest", "refresh"]

#: Safety overlap of the last-modified filter (see the module docstring).
OVERLAP = timedelta(seconds=60)


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did."""

    kind: Literal["full", "incremental"]
    #: Why it was a full read (``None`` for an incremental one).
    why_full: str | None
    changed: dict[TableKey, int]
    deleted: int
    #: How deletions are found: ``"webhook"`` or ``"scan"``.
    deletions: str
    #: Whether the mirror now knows every deletion (``False`` between scans).
    complete: bool
    #: One line when the mirror file was started afresh (missing, corrupt, ...).
    notice: str | None


def changed_since(moment: datetime) -> str:
    """The filter of rows modified after ``moment`` (server time).

    >>> from datetime import UTC
    >>> changed_since(datetime(2025, 10, 1, 12, tzinfo=UTC))
    "IS_AFTER(LAST_MODIFIED_TIME(), '2025-10-01T12:00:00.000Z')"
    """
    return f"IS_AFTER(LAST_MODIFIED_TIME(), '{to_airtable(moment)}')"


def layout_digest(schema: Schema, meta: Mapping[str, Any]) -> str:
    """What the mirror's rows depend on besides their values: the configured schema and, of
    the base's two tracking tables, every field's ID, type and (unless the schema pins field
    IDs, so that a rename changes nothing) name."""
    parts: list[Any] = [schema.model_dump(mode="json")]
    tables = {t.get("id"): t for t in meta.get("tables", []) if isinstance(t, Mapping)}
    by_name = {t.get("name"): t for t in tables.values()}
    for key in TABLE_ORDER:
        spec = schema.table(key)
        table = tables.get(spec.id) if spec.id else by_name.get(spec.name)
        fields = table.get("fields", []) if table else []
        parts.append(
            [
                (f.get("id"), f.get("type"), None if spec.uses_ids else f.get("name"))
                for f in fields
                if isinstance(f, Mapping)
            ]
        )
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def refresh(
    repo: Repository,
    mirror: MirrorFile,
    meta: Mapping[str, Any],
    *,
    full: bool = False,
    scan_interval: timedelta = DEFAULT_SCAN_INTERVAL,
    overlap: timedelta = OVERLAP,
) -> RefreshResult:
    """Bring ``mirror`` up to date with the base (``meta``: its schema, just read)."""
    with mirror.locked():
        state = mirror.meta()
        digest = layout_digest(repo.schema, meta)
        server_now = getattr(repo.conn, "server_now", None)
        started = server_now() if callable(server_now) else utcnow()
        why: str | None = None
        if full:
            why = "a full read was asked for"
        elif "watermark" not in state:
            why = "the mirror is new"
        elif state.get("layout_digest") != digest:
            why = "the tables' fields or the configured schema changed"
        if why is not None:
            deletions = start_watching(repo, mirror, started)
            fresh = {t: repo.list_records(t) for t in TABLE_ORDER}
        else:
            deletions = find_deletions(repo, mirror, started, scan_interval)
            since = parse_airtable(state["watermark"]) - overlap
            fresh = {t: repo.list_records(t, formula=changed_since(since)) for t in TABLE_ORDER}
        stamp = to_airtable(started)
        mirror.db.execute("BEGIN IMMEDIATE")
        try:
            if why is not None:
                mirror.clear()
            deleted = mirror.delete(deletions.ids)
            changed = {
                t: mirror.upsert(t, fresh[t], repo.schema.table(t).key_name, stamp)
                for t in TABLE_ORDER
            }
            mirror.set_meta(_state(deletions, digest, stamp, why is not None))
            mirror.log_refresh(
                stamp,
                "full" if why else "incremental",
                sum(changed.values()),
                deleted,
                deletions.method,
            )
            mirror.db.execute("COMMIT")
        except BaseException:
            mirror.db.execute("ROLLBACK")
            raise
    notice, mirror.notice = mirror.notice, None  # said once
    return RefreshResult(
        kind="full" if why else "incremental",
        why_full=why,
        changed=changed,
        deleted=deleted,
        deletions=deletions.method,
        complete=deletions.complete,
        notice=notice,
    )


def _state(deletions: Deletions, digest: str, stamp: str, full: bool) -> dict[str, str | None]:
    out: dict[str, str | None] = {
        "watermark": stamp,
        "last_refresh": stamp,
        "layout_digest": digest,
        "deletions": deletions.method,
        **deletions.meta,
    }
    if full:
        out["last_full"] = stamp
    if deletions.scanned or full:
        out["last_scan"] = stamp
    return out
