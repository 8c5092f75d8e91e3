"""Finding rows deleted from the base since the last refresh.

A last-modified filter sees every created or changed row, but never a deleted one: a deleted
row has no modified time left to filter on.  Two ways to find them, best first:

* **a webhook** (Airtable's webhooks API, polled for payloads by cursor: no public URL is
  needed): one webhook per base watching record removals only, so its payloads are exactly
  the deletions.  An unchanged base costs one ``GET …/payloads`` per refresh; 50 payloads
  (write requests, each deleting up to 10 rows) per request after that.  It expires 7 days
  after its creation or last refresh, so it is refreshed (1 request) once it has less than
  :data:`REFRESH_WITHIN` left.  A webhook that is gone (expired, deleted, a restarted local
  server) loses the deletions since the last poll: a new one is made and one key-only scan
  covers the gap.
* **a key-only scan**: every record ID of both tables, listed with only the Run ID field,
  compared with the mirror: ``⌈N/100⌉`` requests per table, the cost of a full read but a
  fraction of its bytes and no planning.  Used when webhooks are unavailable (the token lacks
  ``webhook:manage``, the base already has 10 webhooks, Airtable refuses): then at most
  every ``scan_interval``, and the mirror says so (``mirror status``); rows deleted since the
  last scan are still in the mirror until the next one.  A plan depending on such a row is
  refused by apply's re-read (the row vanished), never applied wrongly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pyairtable.models.webhook import Webhook

from ...errors import AirtableError, InvalidInputError
from ...timeutil import parse_airtable, to_airtable
from ...transport.recovery import classified
from ...transport.repository import Repository
from ..sync.model import TABLE_ORDER
from .store import MirrorFile

__all__ = [
    "DEFAULT_SCAN_INTERVAL",
    "REFRESH_WITHIN",
    "WEBHOOK_SPECIFICATION",
    "Deletions",
    "find_deletions",
    "start_watching",
]

#: Record removals only: every payload is a deletion, and nothing else costs a request.
WEBHOOK_SPECIFICATION: dict[str, Any] = {
    "options": {"filters": {"dataTypes": ["tableData"], "changeTypes": ["remove"]}}
}
#: A webhook with less than this left before it expires is refreshed (1 request).
REFRESH_WITHIN = timedelta(days=3)
#: How often the key-only scan runs when webhooks are unavailable.
DEFAULT_SCAN_INTERVAL = timedelta(hours=1)

T = TypeVar("T")


@dataclass
class Deletions:
    """What one refresh learnt of deleted rows."""

    ids: set[str] = field(default_factory=set)
    #: ``"webhook"`` or ``"scan"``: how deletions are found now.
    method: str = "webhook"
    #: Whether the mirror knows every deletion up to this refresh.
    complete: bool = True
    #: Why webhooks are not used (``None`` when they are).
    reason: str | None = None
    scanned: bool = False
    meta: dict[str, str | None] = field(default_factory=dict)


def _call(repo: Repository, fn: Callable[..., T], *args: Any, op: str, **kwargs: Any) -> T:
    # The connection's adapter retries each request; here the failure is only classified.
    with classified():
        return fn(*args, **kwargs)


def _ours(hook: Webhook) -> bool:
    filters = hook.specification.options.filters
    return bool(
        hook.is_hook_enabled
        and filters.data_types == ["tableData"]
        and filters.change_types == ["remove"]
        and filters.record_change_scope is None
    )


def _create(repo: Repository, now: datetime) -> tuple[dict[str, str | None], str | None]:
    """A webhook watching removals from now on: its state for the mirror's meta, or why none
    could be had.  One already watching exactly that (another admin's mirror, or ours whose
    creation's answer was lost) is shared -- each mirror keeps its own cursor -- so mirrors
    on several machines, and lost responses, do not use up the base's 10 webhooks."""
    base = repo.conn.api.base(repo.conn.base_id)
    try:
        hooks = _call(repo, base.webhooks, op="list webhooks")
        shared = [
            (h.expiration_time, h)
            for h in hooks
            if _ours(h)
            and h.expiration_time is not None
            and h.expiration_time - now > REFRESH_WITHIN
        ]
        if shared:
            expires, hook = max(shared, key=lambda pair: pair[0])
            return {
                "webhook_id": hook.id,
                "webhook_cursor": str(hook.cursor_for_next_payload),
                "webhook_expires": to_airtable(expires),
            }, None
        made = _call(repo, base.add_webhook, None, WEBHOOK_SPECIFICATION, op="create webhook")
    except AirtableError as exc:
        return {"webhook_id": None}, f"webhooks unavailable ({exc})"
    until = made.expiration_time
    return {
        "webhook_id": made.id,
        "webhook_cursor": "1",
        "webhook_expires": to_airtable(until) if until else None,
    }, None


def start_watching(repo: Repository, mirror: MirrorFile, now: datetime) -> Deletions:
    """Before a full read: make sure a webhook watches from now on (deleting the mirror's
    old one, if any, is not worth a request: it expires on its own)."""
    state, reason = _create(repo, now)
    return Deletions(
        method="scan" if reason else "webhook",
        reason=reason,
        meta={**state, "deletions_reason": reason, "last_scan": to_airtable(now)},
    )


def _scan(repo: Repository, mirror: MirrorFile) -> set[str]:
    gone: set[str] = set()
    for table in TABLE_ORDER:
        key = repo.schema.table(table).key_name
        live = {r["id"] for r in repo.list_records(table, fields=[key])}
        gone |= mirror.ids(table) - live
    return gone


def _poll(repo: Repository, meta: Mapping[str, str], now: datetime) -> Deletions | None:
    """Payloads since the mirror's cursor; ``None`` when the webhook is gone."""
    base = repo.conn.api.base(repo.conn.base_id)
    url = f"{base.urls.webhooks}/{meta['webhook_id']}"
    cursor = int(meta.get("webhook_cursor") or 1)
    found = Deletions()
    try:
        while True:
            page = _call(
                repo,
                repo.conn.api.request,
                "GET",
                f"{url}/payloads",
                params={"cursor": cursor},
                op="read webhook payloads",
            )
            for payload in page.get("payloads") or []:
                for change in (payload.get("changedTablesById") or {}).values():
                    found.ids.update(change.get("destroyedRecordIds") or [])
            cursor = int(page.get("cursor") or cursor)
            if not (page.get("payloads") and page.get("mightHaveMore")):
                break
        expires = meta.get("webhook_expires")
        if expires is None or parse_airtable(expires) - now < REFRESH_WITHIN:
            answer = _call(
                repo, repo.conn.api.request, "POST", f"{url}/refresh", op="refresh webhook"
            )
            new = answer.get("expirationTime") if isinstance(answer, Mapping) else None
            found.meta["webhook_expires"] = new if isinstance(new, str) else None
    except AirtableError as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise
    found.meta["webhook_cursor"] = str(cursor)
    found.meta["deletions_reason"] = None
    return found


def find_deletions(
    repo: Repository, mirror: MirrorFile, now: datetime, scan_interval: timedelta
) -> Deletions:
    """The rows deleted since the last refresh (see the module docstring)."""
    if scan_interval <= timedelta(0):
        raise InvalidInputError(f"scan_interval must be positive, not {scan_interval!r}")
    meta = mirror.meta()
    if meta.get("webhook_id"):
        polled = _poll(repo, meta, now)
        if polled is not None:
            return polled
        # The webhook is gone, with the deletions since the last poll: watch again from now,
        # then one scan covers the gap.
        started = start_watching(repo, mirror, now)
        started.ids = _scan(repo, mirror)
        started.scanned = True
        return started
    last = meta.get("last_scan")
    if last is not None and now - parse_airtable(last) < scan_interval:
        return Deletions(method="scan", complete=False, reason=meta.get("deletions_reason"))
    # Time to scan; and to try the webhook again (a slot may have been freed).
    started = start_watching(repo, mirror, now)
    started.ids = _scan(repo, mirror)
    started.scanned = True
    return started
