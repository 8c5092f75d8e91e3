"""Airtable's webhooks API, emulated: create, list, refresh, delete, and payloads by cursor.

A client polls ``GET /v0/bases/{base}/webhooks/{id}/payloads?cursor=N`` for what changed in
the base since its cursor; no public URL is needed (a ``notificationUrl`` is accepted and
stored, but this server never calls it: pings are Airtable's, the payloads are the contract).

As Airtable documents it (and pyairtable's ``pyairtable.models.webhook`` parses it):

* a webhook watches one base through its ``specification`` (``options.filters``:
  ``dataTypes`` must include ``tableData`` for records; ``recordChangeScope`` one table ID;
  ``changeTypes`` any of ``add``/``remove``/``update``; ``options.includes``:
  ``includeCellValuesInFieldIds`` and ``includePreviousCellValues``);
* every committed write that touches what it watches becomes one payload (one transaction):
  ``timestamp``, ``baseTransactionNumber``, ``actionMetadata``, ``payloadFormat: "v0"`` and
  ``changedTablesById`` with ``createdRecordsById``, ``changedRecordsById`` (``current``,
  ``previous``, ``unchanged`` cell values by field ID) and ``destroyedRecordIds``;
* payloads are numbered from 1 per webhook; a listing returns at most 50 from ``cursor``
  with the next ``cursor`` and ``mightHaveMore``; payloads older than 7 days are dropped;
* a webhook expires 7 days after its creation or its last ``refresh``; an expired webhook is
  gone (404, no longer listed, no longer counted); at most 10 per base.

It knows nothing of any schema but the base's own tables (the server stays stand-alone), and
lives in memory: a restarted server has no webhooks, which a client sees as a 404, exactly
as it would see an expired one.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from werkzeug.datastructures import MultiDict

from ..timeutil import to_airtable
from . import errors as E
from .storage import CommittedChange, Store, TableDef, new_id
from .users import LOCAL_USER

__all__ = ["LIFETIME", "MAX_PAYLOADS_PER_PAGE", "MAX_WEBHOOKS_PER_BASE", "Webhooks"]

LIFETIME = timedelta(days=7)
MAX_WEBHOOKS_PER_BASE = 10
MAX_PAYLOADS_PER_PAGE = 50
_PAYLOAD_RETENTION = timedelta(days=7)
_CHANGE_TYPES = frozenset({"add", "remove", "update"})
_DATA_TYPES = frozenset({"tableData", "tableFields", "tableMetadata"})
_ACTION = {
    "source": "publicApi",
    "sourceMetadata": {"user": {**LOCAL_USER, "permissionLevel": "create"}},
}


@dataclass
class _Hook:
    id: str
    base_id: str
    specification: dict[str, Any]
    notification_url: str | None
    expires: datetime
    scope: str | None
    change_types: frozenset[str]
    cell_fields: frozenset[str] | None  # None: none; the field IDs whose values to include
    all_cells: bool
    previous: bool
    #: (cursor, payload), oldest first; the next payload gets ``next_cursor``.
    payloads: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    next_cursor: int = 1

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "client",
            "isHookEnabled": True,
            "notificationUrl": self.notification_url,
            "areNotificationsEnabled": self.notification_url is not None,
            "cursorForNextPayload": self.next_cursor,
            "lastSuccessfulNotificationTime": None,
            "lastNotificationResult": None,
            "expirationTime": to_airtable(self.expires),
            "specification": self.specification,
        }


class Webhooks:
    """Every webhook of a :class:`~.storage.Store`'s bases; fed by the store's commits."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._hooks: dict[str, _Hook] = {}
        self._transactions: dict[str, int] = {}
        store.listeners.append(self._on_commit)

    # -- HTTP -------------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        base_id: str,
        hook_id: str | None,
        action: str | None,
        args: MultiDict[str, str],
        body: Callable[[], Any],
    ) -> dict[str, Any]:
        """Answer one request under ``/v0/bases/{base}/webhooks`` (the route's parts)."""
        if hook_id is None:
            return self.create(base_id, body()) if method == "POST" else self.listing(base_id)
        hook = self._live(base_id, hook_id)
        if action is None and method == "DELETE":
            with self._lock:
                self._hooks.pop(hook.id, None)
            return {}
        if action == "refresh" and method == "POST":
            hook.expires = self.clock() + LIFETIME
            return {"expirationTime": to_airtable(hook.expires)}
        if action == "payloads" and method == "GET":
            return self.payloads(hook, args)
        if action == "enableNotifications" and method == "POST":
            return {}
        raise E.not_found()

    def create(self, base_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise E.invalid_request("the body must be an object")
        unknown = set(body) - {"notificationUrl", "specification"}
        if unknown:
            raise E.invalid_request(f"unknown parameter(s) {', '.join(sorted(unknown))}")
        url = body.get("notificationUrl")
        if url is not None and not isinstance(url, str):
            raise E.invalid_request("notificationUrl must be a string or null")
        spec = body.get("specification")
        hook = self._parse(base_id, spec, url)
        with self._lock:
            self._expire()
            if sum(h.base_id == base_id for h in self._hooks.values()) >= MAX_WEBHOOKS_PER_BASE:
                raise E.ApiError(
                    422,
                    "TOO_MANY_WEBHOOKS",
                    f"A base may have at most {MAX_WEBHOOKS_PER_BASE} webhooks",
                )
            self._hooks[hook.id] = hook
        secret = base64.b64encode(secrets.token_bytes(32)).decode()
        return {
            "id": hook.id,
            "macSecretBase64": secret,
            "expirationTime": to_airtable(hook.expires),
        }

    def listing(self, base_id: str) -> dict[str, Any]:
        with self._lock:
            self._expire()
            hooks = [h.to_api() for h in self._hooks.values() if h.base_id == base_id]
        return {"webhooks": hooks}

    def payloads(self, hook: _Hook, args: MultiDict[str, str]) -> dict[str, Any]:
        cursor = _positive(args.get("cursor"), "cursor", 1)
        limit = min(_positive(args.get("limit"), "limit", MAX_PAYLOADS_PER_PAGE), 50)
        with self._lock:
            self._prune(hook)
            found = [(c, p) for c, p in hook.payloads if c >= cursor][:limit]
            after = found[-1][0] + 1 if found else hook.next_cursor
        return {
            "payloads": [p for _, p in found],
            "cursor": after,
            "mightHaveMore": after < hook.next_cursor,
            "payloadFormat": "v0",
        }

    # -- bookkeeping ------------------------------------------------------------------------

    def _live(self, base_id: str, hook_id: str) -> _Hook:
        with self._lock:
            self._expire()
            hook = self._hooks.get(hook_id)
        if hook is None or hook.base_id != base_id:
            raise E.not_found()
        return hook

    def _expire(self) -> None:
        now = self.clock()
        for hook_id in [h.id for h in self._hooks.values() if h.expires <= now]:
            del self._hooks[hook_id]

    def _prune(self, hook: _Hook) -> None:
        oldest = to_airtable(self.clock() - _PAYLOAD_RETENTION)
        hook.payloads = [(c, p) for c, p in hook.payloads if p["timestamp"] >= oldest]

    def _parse(self, base_id: str, spec: Any, url: str | None) -> _Hook:
        options = spec.get("options") if isinstance(spec, Mapping) else None
        filters = options.get("filters") if isinstance(options, Mapping) else None
        if not isinstance(filters, Mapping):
            raise E.ApiError(
                422, "INVALID_WEBHOOK_SPECIFICATION", "specification.options.filters is required"
            )
        data_types = filters.get("dataTypes")
        if not isinstance(data_types, list) or not data_types or not set(data_types) <= _DATA_TYPES:
            raise E.ApiError(
                422,
                "INVALID_WEBHOOK_SPECIFICATION",
                f"filters.dataTypes must be a non-empty subset of {sorted(_DATA_TYPES)}",
            )
        change_types = filters.get("changeTypes") or sorted(_CHANGE_TYPES)
        if not isinstance(change_types, list) or not set(change_types) <= _CHANGE_TYPES:
            raise E.ApiError(
                422,
                "INVALID_WEBHOOK_SPECIFICATION",
                f"filters.changeTypes must be a subset of {sorted(_CHANGE_TYPES)}",
            )
        scope = filters.get("recordChangeScope")
        if scope is not None:
            tables = {t.id for t in self.store.tables(base_id)}
            if scope not in tables:
                raise E.ApiError(
                    422,
                    "INVALID_WEBHOOK_SPECIFICATION",
                    f"recordChangeScope {scope!r} is not a table of this base",
                )
        includes = options.get("includes") if isinstance(options, Mapping) else None
        includes = includes if isinstance(includes, Mapping) else {}
        cells = includes.get("includeCellValuesInFieldIds")
        return _Hook(
            id=new_id("ach"),
            base_id=base_id,
            specification=dict(spec),
            notification_url=url,
            expires=self.clock() + LIFETIME,
            scope=scope,
            # Only record changes are emulated: a hook watching fields or metadata only
            # gets no payloads here.
            change_types=frozenset(change_types) if "tableData" in data_types else frozenset(),
            cell_fields=frozenset(cells) if isinstance(cells, list) else None,
            all_cells=cells == "all",
            previous=bool(includes.get("includePreviousCellValues")),
        )

    # -- payloads ---------------------------------------------------------------------------

    def _on_commit(self, base_id: str, changes: list[CommittedChange]) -> None:
        """Called by the store after every committed write: one payload per watching hook."""
        with self._lock:
            hooks = [h for h in self._hooks.values() if h.base_id == base_id and h.change_types]
            if not hooks:
                return
            number = self._transactions.get(base_id, 0) + 1
            self._transactions[base_id] = number
            stamp = to_airtable(self.store.clock())
            for hook in hooks:
                tables = _tables_changed(hook, changes)
                if not tables:
                    continue
                payload = {
                    "timestamp": stamp,
                    "baseTransactionNumber": number,
                    "actionMetadata": _ACTION,
                    "payloadFormat": "v0",
                    "changedTablesById": tables,
                }
                hook.payloads.append((hook.next_cursor, payload))
                hook.next_cursor += 1


def _cells(
    table: TableDef, values: Mapping[str, Any], wanted: Callable[[str], bool]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in table.fields:
        if f.name in values and wanted(f.id):
            out[f.id] = values[f.name]
    return out


def _tables_changed(hook: _Hook, changes: Sequence[CommittedChange]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    listed = (lambda fid: True) if hook.all_cells else (lambda fid: fid in (hook.cell_fields or ()))
    for table, record_id, old, new in changes:
        if hook.scope is not None and table.id != hook.scope:
            continue
        if old is None and new is not None:
            if "add" not in hook.change_types:
                continue
            entry = out.setdefault(table.id, {})
            entry.setdefault("createdRecordsById", {})[record_id] = {
                "createdTime": new.created_time,
                "cellValuesByFieldId": _cells(table, new.fields, lambda fid: True),
            }
        elif new is None and old is not None:
            if "remove" not in hook.change_types:
                continue
            out.setdefault(table.id, {}).setdefault("destroyedRecordIds", []).append(record_id)
        elif old is not None and new is not None:
            if "update" not in hook.change_types:
                continue
            names = {
                n
                for n in set(old.fields) | set(new.fields)
                if old.fields.get(n) != new.fields.get(n)
            }
            if not names:
                continue
            changed = {f.id for f in table.fields if f.name in names}
            current = {f.id: new.fields.get(f.name) for f in table.fields if f.id in changed}
            record: dict[str, Any] = {"current": {"cellValuesByFieldId": current}}
            if hook.previous:
                record["previous"] = {
                    "cellValuesByFieldId": {
                        f.id: old.fields.get(f.name) for f in table.fields if f.id in changed
                    }
                }
            unchanged = _cells(
                table,
                new.fields,
                lambda fid, c=changed: fid not in c and listed(fid),  # type: ignore[misc]
            )
            if unchanged:
                record["unchanged"] = {"cellValuesByFieldId": unchanged}
            out.setdefault(table.id, {}).setdefault("changedRecordsById", {})[record_id] = record
    return out


def _positive(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise E.invalid_request(f"{name} must be a positive integer, not {value!r}")
    return number
