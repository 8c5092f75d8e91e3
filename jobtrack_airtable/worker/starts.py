"""Choosing the run ID a job start claims, so that simultaneous starts cost requests linear in
their number (issue 21).

A job's run ID is its start second, and uniqueness across hosts comes from the claim
(:meth:`~jobtrack_airtable.transport.repository.Repository.claim`: create, then read).
Two things keep K simultaneous starts from colliding again and again:

* **Reservation in the shared store.**  Processes sharing a limiter store (the machine's
  SQLite file, the fleet's Redis) take the second they are about to claim as a short lock
  there first (no request to Airtable): a second another process holds is skipped, so they
  never collide on Airtable at all (2 requests each).
* **Jump by rank.**  Starts that do not share a store may still meet.  The claim's read covers
  the :data:`WINDOW` seconds after the key too, so a loser knows how many rows are ahead of
  its own (its rank r) and which later seconds are taken: it moves its row to the r-th free
  second after.  Simultaneous losers have distinct ranks, so they land on distinct seconds,
  and a clock that jumped back over a busy minute skips every taken second in one move
  (a loser: 4 requests).

>>> next_free(BaseRunId("250930-141522"), 2, {"250930-141523"})
BaseRunId('250930-141525')
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from ..errors import LimiterUnavailableError
from ..run_ids import BaseRunId

__all__ = ["RESERVATION_TTL", "WINDOW", "ahead_of", "next_free", "reserve"]

#: Seconds after the claimed one that the claim's read also covers (one page of rows).
WINDOW = 90
#: How long a reservation keeps other processes of the store off a second: longer than a
#: start takes, even through a 429 penalty.
RESERVATION_TTL = 120.0
#: Seconds skipped at most looking for one no other process of the store holds.
MAX_RESERVATION_SKIPS = 600


def ahead_of(candidate: BaseRunId, count: int = WINDOW) -> list[str]:
    """The ``count`` run IDs after ``candidate``."""
    keys: list[str] = []
    current = candidate
    for _ in range(count):
        current = current.next_second()
        keys.append(str(current))
    return keys


def next_free(candidate: BaseRunId, rank: int, taken: Collection[str]) -> BaseRunId:
    """The ``rank``-th second after ``candidate`` that is not ``taken``."""
    current = candidate
    left = rank
    while left > 0:
        current = current.next_second()
        if str(current) not in taken:
            left -= 1
    return current


def reserve(limiter: Any, base_id: str, candidate: BaseRunId) -> BaseRunId:
    """``candidate``, or the first later second no other process sharing ``limiter``'s store
    has reserved; reserved for this process now.  A limiter without a store (rate limit 0)
    reserves nothing: the claim alone decides."""
    take = getattr(limiter, "try_lock", None)
    if take is None:
        return candidate
    token = uuid.uuid4().hex
    for _ in range(MAX_RESERVATION_SKIPS):
        try:
            if take([f"{base_id}:run-id:{candidate}"], token, RESERVATION_TTL):
                return candidate
        except LimiterUnavailableError:
            # Only a saving: the claim on Airtable decides either way.
            return candidate
        candidate = candidate.next_second()
    return candidate
