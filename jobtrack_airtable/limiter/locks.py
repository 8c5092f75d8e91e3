"""Short per-row locks in the limiter's shared store: read-then-write of System Notes.

Airtable has no compare-and-swap, so appending a line means reading the row's notes and
writing them back with the line added; two writers doing that at once would erase one
another's line.  Every process writing to a base already shares one store (the machine's
SQLite file, or the fleet's Redis) for the rate limit, so the read and the write of a row's
notes are done under a lock of that row taken there: writers sharing the store never
interleave on one row.  Locks expire after ``ttl`` (a process killed while holding one
blocks nobody for long); a lock not obtained within ``wait`` is given up with a warning and
the write goes ahead unlocked (tracking never stops a job).  A limiter without a store
(``JOBTRACK_RATE_LIMIT=0``) has no locks.

>>> from jobtrack_airtable.limiter import NullLimiter
>>> with row_locks(NullLimiter(), ["appX:Job Tracking:recA"]):
...     pass
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["row_key", "row_locks"]

log = logging.getLogger(__name__)

#: Longest a lock is held: a notes read and write, retries included, take far less.
DEFAULT_TTL = 60.0
#: Longest a writer waits for a lock before writing unlocked (with a warning).
DEFAULT_WAIT = 30.0


@contextmanager
def row_locks(
    limiter: Any,
    keys: Sequence[str],
    *,
    ttl: float = DEFAULT_TTL,
    wait: float = DEFAULT_WAIT,
) -> Iterator[bool]:
    """Hold the locks of ``keys`` for the block; yields whether they were obtained."""
    take = getattr(limiter, "try_lock", None)
    wanted = sorted(set(keys))
    if take is None or not wanted:
        yield False
        return
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    while not take(wanted, token, ttl):
        if time.monotonic() >= deadline:
            log.warning(
                "could not lock %d row(s) for a notes write within %.0f s; writing unlocked",
                len(wanted),
                wait,
            )
            yield False
            return
        time.sleep(0.02 + random.random() * 0.03)  # jitter: no lock-step retries
    try:
        yield True
    finally:
        limiter.unlock(wanted, token)


def row_key(base_id: str, table: str, record_id: str) -> str:
    """The lock key of one row."""
    return f"{base_id}:{table}:{record_id}"
