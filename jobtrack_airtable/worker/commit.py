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
* **Durability.** Every change is in the outbox (:mod:`jobtrack_airtable.outbox`) before the
  call that made it returns; the commit only decides when Airtable sees it.  A SIGKILL loses
  nothing: the next tracker on the machine (or ``jobtrack-airtable outbox replay``) writes it.
* **Cadence.** Opens, closes and status changes go out within the interval; increments at
  the pace of the machine's request budget (:mod:`jobtrack_airtable.outbox.cadence`).
* **Refusals.** A record Airtable refuses (401, 403, 404, 422) stays pending in the run and
  the outbox; the background thread leaves it alone, and every synchronous drain
  (``flush()``, ``close(wait=True)``, ``complete()``, ``tracker.close()``) tries it again and
  raises the refusal if it persists.
* **Late application.** A write whose answer timed out may still be applied by the server
  after a later write: its runs are read again once the settle window has passed and
  rewritten if the row does not hold their newest state.

>>> commit = GroupCommit(repo, interval=5.0)                       # doctest: +SKIP
>>> commit.mark(run)          # the run has a change to write       # doctest: +SKIP
>>> commit.drain()            # on the wire now, with every other pending run  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from .. import forks
from ..airtable import distinct_write_batches
from ..errors import (
    AirtableError,
    JobtrackError,
    LimiterUnavailableError,
    PermissionDeniedError,
    QuotaExhaustedError,
    TrackerClosedError,
)
from ..limiter.locks import row_key, row_locks
from ..outbox.cadence import Cadence
from ..rows import ClientRunRow
from ..transport.adapter import Outcome, watch
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

    def urgent(self) -> bool:
        """Whether the pending state must show promptly (an open, a status change)."""
        ...

    def refusal_pending(self) -> Exception | None:
        """The refusal its last write met, while it stands."""
        ...

    def unsettled(self, until: float) -> None:
        """Its write's answer timed out: the server may still apply it until ``until``."""
        ...

    def verify(self, row: ClientRunRow | None) -> bool:
        """Whether ``row`` (read after the settle window) holds the run's written state;
        if not, the run marks itself to be written again."""
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

    def __init__(
        self,
        repo: Repository,
        *,
        interval: float,
        clock: Callable[[], datetime],
        cadence: Cadence | None = None,
        wall: Callable[[], float] = time.time,
        background: bool = True,
        settle: float = 60.0,
    ) -> None:
        self.repo = repo
        self.clock = clock
        self.cadence = cadence or Cadence(interval=interval, budget=0, visible_within=interval)
        self.cadence.interval = interval
        self.wall = wall
        self.settle_window = settle
        self._background = background
        self._pending: dict[int, Committable] = {}
        # Refused runs wait for a synchronous drain (the background thread leaves them).
        self._refused: dict[int, Committable] = {}
        # Runs whose write timed out: (run, time after which a read can verify it).
        self._settling: dict[int, tuple[Committable, float]] = {}
        self._urgent_since: float | None = None
        self._lazy_since: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # One drain at a time: the writes of one run go out in order.
        self._drain_lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Requests sent by drains (writes and the reads before them).
        self.requests = 0
        _LIVE.add(self)
        shutdown.install(drain_all)
        forks.register(self, GroupCommit._after_fork)

    def _after_fork(self) -> None:
        """In a forked child: fresh locks (a parent thread may have held them mid-drain; it
        does not exist here) and no thread.  What was pending is the parent's to write: the
        child writing it too would only repeat it."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._drain_lock = threading.RLock()
        self._thread = None
        self._pending = {}

    @property
    def interval(self) -> float:
        return self.cadence.interval

    @interval.setter
    def interval(self, value: float) -> None:
        self.cadence.interval = value

    def __repr__(self) -> str:
        return f"GroupCommit(interval={self.interval!r}, pending={len(self._pending)})"

    @property
    def pending(self) -> int:
        """How many runs have changes not yet written (refused ones included)."""
        return len(self._pending) + len(self._refused)

    def mark(self, *runs: Committable) -> None:
        """``runs`` have a change to write: within ``interval`` (opens, closes), at the
        budget's pace (increments), or now when the interval is 0."""
        with self._lock:
            if self._closed:
                # Nothing would ever write it (no thread, no exit hook): say so now.
                raise TrackerClosedError(str(getattr(runs[0], "run_id", "?")) if runs else "?")
            self._queue(runs)
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

    def _queue(self, runs: tuple[Committable, ...] | list[Committable]) -> None:
        """Under the lock: pend ``runs`` and wake the thread if this moves the next drain."""
        now = self.wall()
        for run in runs:
            if run.refusal_pending() is not None:
                self._pending.pop(id(run), None)
                self._refused[id(run)] = run
                continue
            self._refused.pop(id(run), None)
            self._pending[id(run)] = run
            if run.urgent():
                if self._urgent_since is None:
                    self._urgent_since = now
                    self._wake.notify_all()
            elif self._lazy_since is None:
                self._lazy_since = now
                self._wake.notify_all()
        if self.interval > 0 and not self._closed and self._background:
            self._ensure_thread()

    def _requeue(self, run: Committable) -> None:
        with self._lock:
            if id(run) not in self._pending:
                self._queue([run])

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="jobtrack-group-commit", daemon=True
            )
            self._thread.start()

    def next_due(self) -> float:
        """When the next drain (or verification) is due, on ``wall`` (``inf``: never)."""
        due = self.cadence.due(
            urgent_since=self._urgent_since if self._pending else None,
            lazy_since=self._lazy_since if self._pending else None,
            now=self.wall(),
        )
        for _, until in self._settling.values():
            due = min(due, until)
        return due

    def poll(self) -> bool:
        """Drain (and verify) if due now; ``True`` if it did.  The background thread's step,
        callable directly with a simulated ``wall`` clock (benchmarks)."""
        if self.next_due() > self.wall():
            return False
        self.drain(synchronous=False)
        self.verify_due()
        return True

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed or (not self._pending and not self._settling):
                    # Nothing to do: end; the next change starts a new thread.
                    self._thread = None
                    return
                wait = self.next_due() - self.wall()
                if wait > 0:
                    # Woken early by a change that moves the next drain.
                    self._wake.wait(timeout=min(wait, 60.0))
                    continue
            try:
                self.drain(synchronous=False)
                self.verify_due()
            except Exception as exc:
                # The runs stay pending (absolute totals): the next drain writes them.
                log.warning(
                    "group commit of client-run changes failed (%s); they stay pending, "
                    "retried in %g s",
                    type(exc).__name__,
                    self.interval,
                )
                with self._lock:
                    # Not at once: the failure's cause needs time to pass.
                    self._wake.wait(timeout=max(self.interval, 1.0))

    def drain(self, *, synchronous: bool = True) -> None:
        """Write every pending change now, ⌈K/10⌉ requests for K runs (plus one read of the
        rows whose notes or final status must be checked first), refused runs included
        (``synchronous``; the flush thread's drains leave them to the next synchronous point).
        Raises the first failure after trying every batch; the runs of a failed batch stay
        pending (in the process and in the outbox)."""
        with self._drain_lock:
            with self._lock:
                runs = list(self._pending.values())
                self._pending.clear()
                if synchronous:
                    runs += [r for k, r in self._refused.items() if k not in {id(x) for x in runs}]
                    self._refused.clear()
                self._urgent_since = self._lazy_since = None
            if not runs:
                return
            readers = [r for r in runs if r.record_id and r.needs_read()]
            conn = self.repo.conn
            keys = [row_key(conn.base_id, "client_runs", str(r.run_id)) for r in readers]
            failure: Exception | None = None
            sent = 0
            try:
                # The rows read for their notes stay locked until written (see limiter.locks).
                with row_locks(conn.limiter, keys):
                    sent += self._read_first(readers)
                    now = self.clock()
                    batch: list[tuple[Committable, Write]] = []
                    for run in runs:
                        write = run.take(now)
                        if write is not None:
                            batch.append((run, write))
                    for chunk in distinct_write_batches(batch, key=lambda w: str(w[0].run_id)):
                        error, n = self._send(chunk)
                        sent += n
                        failure = failure or error
            finally:
                self.requests += sent
                self.cadence.spend(sent, self.wall())
                for run in runs:
                    if run.dirty():
                        self._requeue(run)
            if failure is not None:
                raise failure

    def _read_first(self, runs: list[Committable]) -> int:
        if not runs:
            return 0
        ids = [r.record_id for r in runs if r.record_id]
        found = {row.record_id: row for row in self.repo.client_runs.get_many(ids)}
        for run in runs:
            run.observe(found.get(run.record_id or ""))
        return -(-len(ids) // 100)

    def _send(self, chunk: list[tuple[Committable, Write]]) -> tuple[Exception | None, int]:
        """Write one batch: the first failure (``None``: it landed) and the requests sent."""
        items = [(rid, fields) for _, (rid, fields, _) in chunk]
        try:
            with watch() as outcome:
                results = self.repo.client_runs.write(items)
        except DEFERRABLE as exc:
            self._maybe_late(chunk, outcome)
            return exc, 1
        except (AirtableError, JobtrackError) as exc:
            if len(chunk) == 1 or isinstance(exc, PermissionDeniedError):
                # A refused token or permission refuses every record alike: no split.
                for run, (_, _, token) in chunk:
                    run.refused(exc, token)
                return exc, 1
            # Refused outright: find the record at fault, write the others.
            outcomes = [self._send([one]) for one in chunk]
            errors = [e for e, _ in outcomes if e is not None]
            return (errors[0] if errors else None), 1 + sum(n for _, n in outcomes)
        self._maybe_late(chunk, outcome)
        for (run, (_, _, token)), (row, created) in zip(chunk, results, strict=True):
            run.written(row, created, token)
        return None, 1

    def _maybe_late(self, chunk: list[tuple[Committable, Write]], outcome: Outcome) -> None:
        """A write with an attempt given up on while in flight (the transport's
        :class:`~..transport.adapter.Outcome`: a read timeout, not a wait for the limiter
        or a 429 penalty) may still be applied by the server, over newer state: verify its
        runs after the window."""
        if not outcome.maybe_late:
            return
        until = self.wall() + self.settle_window
        with self._lock:
            for run, _ in chunk:
                run.unsettled(until)
                self._settling[id(run)] = (run, until)
            if self._background and not self._closed:
                self._ensure_thread()

    def verify_due(self, *, wait: bool = False) -> None:
        """Read the rows whose settle window has passed (⌈N/100⌉ requests) and rewrite
        those a late write overwrote.  With ``wait``, first wait out every window."""
        with self._lock:
            settling = list(self._settling.values())
        if not settling:
            return
        if wait:
            latest = max(until for _, until in settling)
            while (left := latest - self.wall()) > 0:
                time.sleep(min(left, 1.0))
        # Under the drain lock, and claimed before the read: the flush thread and a
        # synchronous settle() reaching one window together must not both read (one request
        # too many), nor may settle() return while the thread's repair is not yet queued.
        with self._drain_lock:
            now = self.wall()
            with self._lock:
                due = [run for run, until in self._settling.values() if until <= now]
                claimed = {id(run): self._settling.pop(id(run)) for run in due}
            if not due:
                return
            ids = [r.record_id for r in due if r.record_id]
            try:
                found = {row.record_id: row for row in self.repo.client_runs.get_many(ids)}
            except BaseException:
                with self._lock:
                    for key, entry in claimed.items():
                        self._settling.setdefault(key, entry)
                raise
            reads = -(-len(ids) // 100)
            self.requests += reads
            self.cadence.spend(reads, now)
            self._verified(due, found)

    def _verified(self, due: list[Committable], found: dict[str, ClientRunRow]) -> None:
        stale = [run for run in due if not run.verify(found.get(run.record_id or ""))]
        for run in stale:
            log.warning(
                "client run %s: a write applied late overwrote newer state; writing it again",
                run.run_id,
            )
        if stale:
            with self._lock:
                self._queue(stale)

    def settle(self) -> None:
        """Wait out the settle window of every timed-out write, verify and repair (job
        completion does this before it aggregates, so a late write cannot skew it)."""
        for _ in range(5):
            if not self._settling:
                return
            self.verify_due(wait=True)
            self.drain()

    def close(self) -> None:
        """Drain and settle, then stop the background thread."""
        try:
            self.drain()
            self.settle()
        finally:
            with self._lock:
                self._closed = True
                self._wake.notify_all()
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
            _LIVE.discard(self)
