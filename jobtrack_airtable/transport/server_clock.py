"""The server's clock, learnt from the ``Date`` header of its responses (SPEC §2.10).

Workers' clocks may be off by hours, and staleness is judged across machines: a run is stale
when its ``Last Updated`` is older than a threshold *by the clock of whoever judges*.  If each
worker stamps rows with its own clock and ``sync`` judges with the admin's, a worker 3 h behind
looks dead right after its heartbeat and one 3 h ahead hides for 5 h.  Every Airtable response
carries the server's ``Date``, so every process can read the one clock nobody can skew: a
:class:`ServerClock` watches the responses of a ``requests`` session (a response hook) and
keeps the offset between the server's clock and the local one; :meth:`ServerClock.now` is the
local clock corrected by it.  Workers stamp ``Start Time`` / ``Last Updated`` / ``End Time``
with it and ``sync`` ages rows with it, so both sides speak server time.

Resolution: ``Date`` has whole seconds.  The server stamped the response somewhere between
our sending the request and receiving its headers, so one response bounds the offset to an
interval ``[Date - received, Date + 1 s - sent]``; the intervals of successive responses are
intersected, and the offset is the middle of what remains (within a second after one
response, tighter as more arrive).  An interval that does not meet the others (the local clock
was stepped) starts the estimate afresh.  Until the first response arrives
:meth:`ServerClock.now` is the local clock (no offset known yet).

>>> from datetime import UTC, datetime, timedelta
>>> ahead = lambda: datetime(2025, 10, 1, 15, 0, 0, tzinfo=UTC)   # a local clock 3 h fast
>>> clock = ServerClock(local=ahead)
>>> clock.offset is None, clock.now() == ahead()
(True, True)
>>> clock.learn("Wed, 01 Oct 2025 12:00:00 GMT", round_trip=timedelta(0))
>>> clock.now().isoformat(), clock.offset.total_seconds()
('2025-10-01T12:00:00.500000+00:00', -10799.5)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from .. import forks
from ..timeutil import utcnow

__all__ = ["ServerClock"]

_ONE_SECOND = timedelta(seconds=1)


class ServerClock:
    """The server's current time, as learnt from ``Date`` headers (see the module doc).

    ``local`` is the clock of this machine (injectable: tests run workers 3 h off).
    Thread-safe: a session's responses may arrive on several threads.
    """

    def __init__(self, local: Callable[[], datetime] = utcnow) -> None:
        self._local = local
        self._bounds: tuple[timedelta, timedelta] | None = None
        self._lock = threading.Lock()
        forks.register(self, ServerClock._fresh_lock)

    def _fresh_lock(self) -> None:
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ServerClock(offset={self.offset!r})"

    @property
    def offset(self) -> timedelta | None:
        """Server clock minus local clock, as learnt so far (None before any response)."""
        bounds = self._bounds
        return None if bounds is None else bounds[0] + (bounds[1] - bounds[0]) / 2

    def now(self) -> datetime:
        """The server's current time: the local clock plus the learnt offset (the local
        clock alone until a response has been seen)."""
        offset = self.offset
        local = self._local()
        return local if offset is None else local + offset

    def learn(self, date_header: str, *, round_trip: timedelta) -> None:
        """Take one sample: ``date_header`` is a response's ``Date``, received just now after
        ``round_trip`` since its request was sent.  Unparseable dates are ignored."""
        received = self._local()
        try:
            server = parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError):
            return
        if server.tzinfo is None:  # RFC 7231 dates are GMT; a naive parse means "-0000"
            return
        # The server's instant lies in [Date, Date + 1 s), somewhere during the round trip.
        low = server - received
        high = server + _ONE_SECOND - (received - max(round_trip, timedelta(0)))
        with self._lock:
            if self._bounds is not None:
                old_low, old_high = self._bounds
                met_low, met_high = max(low, old_low), min(high, old_high)
                if met_low <= met_high:
                    low, high = met_low, met_high
            self._bounds = (low, high)

    def observe(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        """A ``requests`` response hook: learn from the response's ``Date`` header."""
        date = response.headers.get("Date")
        if date:
            elapsed = response.elapsed if isinstance(response.elapsed, timedelta) else None
            self.learn(date, round_trip=elapsed or timedelta(0))

    def install(self, session: requests.Session) -> None:
        """Watch every response of ``session`` (idempotent)."""
        hooks = session.hooks.setdefault("response", [])
        if self.observe not in hooks:
            hooks.append(self.observe)
