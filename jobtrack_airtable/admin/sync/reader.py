"""Reading both tables page by page, ahead of the planner (issue 11: a streaming sync).

A listing costs one request per 100 rows, and against Airtable every request waits its turn
at 5 per second: reading 50,000 rows takes 100 s or more.  So the pages are fetched by a
background thread, a few pages ahead (:data:`PREFETCH`), while the caller turns each page
into compact rows: the planning CPU hides behind the reads instead of coming after them,
and no more than a few raw pages are held at once.

Each page is one request under the connection's retry policy, read and keyed by configured
name by the table layer (:meth:`~jobtrack_airtable.transport.repository.Repository.pages`,
as ``list_records`` reads); if Airtable expires the listing's offset
(``LIST_RECORDS_ITERATOR_NOT_AVAILABLE``) the table is read again from the top and the caller
is told to forget what it had (a ``reset``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from pyairtable.api.types import RecordDict

from ...errors import IteratorExpiredError
from ...transport.repository import MAX_LISTING_RESTARTS, Repository
from .model import TableKey

__all__ = ["PREFETCH", "Page", "read_tables"]

log = logging.getLogger(__name__)

#: Pages fetched ahead of the consumer: enough to keep the connection busy, few enough that
#: raw pages never dominate memory.
PREFETCH = 4
_POLL = 0.1


@dataclass(frozen=True, slots=True)
class Page:
    """One page of ``table`` (``kind == "page"``), or ``reset``: forget ``table``'s rows, its
    listing restarts."""

    kind: Literal["page", "reset"]
    table: TableKey
    records: list[RecordDict]


def read_tables(repo: Repository, tables: Sequence[TableKey]) -> Iterator[Page]:
    """Every page of each of ``tables`` in turn, fetched ahead by a thread.  Errors of the
    reads are raised here, in the caller's thread; closing the iterator stops the reader."""
    out: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()

    def put(item: Page | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for table in tables:
                for attempt in range(MAX_LISTING_RESTARTS + 1):
                    try:
                        for records in repo.pages(table):
                            if not put(Page("page", table, records)):
                                return
                        break
                    except IteratorExpiredError:
                        if attempt == MAX_LISTING_RESTARTS:
                            raise
                        log.warning("listing of %s expired; restarting it", table)
                        if not put(Page("reset", table, [])):
                            return
            put(None)
        except BaseException as exc:  # handed to the consumer, raised in its thread
            put(exc)

    reader = threading.Thread(target=produce, name="jobtrack-sync-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = out.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
