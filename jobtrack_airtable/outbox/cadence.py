"""When pending client-run changes go out (issue 19): a cost knob, not a durability one.

The outbox holds every change durably, so the only reasons to write to Airtable are to make
the state *visible*: a run's open (``Running``) and its close must show promptly (within the
flush interval, never more than ``visible_within``), while increments in between are written
at the pace of the machine's monthly request budget: a token bucket shared by the machine's
processes through the outbox store, filled at ``budget / 30 days`` and debited by every
request the trackers send.  Increments go out only when a token is there beyond a reserve
of half an hour's budget, so a continuously busy worker spends at most its budget; opens
and closes go out whatever the balance (drawing on the reserve), and a negative balance
holds increments back until it recovers.

>>> c = Cadence(interval=5, budget=0, visible_within=60)
>>> c.due(urgent_since=100.0, lazy_since=None, now=103.0)
105.0
>>> c.due(urgent_since=None, lazy_since=100.0, now=103.0)      # no budget: every interval
105.0
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import OutboxUnavailableError
from .store import OutboxStore

log = logging.getLogger(__name__)

__all__ = ["MONTH", "Cadence"]

#: The month the budget is spread over (30 days), in seconds.
MONTH = 30 * 86_400.0


@dataclass
class Cadence:
    """``interval``: the flush interval (opens and closes wait at most this, capped at
    ``visible_within``); ``budget``: requests per month for the machine (0: increments go
    every interval, as opens and closes do); ``store``: where the bucket lives."""

    interval: float
    budget: int
    visible_within: float
    store: OutboxStore | None = None
    wall: Callable[[], float] = field(default=lambda: 0.0)

    @property
    def rate(self) -> float:
        """Requests per second the budget allows."""
        return self.budget / MONTH

    @property
    def burst(self) -> float:
        """Tokens the bucket can hold: one hour of the budget, so a quiet hour lets a later
        burst of increments out, never a day's worth at once."""
        return max(1.0, self.rate * 3600)

    @property
    def reserve(self) -> float:
        """Tokens increments leave in the bucket (half an hour of the budget): the opens and
        closes that follow them spend it, so they never overdraw the budget."""
        return self.rate * 1800

    @property
    def urgent_delay(self) -> float:
        return min(self.interval, self.visible_within)

    def due(self, *, urgent_since: float | None, lazy_since: float | None, now: float) -> float:
        """The time the next drain is due (``inf``: nothing pending)."""
        due = float("inf")
        if urgent_since is not None:
            due = urgent_since + self.urgent_delay
        if lazy_since is not None:
            earliest = lazy_since + self.interval
            balance = self._balance(now)
            if balance is not None:
                need = 1 + self.reserve
                if balance < need:
                    earliest = max(earliest, now + (need - balance) / self.rate)
            due = min(due, earliest)
        return due

    def _balance(self, now: float) -> float | None:
        """The bucket's balance (``None``: no budget, or the store cannot say)."""
        if not self.budget or self.store is None:
            return None
        try:
            return self.store.spend(0, rate=self.rate, burst=self.burst, at=now)
        except OutboxUnavailableError as exc:
            # The pace is a cost knob: with the shared bucket out of reach, write every
            # interval rather than stall (or kill the commit thread that asked).
            log.warning("request budget unknown (%s); writing every interval meanwhile", exc)
            return None

    def spend(self, requests: int, now: float) -> None:
        """Debit ``requests`` sent from the machine's bucket (skipped, with a warning, while
        the store cannot be reached: the requests were sent all the same)."""
        if self.budget and self.store is not None and requests:
            try:
                self.store.spend(requests, rate=self.rate, burst=self.burst, at=now)
            except OutboxUnavailableError as exc:
                log.warning("request budget not debited (%s)", exc)
