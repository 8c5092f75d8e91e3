"""The local server's request log: exact per-method/path counts and the last N requests.

Tests assert request budgets (SPEC §4) with it.  Headers are never recorded, so the
``Authorization`` token cannot leak through the log.

>>> log = RequestLog(maxlen=2)
>>> _ = log.start("GET", "/v0/appX/Job%20Tracking", "/v0/appX/Job Tracking", {}, None)
>>> log.count(method="GET", path="Job Tracking"), log.count(path="Job%20Tracking")
(1, 1)
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any


@dataclass
class LoggedRequest:
    """One request as received: method, raw path, query (lists of values) and parsed body.

    ``status`` is the HTTP status sent, ``None`` while in flight or when the connection was
    dropped without a response; ``fault`` names the injected fault, if any.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int | None = None
    decoded_path: str = ""
    fault: str | None = None


class RequestLog:
    """Thread-safe counts of every request since the last :meth:`clear`, plus the last
    ``maxlen`` requests in full."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LoggedRequest] = deque(maxlen=maxlen)
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def start(
        self,
        method: str,
        path: str,
        decoded_path: str,
        query: dict[str, list[str]],
        body: Any,
    ) -> LoggedRequest:
        """Record an arriving request; the caller fills in ``status`` when it answers."""
        entry = LoggedRequest(method, path, query, body, None, decoded_path)
        with self._lock:
            self._entries.append(entry)
            self._counts[(method, path, decoded_path)] += 1
        return entry

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests since the last clear, optionally only this method (case-insensitive) and
        with ``path`` a substring of the raw (``Job%20Tracking``) or decoded path."""
        with self._lock:
            items = list(self._counts.items())
        return sum(
            n
            for (m, raw, decoded), n in items
            if (method is None or m == method.upper())
            and (path is None or path in raw or path in decoded)
        )

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    @property
    def counts(self) -> dict[tuple[str, str], int]:
        """``{(method, raw path): n}`` since the last clear."""
        out: dict[tuple[str, str], int] = {}
        with self._lock:
            for (m, raw, _), n in self._counts.items():
                out[(m, raw)] = out.get((m, raw), 0) + n
        return out

    @property
    def entries(self) -> list[LoggedRequest]:
        """The last ``maxlen`` requests, oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counts.clear()
