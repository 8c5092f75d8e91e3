"""What each request counts as, for the monthly usage counters kept in the limiter's store.

Airtable bills API calls per workspace and month (SPEC §2.9: 1,000 on Free, 100,000 on Team),
so every request the library sends is counted, per base and UTC calendar month, in the same
shared store as the rate limit (the SQLite file on one machine, Redis for a fleet).  The
:class:`~jobtrack_airtable.transport.adapter.AirtableAdapter` counts each request under:

* ``worker_reads`` / ``worker_writes`` -- or ``sync_reads`` / ``sync_writes`` inside
  :func:`counted_as` ``("sync")`` (any caller name works: ``admin_reads``...);
* ``retries`` -- the request is a retry (attempt 2 or later of the same request);
* ``rate_limited`` -- it was answered 429 ``RATE_LIMIT_REACHED``;
* ``quota_exhausted`` -- it was answered 429 ``PUBLIC_API_BILLING_LIMIT_EXCEEDED`` (the month's
  quota is spent: not a rate limit, counted apart);
* ``failed`` -- no response came back (refused, dropped, timed out).

Reads are ``GET`` and ``POST .../listRecords``; everything else is a write.

>>> with counted_as("sync"):
...     usage_kinds("GET", "https://api.airtable.com/v0/appX/T", status=200)
('sync_reads',)
>>> usage_kinds("PATCH", "https://api.airtable.com/v0/appX/T", status=429)
('worker_writes', 'rate_limited')
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "COUNTER_KINDS",
    "counted_as",
    "month_of",
    "usage_kinds",
]

#: The counters every request may add to (caller-specific read/write names come on top).
COUNTER_KINDS = ("retries", "rate_limited", "quota_exhausted", "failed")

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("jobtrack_caller", default="worker")


def month_of(timestamp: float) -> str:
    """The UTC calendar month of a Unix ``timestamp``, as ``"YYYY-MM"``.

    >>> month_of(0.0)
    '1970-01'
    """
    return time.strftime("%Y-%m", time.gmtime(timestamp))


@contextmanager
def counted_as(caller: str) -> Iterator[None]:
    """Count the requests made inside the block under ``caller`` (``"sync"``...) instead of
    ``"worker"``.  Context-local: other threads and tasks are unaffected."""
    if not caller.isidentifier():
        raise ValueError(f"caller must be a plain name like 'sync', not {caller!r}")
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        _CALLER.reset(token)


def usage_kinds(
    method: str,
    url: str,
    *,
    status: int | None,
    retry: bool = False,
    quota_spent: bool = False,
) -> tuple[str, ...]:
    """The counters one request adds to: its caller's reads or writes, plus ``retries``,
    ``rate_limited`` (``status == 429``), ``quota_exhausted`` (a 429 whose type says the
    monthly quota is spent: ``quota_spent``) and ``failed`` (``status is None``)."""
    method = method.upper()
    path = url.split("?", 1)[0]
    op = "reads" if method == "GET" or path.endswith("/listRecords") else "writes"
    kinds = [f"{_CALLER.get()}_{op}"]
    if retry:
        kinds.append("retries")
    if status is None:
        kinds.append("failed")
    elif status == 429:
        kinds.append("quota_exhausted" if quota_spent else "rate_limited")
    return tuple(kinds)
