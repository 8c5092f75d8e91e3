"""Record comments of the local server (Airtable's comments endpoints).

Comments live in memory, per record, newest first as Airtable lists them; ``@[usr…]``
mentions of the server's user come back in ``mentioned`` as Airtable's user-mentioned
objects.  They are not written to the base file (they do not survive a restart).

>>> comments = CommentStore(clock=lambda: datetime(2025, 1, 1, tzinfo=UTC))
>>> c = comments.create("recAAAAAAAAAAAAAA", "Hi @[usrLocalServer001]")
>>> sorted(c["mentioned"]), c["author"]["id"], c["lastUpdatedTime"]
(['usrLocalServer001'], 'usrLocalServer001', None)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..airtable import MAX_LONG_TEXT
from ..timeutil import to_airtable
from . import errors as E
from .storage import new_id
from .users import LOCAL_USER

_MENTION = re.compile(r"@\[(usr[A-Za-z0-9]{14})\]")


def _mentioned(text: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for user_id in _MENTION.findall(text):
        if user_id == LOCAL_USER["id"]:  # the only user this server knows
            found[user_id] = {
                "type": "user",
                "id": user_id,
                "displayName": LOCAL_USER["name"],
                "email": LOCAL_USER["email"],
            }
    return found


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise E.invalid_request("a comment needs a non-empty 'text'")
    if len(value) > MAX_LONG_TEXT:
        raise E.invalid_request(f"a comment is limited to {MAX_LONG_TEXT:,} characters")
    return value


class CommentStore:
    """Comments by record ID; thread-safe."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_record: dict[str, list[dict[str, Any]]] = {}

    def of(self, record_id: str) -> list[dict[str, Any]]:
        """The record's comments, newest first."""
        with self._lock:
            return [dict(c) for c in reversed(self._by_record.get(record_id, []))]

    def create(self, record_id: str, text: Any) -> dict[str, Any]:
        body = _text(text)
        comment = {
            "id": new_id("com"),
            "author": dict(LOCAL_USER),
            "text": body,
            "createdTime": to_airtable(self._clock()),
            "lastUpdatedTime": None,
            "mentioned": _mentioned(body),
        }
        with self._lock:
            self._by_record.setdefault(record_id, []).append(comment)
        return dict(comment)

    def update(self, record_id: str, comment_id: str, text: Any) -> dict[str, Any]:
        body = _text(text)
        with self._lock:
            comment = self._find(record_id, comment_id)
            comment.update(
                text=body,
                lastUpdatedTime=to_airtable(self._clock()),
                mentioned=_mentioned(body),
            )
            return dict(comment)

    def delete(self, record_id: str, comment_id: str) -> None:
        with self._lock:
            self._by_record[record_id].remove(self._find(record_id, comment_id))

    def drop(self, record_ids: Sequence[str]) -> None:
        """Forget the comments of deleted records."""
        with self._lock:
            for rid in record_ids:
                self._by_record.pop(rid, None)

    def _find(self, record_id: str, comment_id: str) -> dict[str, Any]:
        for comment in self._by_record.get(record_id, []):
            if comment["id"] == comment_id:
                return comment
        raise E.ApiError(404, "NOT_FOUND", f"Could not find comment {comment_id}")
