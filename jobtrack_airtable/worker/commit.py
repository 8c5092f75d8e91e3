"""Group commit of client-run writes (issue 11): one process, ⌈K/10⌉ requests per interval.

Every write of a client run (its open, its metric flushes, its notes, its close) is held in
the run as *state*, not as a request: totals are absolute, so only the newest state of each
run needs to go out.  :class:`GroupCommit` sends the pending state of every run of one
tracker together, up to 10 records per upsert, at most one ``flush_interval`` after the
change (a background thread), and at once when asked: job completion,
``tracker.flush()``, ``tracker.close()``, ``run.close(wait=True)``, interpreter exit
(``atexit``) and ``SIGTERM`` drain it.

* **Order.** One drain runs at a time and each run contributes one record per drain, built
  from its newest state, so the writes of one run land in the order they were made.
* **Retries.** A failed batch is retried as a batch by the retry policy; if it still fails,
  its runs stay pending and go out with the next drain, still as absolute totals, so nothing
  is counted twice.  A batch Airtable refuses outright (non-retryable) is split into single
  records so that one bad run cannot hold back the nine others.
* **Durability.** A SIGKILL loses what is pending: at most the last interval's changes (as
  for metric increments before).  SIGTERM and a normal exit lose nothing.

>>> commit = GroupCommit(repo, interval=5.0)                       # doctest: +SKIP
>>> commit.mark(run)          # the run has a change to write       # doctest: +SKIP
>>> commit.drain()            # on the wire now, with every other pending run  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from ..airtable import write_batches
from ..errors import (
    AirtableError,
    JobtrackError,
    LimiterUnavailableError,
    QuotaExhaustedError,
    TrackerClosedError,
)
from ..limiter.locks import row_key, row_locks
from ..rows import ClientRunRow
from ..transport.recovery import RETRYABLE
from ..transport.repository import Repository
from . import shutdown

log = logging.getLogger(__name__)

#: Failures that leave a batch pending for the next drain (the retry policy gave up, or the
#: month's quota is spent: the write is right, only Airtable cannot take it yet).
DEFERRABLE: tuple[type[Exception], ...] = (*RETRYABLE, LimiterUnavailableError, QuotaExhaustedError)

#: (record ID or None, fields by logical key, token handed back to ``written``)
Write = tuple[str | None, dict[str, Any], Any]


class Committable(Protocol):
    """What a client run offers the group commit (see ``tracker.ClientRun``)."""

    record_id: str | None
    run_id: Any

    def needs_read(self) -> bool:
        """Whether the row must be read before this drain's write (notes to merge, a
        terminal status to check against another writer's)."""
        ...

    def observe(self, row: ClientRunRow | None) -> None:
        """The row as read just before the write (``None``: the row is gone)."""
        ...

    def take(self, now: datetime) -> Write | None:
        """The record to write for the run's newest state, or ``None``."""
        ...

    def written(self, row: ClientRunRow, created: bool, token: Any) -> None:
        """The write of ``take``'s record landed."""
        ...

    def refused(self, error: Exception, token: Any) -> None:
        """Airtable refused the run's record for good (non-retryable)."""
        ...

    def dirty(self) -> bool:
        """Whether the run has state not yet written."""
        ...


_LIVE: weakref.WeakSet[GroupCommit] = weakref.WeakSet()


def drain_all(reason: str) -> None:
    """Drain every live group commit of the process (exit, SIGTERM); failures are logged."""
    for commit in list(_LIVE):
        try:
            commit.drain()
        except Exception as exc:
            log.warning("could not write pending client-run changes at %s: %s", reason, exc)


