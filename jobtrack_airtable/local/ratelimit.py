"""Airtable's rate limit (SPEC §2.1): N requests per sliding second per key, then a penalty.

A request over the limit is refused *and* starts a penalty during which every request for the
same key is refused, however slowly it arrives; the penalty is not extended by requests made
during it (Airtable: "wait 30 seconds before subsequent requests will succeed").

>>> limiter = RateLimiter(2, penalty_seconds=30.0, clock=iter([0.0, 0.1, 0.2, 5.0]).__next__)
>>> [limiter.allow("app1") for _ in range(4)]
[True, True, False, False]
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Sliding-window limiter: at most ``rate`` requests in any ``window`` seconds per key.

    ``rate=None`` disables it (every request is allowed).
    """

    def __init__(
        self,
        rate: int | None,
        *,
        penalty_seconds: float = 30.0,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate is not None and rate < 1:
            raise ValueError(f"rate must be >= 1 or None, got {rate!r}")
        self.rate = rate
        self.penalty_seconds = penalty_seconds
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}
        self._penalty_until: dict[str, float] = {}
        #: How many requests were refused, per key.
        self.refused: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        """Record a request for ``key``; ``False`` if it must be answered with 429."""
        if self.rate is None:
            return True
        now = self._clock()
        with self._lock:
            until = self._penalty_until.get(key)
            if until is not None:
                if now < until:
                    return self._refuse(key)
                del self._penalty_until[key]
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.rate:
                self._penalty_until[key] = now + self.penalty_seconds
                hits.clear()
                return self._refuse(key)
            hits.append(now)
            return True

    def _refuse(self, key: str) -> bool:
        self.refused[key] = self.refused.get(key, 0) + 1
        return False

    def in_penalty(self, key: str) -> bool:
        """Whether ``key`` is currently serving a penalty."""
        with self._lock:
            until = self._penalty_until.get(key)
            return until is not None and self._clock() < until

    def reset(self) -> None:
        """Forget every window and penalty (tests)."""
        with self._lock:
            self._hits.clear()
            self._penalty_until.clear()
            self.refused.clear()
