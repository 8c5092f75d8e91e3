"""Airtable's facts: the limits of its REST API the library works within (SPEC §2.1, §2.4,
§2.5), stated once.  Everything that batches, pages, truncates or paces reads them from here.

>>> MAX_RECORDS_PER_WRITE, MAX_PAGE_SIZE, MAX_LONG_TEXT
(10, 100, 100000)
>>> RATE_LIMIT, RATE_LIMIT_PENALTY
(5.0, 30.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Final, TypeVar

T = TypeVar("T")

__all__ = [
    "API_URL",
    "MAX_LONG_TEXT",
    "MAX_PAGE_SIZE",
    "MAX_RECORDS_PER_WRITE",
    "MAX_URL_LENGTH",
    "RATE_LIMIT",
    "RATE_LIMIT_PENALTY",
    "write_batches",
]

#: Where the REST API lives.
API_URL: Final = "https://api.airtable.com"

#: Records one create, update, upsert or delete request may carry.
MAX_RECORDS_PER_WRITE: Final = 10

#: Records one page of a listing holds at most.
MAX_PAGE_SIZE: Final = 100

#: Characters a long text field holds.
MAX_LONG_TEXT: Final = 100_000

#: Characters of a request URL (formulas travel in it); pyairtable switches to POST beyond.
MAX_URL_LENGTH: Final = 16_000

#: Requests per second per base.
RATE_LIMIT: Final = 5.0

#: Seconds a base is locked out after a 429.
RATE_LIMIT_PENALTY: Final = 30.0


def distinct_write_batches(items: Sequence[T], key: Callable[[T], str]) -> list[list[T]]:
    """``items`` in as few write requests as :func:`write_batches`, but never two of one row
    (``key``) in one request: Airtable answers an upsert naming a row twice with one record,
    and one request's writes of a row have no order.  A later item of a row lands in a later
    request than the earlier ones (first fit: a request skipped for being full stays full).

    >>> items = list(enumerate("AAB"))
    >>> [[n for n, _ in b] for b in distinct_write_batches(items, key=lambda i: i[1])]
    [[0, 2], [1]]
    """
    batches: list[list[T]] = []
    keys: list[set[str]] = []
    for item in items:
        k = key(item)
        for batch, seen in zip(batches, keys, strict=True):
            if len(batch) < MAX_RECORDS_PER_WRITE and k not in seen:
                batch.append(item)
                seen.add(k)
                break
        else:
            batches.append([item])
            keys.append({k})
    return batches


def write_batches(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in slices one write request can carry.

    >>> [len(b) for b in write_batches(range(23))]
    [10, 10, 3]
    """
    for start in range(0, len(items), MAX_RECORDS_PER_WRITE):
        yield items[start : start + MAX_RECORDS_PER_WRITE]