class GroupCommit:
    """Coalesces the client-run writes of one tracker into batches of up to 10 records.

    ``interval`` bounds the delay of a change (0: every change is written at once, in the
    caller's thread).  ``clock`` stamps Last Updated.
    """

    def __init__(self, repo: Repository, *, interval: float, clock: Callable[[], datetime]) -> None:
        self.repo = repo
        self.interval = interval
        self.clock = clock
        self._pending: dict[int, Committable] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # One drain at a time: the writes of one run go out in order.
        self._drain_lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._closed = False
        _LIVE.add(self)
        shutdown.install(drain_all)

    def __repr__(self) -> str:
        return f"GroupCommit(interval={self.interval!r}, pending={len(self._pending)})"

    @property
    def pending(self) -> int:
        """How many runs have changes not yet written."""
        return len(self._pending)

    def mark(self, *runs: Committable) -> None:
        """``runs`` have a change to write: within ``interval``, or now when it is 0."""
        with self._lock:
            if self._closed:
                # Nothing would ever write it (no thread, no exit hook): say so now.
                raise TrackerClosedError(str(getattr(runs[0], "run_id", "?")) if runs else "?")
            for run in runs:
                self._pending[id(run)] = run
            if self.interval > 0:
                self._ensure_thread()
        if self.interval <= 0:
            try:
                self.drain()
            except DEFERRABLE as exc:
                # The change is in the run's state and stays pending: the next drain writes
                # it, as an absolute total.  Raising would report a failed add() that was in
                # fact applied (a caller retrying it would count it twice).
                log.warning(
                    "client-run write failed after retries (%s); the changes stay pending "
                    "for the next write",
                    type(exc).__name__,
                )

    def _requeue(self, run: Committable) -> None:
        with self._lock:
            self._pending.setdefault(id(run), run)
            if self.interval > 0 and not self._closed:
                self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="jobtrack-group-commit", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._wake.wait(timeout=self.interval)
                if self._closed or not self._pending:
                    # Nothing to do: end; the next change starts a new thread.
                    self._thread = None
                    return
            try:
                self.drain()
            except Exception as exc:
                # The runs stay pending (absolute totals): the next drain writes them.
                log.warning(
                    "group commit of client-run changes failed (%s); they stay pending, "
                    "retried in %g s",
                    type(exc).__name__,
                    self.interval,
                )

    def drain(self) -> None:
        """Write every pending change now, ⌈K/10⌉ requests for K runs (plus one read of the
        rows whose notes or final status must be checked first).  Raises the first failure
        after trying every batch; the runs of a failed batch stay pending."""
        with self._drain_lock:
            with self._lock:
                runs = list(self._pending.values())
                self._pending.clear()
            if not runs:
                return
            readers = [r for r in runs if r.record_id and r.needs_read()]
            conn = self.repo.conn
            keys = [row_key(conn.base_id, "client_runs", str(r.run_id)) for r in readers]
            # The rows read for their notes stay locked until written (see limiter.locks).
            with row_locks(conn.limiter, keys):
                self._read_first(readers)
                now = self.clock()
                batch: list[tuple[Committable, Write]] = []
                for run in runs:
                    write = run.take(now)
                    if write is not None:
                        batch.append((run, write))
                failure: Exception | None = None
                for chunk in write_batches(batch):
                    error = self._send(list(chunk))
                    failure = failure or error
            for run in runs:
                if run.dirty():
                    self._requeue(run)
            if failure is not None:
                raise failure

    def _read_first(self, runs: list[Committable]) -> None:
        if not runs:
            return
        ids = [r.record_id for r in runs if r.record_id]
        found = {row.record_id: row for row in self.repo.client_runs.get_many(ids)}
        for run in runs:
            run.observe(found.get(run.record_id or ""))

    def _send(self, chunk: list[tuple[Committable, Write]]) -> Exception | None:
        items = [(rid, fields) for _, (rid, fields, _) in chunk]
        try:
            results = self.repo.client_runs.write(items)
        except DEFERRABLE as exc:
            return exc
        except (AirtableError, JobtrackError) as exc:
            if len(chunk) == 1:
                run, (_, _, token) = chunk[0]
                run.refused(exc, token)
                return exc
            # Refused outright: find the record at fault, write the others.
            errors = [self._send([one]) for one in chunk]
            return next((e for e in errors if e is not None), None)
        for (run, (_, _, token)), (row, created) in zip(chunk, results, strict=True):
            run.written(row, created, token)
        return None

    def close(self) -> None:
        """Drain, then stop the background thread."""
        try:
            self.drain()
        finally:
            with self._lock:
                self._closed = True
                self._wake.notify_all()
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
            _LIVE.discard(self)
