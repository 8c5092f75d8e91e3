"""The local server's request log: exact per-method/path counts and the last N requests.

Tests assert request budgets (SPEC §4) with it.  Headers are never recorded, so the
``Authorization`` token cannot leak through the log.  Memory is bounded twice: at most
``maxlen`` entries and at most ``max_bytes`` of them (sizes estimated from the raw request);
a body larger than ``max_body_bytes`` is kept as a short placeholder.  Counts are exact
whatever the caps.

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
    ``maxlen`` requests in full (within ``max_bytes``)."""

    def __init__(
        self,
        maxlen: int = 1000,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        max_body_bytes: int = 1024 * 1024,
        max_paths: int = 10_000,
    ) -> None:
        self._lock = threading.Lock()
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self.max_body_bytes = max_body_bytes
        self.max_paths = max_paths
        self._entries: deque[tuple[LoggedRequest, int]] = deque()
        self._bytes = 0
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def start(
        self,
        method: str,
        path: str,
        decoded_path: str,
        query: dict[str, list[str]] | None = None,
        body: Any = None,
        *,
        size: int = 0,
    ) -> LoggedRequest:
        """Record an arriving request; the caller fills in ``status`` when it answers.

        ``size`` is the request's raw size in bytes (body, path and query), what the entry
        is charged against ``max_bytes``.
        """
        if size > self.max_body_bytes:
            body = f"<{size} bytes, not kept>"
            query = {}
            size = 256
        entry = LoggedRequest(method, path, query or {}, body, None, decoded_path)
        cost = size + len(path) + len(decoded_path) + 200
        with self._lock:
            self._entries.append((entry, cost))
            self._bytes += cost
            while self._entries and (
                len(self._entries) > self.maxlen or self._bytes > self.max_bytes
            ):
                _, dropped = self._entries.popleft()
                self._bytes -= dropped
            key = (method, path, decoded_path)
            if key not in self._counts and len(self._counts) >= self.max_paths:
                # Distinct paths are client-chosen: past the cap they share one counter.
                key = (method, "<other>", "<other>")
            self._counts[key] += 1
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
            return [e for e, _ in self._entries]

    @property
    def bytes(self) -> int:
        """The estimated size of the entries kept."""
        with self._lock:
            return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._counts.clear()
