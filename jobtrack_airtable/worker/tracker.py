"""The worker API (SPEC §3.2): record a job and its client runs in a few lines.

>>> with Tracker.from_env() as tracker:                           # doctest: +SKIP
...     with tracker.job(stream=1) as job:
...         with job.client("Guy-Wilson", name="Guy Wilson") as run:
...             for chunk in chunks:
...                 run.add(profiles_examined=len(chunk), profile_tokens=tokens)
...         # leaving the block aggregates the client rows and completes the job

Guarantees:

* a run always ends: an exception marks it ``Failed`` (with the error in Error Details for
  client runs, in System Notes for jobs); a client run that did no work ends
  ``No Leads To Score``;
* metric increments are accumulated in the process and written as absolute totals, so a
  retried write can never double-count; the writes of all client runs of a tracker are
  group-committed (:mod:`jobtrack_airtable.worker.commit`): up to 10 runs per request, at most one
  ``flush_interval`` after the change;
* a job start never makes two rows, even when two orchestrators start in the same second or a
  response is lost (see :meth:`Tracker.job`); every later write of the job goes by record ID,
  so another host's short-lived claim row can never make it fail;
* re-opening a client run that already has a row continues from its stored totals, and
  refuses (:class:`~jobtrack_airtable.errors.TerminalRunError`) to reopen one that ended,
  unless ``force=True``;
* System Notes are append-only across processes: a write of notes merges this process's new
  lines into the row's current text; a run someone else made terminal keeps that status
  (unless ``force=True``) and the notes say what the worker found;
* a terminal status is final unless ``force=True``, which leaves a note in System Notes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, tzinfo
from types import TracebackType
from typing import Any, Self, TypeVar

from .. import forks
from ..aggregation import aggregate, completion_status
from ..errors import (
    InvalidClientIdError,
    InvalidInputError,
    JobEndedError,
    NotFoundError,
    RunHeldError,
    TrackerClosedError,
    show,
)
from ..limiter.locks import row_key, row_locks
from ..outbox import OutboxStore, open_outbox
from ..outbox.cadence import Cadence
from ..outbox.store import LIVE_OWNERS, RELEASED, Entry, entry_key, new_owner, owner_alive
from ..rows import ClientRunRow, JobRow
from ..run_ids import (
    BaseRunId,
    ClientRunId,
    as_base_run_id,
    as_client_run_id,
    generate_base_run_id,
    validate_client_id,
    with_client,
)
from ..schema import text_problem
from ..settings import Settings
from ..statuses import CLOCK_TOLERANCE, Status, check_transition, parse_status
from ..timeutil import to_airtable
from ..transport.adapter import Outcome, watch
from ..transport.client import Connection
from ..transport.repository import Repository
from .client_run import ClientRun
from .commit import GroupCommit
from .exclusive import acknowledged_rows
from .job_outbox import JOBS_TABLE, FinalIntent, JobState
from .runs import EndsOnExit, Notes, ended_elsewhere, error_text
from .starts import block_of, claim_note, decide, moved_note, ranked_note, reserve
from .tracing import end_span, start_client_span, start_job_span
from .tracking_errors import TRACKING_ERRORS, Guarded, OnTrackingError, run_guarded

__all__ = ["ClientRun", "Job", "Tracker"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many claims a job start makes looking for a free run ID before it gives up.
MAX_START_ATTEMPTS = 60


class Tracker:
    """Entry point for workers: starts jobs and opens client runs.

    Build it with :meth:`from_env` (reads ``AIRTABLE_API_KEY`` / ``AIRTABLE_BASE_ID`` and the
    other settings) or from an existing :class:`~jobtrack_airtable.transport.client.Connection`.
    Use it as a context manager (or call :meth:`close`): leaving writes every pending change and
    closes the HTTP session and the limiter.  Rows are stamped on the server's clock
    (:meth:`Connection.server_now`); ``clock`` and ``tz`` are injectable for tests.

    Every client-run change goes to the machine's outbox (``outbox``, else the store the
    settings name) before the call returns.  A new tracker takes over what dead or closed
    processes of the machine left there and writes it with its first writes (``replay=False``
    leaves that to :meth:`replay`).  ``wall`` simulates time for benchmarks: no background
    thread, the caller calls :meth:`poll`.

    >>> with Tracker.from_settings(srv.settings()) as tracker:    # doctest: +SKIP
    ...     job = tracker.job()
    """

    def __init__(
        self,
        conn: Connection,
        *,
        clock: Callable[[], datetime] | None = None,
        tz: tzinfo | None = None,
        flush_interval: float | None = None,
        origin: str | None = None,
        claim_marker: Callable[[], str] | None = None,
        outbox: OutboxStore | None = None,
        wall: Callable[[], float] | None = None,
        replay: bool = True,
    ) -> None:
        settings = conn.settings
        self.conn = conn
        self.repo = Repository(conn)
        # The server's clock (learnt from responses' Date headers), not this machine's: rows'
        # stamps are judged by sync against Airtable's time, and workers' clocks drift.
        self.clock = clock if clock is not None else conn.server_now
        self._server_clock = clock is None
        self.tz = tz if tz is not None else settings.tz
        interval = flush_interval if flush_interval is not None else settings.flush_interval
        #: Who writes, as recorded in System Notes (host and process by default).
        self.origin = origin or _default_origin()
        self._default_origin = origin is None
        self._claim_marker = claim_marker or (lambda: uuid.uuid4().hex[:12])
        self._lock = threading.Lock()
        self._last_issued: BaseRunId | None = None
        #: The durable record of every change not yet on Airtable (see :mod:`.outbox`).
        self.outbox = outbox if outbox is not None else open_outbox(settings)
        self._owner = new_owner()
        LIVE_OWNERS.add(self._owner)
        # ``wall`` simulates time (benchmarks): no background thread, the caller polls.
        cadence = Cadence(
            interval=interval,
            budget=settings.request_budget,
            visible_within=settings.visible_within,
            store=self.outbox,
        )
        self._commit = GroupCommit(
            self.repo,
            interval=interval,
            clock=self.clock,
            cadence=cadence,
            wall=wall or time.time,
            background=wall is None,
            settle=settings.settle_seconds,
        )
        self._closed = False
        # Set once the final drain is over: a change after it can never be written.
        self._sealed = False
        # What a process of this machine left (killed, or closed with a write refused) goes
        # out with this tracker's first writes.
        self._adopted = self._adopt_orphans() if replay else []
        #: OpenTelemetry spans of the jobs this tracker started, by run ID (tracing.py).
        self._spans: dict[str, Any] = {}
        #: Run IDs of the jobs whose pending writes this tracker replayed.
        self.replayed_jobs: list[str] = []
        # Jobs of this tracker whose last write Airtable refused: tried again at flush/close.
        self._refused_jobs: dict[str, Job] = {}
        # Jobs started with exclusive=True: an open of their clients by another path voids it.
        self._exclusive_jobs: dict[str, Job] = {}
        self._adopted_jobs = self._adopt_jobs() if replay else []
        if self._adopted_jobs:
            try:
                self._replay_jobs()
            except Exception as exc:
                # Never from a constructor (whatever went wrong, the worker's own job comes
                # first): the entries stay, released at close for the next tracker (or
                # ``outbox replay``, which raises).
                log.warning(
                    "could not replay %d job write(s) left in the outbox (%s: %s); kept",
                    len(self._adopted_jobs),
                    type(exc).__name__,
                    exc,
                )
        forks.register(self, Tracker._after_fork)

    def _after_fork(self) -> None:
        """In a forked child (see :mod:`jobtrack_airtable.forks`): a fresh lock, the child's
        own pid in the notes it writes, and an outbox owner tag of its own (its entries are
        orphans when *it* dies, not when the parent does)."""
        self._lock = threading.Lock()
        if self._default_origin:
            self.origin = _default_origin()
        self._owner = new_owner()
        LIVE_OWNERS.add(self._owner)

    @property
    def flush_interval(self) -> float:
        """The longest a client-run change waits before it is written (seconds)."""
        return self._commit.interval

    @flush_interval.setter
    def flush_interval(self, value: float) -> None:
        self._commit.interval = value

    @classmethod
    def from_env(cls, **kwargs: Any) -> Tracker:
        """A tracker configured from the environment (and ``.env``)."""
        return cls.from_settings(Settings(), **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Tracker:
        """A tracker for explicit settings, e.g. ``Tracker.from_settings(srv.settings())``
        against a :class:`~jobtrack_airtable.local.LocalAirtable`."""
        return cls(Connection.from_settings(settings), **kwargs)

    def __repr__(self) -> str:
        return f"Tracker(base_id={self.conn.base_id!r})"

    # ------------------------------------------------------------- lifecycle

    @property
    def on_tracking_error(self) -> OnTrackingError:
        """``raise`` or ``warn``: what a tracking failure does at a synchronous point
        (``JOBTRACK_ON_TRACKING_ERROR``, see :mod:`jobtrack_airtable.worker.tracking_errors`)."""
        return self.conn.settings.on_tracking_error

    def flush(self) -> None:
        """Write every pending client-run change now (⌈K/10⌉ requests for K runs), those
        Airtable refused before included: a refusal that persists is raised, or warned in
        warn mode (the changes stay in the outbox either way)."""
        # Inline rather than through helpers: every frame here sits on each worker write's
        # stack (benchmarks/frames.py).  Client runs first, then the job writes Airtable
        # refused before (a completion aggregates the client rows).
        with Guarded(self.on_tracking_error, "tracker.flush()"):
            self._commit.drain()
            for job in list(self._refused_jobs.values()):
                job._replay()

    def poll(self) -> bool:
        """Write what the cadence says is due now (a tracker built with a simulated
        ``wall`` clock has no background thread: its caller polls)."""
        return self._commit.poll()

    def close(self) -> None:
        """Write every pending change, then close the HTTP session and the limiter.
        Closing twice is harmless.  A change Airtable refuses stays in the outbox for the
        next tracker of this machine or ``jobtrack-airtable outbox replay``; the refusal
        is raised."""
        if self._closed:
            return
        self._closed = True
        try:
            run_guarded(self.on_tracking_error, "tracker.close()", self._close_writes)
        finally:
            self._sealed = True
            LIVE_OWNERS.discard(self._owner)
            try:
                self._release()
            finally:
                self.outbox.close()
                self.conn.close()

    def _close_writes(self) -> None:
        self._commit.close()
        for job in list(self._refused_jobs.values()):
            job._replay()

    def _release(self) -> None:
        """Leave what Airtable refused to any process: this one may live on without a
        tracker, and the entries must not wait for it to die."""
        mine = {e.key: e.owner for e in self.outbox.entries() if e.owner == self._owner}
        if mine:
            self.outbox.claim(list(mine), RELEASED, expected=mine)
        self.outbox.unhold(self._owner)

    # ------------------------------------------------------------ the outbox

    def _spend(self, requests: int) -> None:
        """Debit requests sent outside the group commit (job writes) from the budget."""
        self._commit.cadence.spend(requests, self._commit.wall())

    def _key(self, run: ClientRun) -> str:
        return entry_key(self.conn.base_id, "client_runs", str(run.run_id))

    def _persist(self, run: ClientRun) -> None:
        """Store the run's state durably (under the run's lock, so versions go in order)."""
        if self._sealed:
            # Nothing of this tracker would write it: refused, not kept for a later replay
            # the caller was told would not happen.
            raise TrackerClosedError(str(run.run_id))
        run._version = self.outbox.put(self._key(run), run._version, run.snapshot(), self._owner)

    def _retire(self, run: ClientRun, version: int) -> None:
        key = self._key(run)
        self.outbox.retire(key, version, verify_after=run._settle_until)
        if (
            version == run._version
            and run.status.is_terminal
            and not run.dirty()
            and not run._settle_until
        ):
            # Its final state is on Airtable (and verified, after a timeout): another
            # process may open the run now, from the row.
            self.outbox.unhold(self._owner, [key])

    def _unhold(self, run: ClientRun) -> None:
        """Give up the run's lease while it stays open: it is handed to another process
        (a framework's retry), this object writes nothing more."""
        self.outbox.unhold(self._owner, [self._key(run)])

    def _hold(self, runs: list[ClientRun]) -> None:
        """Take the machine's lease of each run (see :meth:`OutboxStore.hold`), or raise
        :class:`RunHeldError` for the first another live process holds."""
        taken: list[str] = []
        for run in runs:
            key = self._key(run)
            holder = self.outbox.hold(key, self._owner)
            if holder is not None:
                self.outbox.unhold(self._owner, taken)
                raise RunHeldError(str(run.run_id), holder)
            taken.append(key)

    def _refused(self, run: ClientRun, version: int, error: Exception) -> None:
        self.outbox.refused(self._key(run), version, f"{type(error).__name__}: {error}")

    def _claim_orphans(self, table: str, *, every_owner: bool) -> list[Entry]:
        """Claim the entries of this base's ``table`` that no live process holds."""
        prefix = entry_key(self.conn.base_id, table, "")
        entries = [
            e
            for e in self.outbox.entries(prefix)
            if e.owner != self._owner and (every_owner or not owner_alive(e.owner))
        ]
        if not entries:
            return []
        expected = {e.key: e.owner for e in entries}
        claimed = set(self.outbox.claim(list(expected), self._owner, expected=expected))
        return [e for e in entries if e.key in claimed]

    def _adopt_orphans(self, *, every_owner: bool = False) -> list[ClientRun]:
        """Claim the client-run entries no live process holds and queue them."""
        runs: list[ClientRun] = []
        for e in self._claim_orphans("client_runs", every_owner=every_owner):
            try:
                runs.append(ClientRun.restore(self, e.payload, e.version))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("outbox entry %s cannot be read (%s); left as it is", e.key, exc)
        if runs:
            log.info("replaying %d client-run change(s) left in the outbox", len(runs))
            self._commit.mark(*runs)
        return runs

    def _adopt_jobs(self, *, every_owner: bool = False) -> list[Job]:
        """Claim the job entries no live process holds (rebuilt, not yet written)."""
        jobs: list[Job] = []
        for e in self._claim_orphans(JOBS_TABLE, every_owner=every_owner):
            try:
                jobs.append(Job.restore(self, JobState.loads(e.payload), e.version))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("outbox entry %s cannot be read (%s); left as it is", e.key, exc)
        return jobs

    def _replay_jobs(self) -> None:
        """Write the adopted jobs' pending changes: after the client-run entries (the
        completion drains the group commit first), so aggregates are recomputed from
        client rows that hold everything."""
        while self._adopted_jobs:
            job = self._adopted_jobs[0]
            log.info("replaying the pending writes of job %s", job.run_id, extra=job._log_extra)
            job._replay()
            self._adopted_jobs.pop(0)
            self.replayed_jobs.append(str(job.run_id))

    def replay(self, *, every_owner: bool = False) -> list[ClientRun]:
        """Write what the outbox holds for this base that no live process owns (with
        ``every_owner``: also entries of processes that may be alive, e.g. of another
        host) now; the runs replayed (the jobs: :attr:`replayed_jobs`).  Idempotent:
        totals and aggregates are absolute and two replays claim disjoint entries.  A
        refusal that persists is raised (the entries stay)."""
        runs = [*self._adopted, *self._adopt_orphans(every_owner=every_owner)]
        self._adopted = []
        self._adopted_jobs.extend(self._adopt_jobs(every_owner=every_owner))
        self._commit.drain()
        self._commit.settle()
        self._replay_jobs()
        return runs

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except Exception:
            if exc is None:
                raise
            # The worker's own exception is what propagates, never a tracking one.
            log.exception("could not write the pending tracking changes while leaving")

    def _check_open(self, action: str) -> None:
        """Refuse work on a closed tracker before any request: its HTTP session is gone and
        nothing would ever write what it started."""
        if self._closed:
            raise TrackerClosedError(action=f"{action} is refused")

    # ------------------------------------------------------------------ jobs

    def _next_candidate(self) -> BaseRunId:
        candidate = generate_base_run_id(clock=self.clock, tz=self.tz)
        with self._lock:
            # Never reissue an ID this process already used: two jobs started by one
            # orchestrator in the same second get consecutive seconds without a request.
            if self._last_issued is not None and candidate <= self._last_issued:
                candidate = self._last_issued.next_second()
            self._last_issued = candidate
        return candidate

    def job(self, *, stream: int = 1, note: str | None = None, exclusive: bool = False) -> Job:
        """Start a job: a ``Running`` row with a fresh, unique run ID (2 requests).

        ``exclusive=True`` promises that every client run of the job is opened through the
        returned object, in this process (its Run ID is not handed to other workers): the
        completion then aggregates the client rows as Airtable acknowledged them to this
        tracker instead of reading them back, ⌈N/100⌉ requests fewer, whenever that is all
        of it (see :mod:`jobtrack_airtable.worker.exclusive`).

        Uniqueness across hosts cannot come from a check-then-create (two orchestrators can
        both see an ID free), so the start *creates* the row carrying a random claim marker,
        then reads the ten minutes of job rows around it: every row has a seat there, the
        first second from its own on that no older row holds.  The oldest row of a second
        keeps it (2 requests); a younger one moves its row to its seat by one patch and is
        done (3 requests): anyone reading later computes the same seats, so no read after
        the move is needed.  A read the rule cannot settle (rows stamped in the same
        millisecond, a seat past the ten minutes) makes the row move and read again (see
        :mod:`jobtrack_airtable.worker.starts`).  Copies of its own row left by a retried
        create (lost response) are deleted.  The row's record ID is kept and written by
        from then on.

        >>> with tracker.job(stream=2, note="nightly") as job:   # doctest: +SKIP
        ...     print(job.run_id)
        250930-141522
        """
        self._check_open("job()")
        if isinstance(stream, bool) or not isinstance(stream, int) or stream < 1:
            raise InvalidInputError(f"stream must be an integer ≥ 1, got {show(stream)}")
        if not isinstance(exclusive, bool):
            raise InvalidInputError(f"exclusive must be True or False, got {show(exclusive)}")
        marker = self._claim_marker()
        conn = self.conn
        candidate = reserve(conn.limiter, conn.base_id, self._next_candidate())
        now = self.clock()
        notes = Notes(None, self.clock)
        notes.append(claim_note(self.origin, marker), fit=True)
        if note:
            notes.append(note)
        values: dict[str, Any] = {
            "run_id": str(candidate),
            "status": Status.RUNNING.value,
            "stream": stream,
            "start_time": to_airtable(now),
            "last_updated": to_airtable(now),
            "system_notes": notes.text,
        }
        # Our row's record ID once it exists (None: create it), and the run ID it holds.
        mine: str | None = None
        at = str(candidate)
        # Any write of the start left unanswered may still land (a second start row).
        with watch() as outcome:
            for _ in range(MAX_START_ATTEMPTS):
                move: tuple[str, Mapping[str, Any]] | None = None
                if mine is not None:
                    values["system_notes"] += "\n" + moved_note(at, str(candidate))
                    move = (
                        mine,
                        {"run_id": str(candidate), "system_notes": values["system_notes"]},
                    )
                else:
                    # A row created again must not carry the moves of the one that vanished:
                    # readers take a claim's first move note for the second it was created at.
                    values["system_notes"] = notes.text
                values["run_id"] = at = str(candidate)
                rows = self.repo.jobs.stake(values, move=move, block=block_of(at))
                self._spend(2)
                decision = decide(rows, marker, at, verifying=move is not None)
                if decision.spare:
                    log.warning(
                        "removing %d extra copies of %s left by a retried create",
                        len(decision.spare),
                        at,
                        extra={"run_id": at},
                    )
                    self.repo.delete("jobs", decision.spare)
                claimed = decision.row
                if claimed is not None and decision.ranked:
                    # The seat the rule gives us: whoever reads the block computes it too, so
                    # the move needs no read after it.
                    values["system_notes"] += "\n" + ranked_note(at, decision.target)
                    change = {"run_id": decision.target, "system_notes": values["system_notes"]}
                    [record] = self.repo.update_by_id("jobs", [(claimed.record_id, change)])
                    self._spend(1)
                    claimed = self.repo.jobs.row(record)
                    candidate = BaseRunId(decision.target)
                elif claimed is None or not decision.won:
                    # Not ours yet: move our row (or create it again, if it is gone), then read.
                    mine = claimed.record_id if claimed is not None else None
                    candidate = reserve(conn.limiter, conn.base_id, BaseRunId(decision.target))
                    log.info(
                        "run ID %s is taken or its block unsure; trying %s",
                        at,
                        candidate,
                        extra={"run_id": at},
                    )
                    with self._lock:
                        if self._last_issued is None or candidate > self._last_issued:
                            self._last_issued = candidate
                    continue
                with self._lock:
                    if self._last_issued is None or candidate > self._last_issued:
                        self._last_issued = candidate
                notes.landed(claimed.system_notes, len(notes.lines))
                job = Job(
                    self,
                    candidate,
                    stream=stream,
                    notes=notes,
                    status=Status.RUNNING,
                    record_id=claimed.record_id,
                )
                job._claim_marker = marker
                job._exclusive = exclusive
                if exclusive:
                    self._exclusive_jobs[str(candidate)] = job
                job._maybe_late(outcome)
                created = claimed.created_time
                if (
                    self._server_clock
                    and created is not None
                    and abs(now - created) > CLOCK_TOLERANCE
                ):
                    # Stamped before the connection's first response taught it the server's
                    # clock (the raw local clock, maybe hours off): the row's created time is
                    # the true start; the job's next write puts it right, at no extra request.
                    job._start_fix = to_airtable(created)
                job._span = start_job_span(str(candidate), stream)
                if job._span is not None:
                    self._spans[str(candidate)] = job._span
                log.info(
                    "started job %s (stream %d)",
                    candidate,
                    stream,
                    extra={"run_id": str(candidate)},
                )
                return job
        if mine is not None:
            self.repo.delete("jobs", [mine])
        raise InvalidInputError(
            f"no free run ID within {MAX_START_ATTEMPTS} claims, up to {candidate}"
        )

    def find_job(self, run_id: BaseRunId | str) -> JobRow | None:
        """The job row of ``run_id`` as stored (1 request), or ``None``.

        >>> tracker.find_job("250930-141522").status            # doctest: +SKIP
        <Status.COMPLETED: 'Completed'>
        """
        return self.repo.jobs.find(run_id)

    def client_runs(self, run_id: BaseRunId | str) -> list[ClientRunRow]:
        """The client rows of the job ``run_id`` as stored (⌈N/100⌉ requests).

        >>> [r.client_id for r in tracker.client_runs("250930-141522")]  # doctest: +SKIP
        ['Guy-Wilson']
        """
        return self.repo.client_runs.of_job(run_id)

    def attach_job(self, run_id: BaseRunId | str) -> Job:
        """Attach to a job started elsewhere, by its propagated run ID (1 request).

        Raises :class:`~jobtrack_airtable.errors.NotFoundError` if no such job exists.
        """
        self._check_open("attach_job()")
        key = as_base_run_id(run_id)
        row = self.repo.jobs.find(key)
        if row is None:
            raise NotFoundError(
                f"no job with run ID {str(key)!r}", status=404, error_type="NOT_FOUND"
            )
        status = row.status if row.status is not None else Status.RUNNING
        return Job(
            self,
            key,
            stream=row.stream or 1,
            notes=Notes(row.system_notes, self.clock),
            status=status,
            record_id=row.record_id,
            attached=True,
        )

    # ------------------------------------------------------------- client runs

    def client(
        self,
        job_run_id: BaseRunId | str,
        client_id: str,
        *,
        name: str | None = None,
        force: bool = False,
    ) -> ClientRun:
        """Open a client run of a job started elsewhere (1 request, no read).

        The job's run ID is propagated from the orchestrator; it must be a *base* run ID.
        This process cannot know whether the row exists already (a restarted worker), so the
        open is written at once and writes nothing an existing row holds: if the row exists,
        the run continues from its stored totals; if it ended, the open is refused with
        :class:`~jobtrack_airtable.errors.TerminalRunError` unless ``force=True``.

        >>> with tracker.client("250930-141522", "Guy-Wilson") as run:  # doctest: +SKIP
        ...     run.add(profiles_examined=10)
        """
        return self.open_clients(job_run_id, [(client_id, name)], force=force)[0]

    def open_clients(
        self,
        job_run_id: BaseRunId | str,
        clients: Iterable[str | tuple[str, str | None]],
        *,
        force: bool = False,
    ) -> list[ClientRun]:
        """Open many client runs of a job started elsewhere at once: ⌈N/10⌉ requests.

        ``clients`` holds client IDs or ``(client ID, name)`` tuples.  Every one is validated
        before the first request.  Existing rows are handled as in :meth:`client`; a
        refusal raises :class:`~jobtrack_airtable.errors.TerminalRunError` for the first
        ended run, with the runs that did open in its ``runs`` attribute.
        """
        return self._open(as_base_run_id(job_run_id), clients, new=False, force=force)

    def _open(
        self,
        base: BaseRunId,
        clients: Iterable[str | tuple[str, str | None]],
        *,
        new: bool,
        force: bool,
    ) -> list[ClientRun]:
        self._check_open("opening a client run")
        specs = _client_specs(clients)
        if not new:
            self._not_exclusive(base)
        if not new:
            # Pending writes first, so that the probe sees this process's own earlier writes
            # of these rows (a run of the same client closed a moment ago).
            self._commit.drain()
        runs = [
            ClientRun(self, with_client(base, cid), client_id=cid, name=cname, new=new, force=force)
            for cid, cname in specs
        ]
        # Before anything is stored or sent: a second holder would write its own totals.
        self._hold(runs)
        for run in runs:
            with run._lock:
                self._persist(run)
        self._commit.mark(*runs)
        if not new:
            # The open must answer now (continue, or refuse), so it goes out at once,
            # together with whatever else is pending.
            self._commit.drain()
            refused = [r for r in runs if r.refusal is not None]
            if refused:
                error = refused[0].refusal
                assert error is not None
                error.runs = [r for r in runs if r.refusal is None]  # type: ignore[attr-defined]
                raise error
        parent = self._spans.get(str(base))
        for r in runs:
            r._span = start_client_span(parent, str(r.run_id), r.client_id)
            log.info(
                "opened client run %s",
                r.run_id,
                extra={"run_id": str(r.run_id), "client_id": r.client_id},
            )
        return runs

    def _not_exclusive(self, base: BaseRunId) -> None:
        """A row of ``base`` is opened other than fresh through its job: if that job is
        exclusive, its completion must read its rows back."""
        job = self._exclusive_jobs.get(str(base))
        if job is not None:
            job._exclusive = False

    def attach_client_run(self, run_id: ClientRunId | str) -> ClientRun:
        """Resume a client run by its client run ID (1 read): totals continue from the row's
        values, so a worker restarted mid-run keeps counting instead of overwriting."""
        self._check_open("attach_client_run()")
        key = as_client_run_id(run_id)
        self._not_exclusive(key.base)
        row = self.repo.client_runs.find(key)
        if row is None:
            raise NotFoundError(
                f"no client run with run ID {str(key)!r}", status=404, error_type="NOT_FOUND"
            )
        run = ClientRun(
            self,
            key,
            client_id=key.client_id,
            name=row.client_name or key.client_id,
            new=False,
        )
        self._hold([run])
        run._adopt(row)
        return run


def _default_origin() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def _client_specs(clients: Iterable[str | tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    if isinstance(clients, str | bytes | Mapping) or not isinstance(clients, Iterable):
        # A lone string would otherwise open one client per character.
        raise InvalidClientIdError(clients, "expected a list of client IDs")
    specs: list[tuple[str, str | None]] = []
    for item in clients:
        if isinstance(item, str):
            cid, cname = item, None
        elif isinstance(item, tuple) and len(item) == 2:
            cid, cname = item
        else:
            # Never unpack anything else: {"id": …, "name": …} would open client "id".
            raise InvalidClientIdError(item, "expected a client ID or a (client ID, name) tuple")
        if cname is not None:
            # Checked now: the open itself is written later, with other runs' writes.
            if not isinstance(cname, str):
                raise InvalidInputError(f"client name must be a string, got {show(cname)}")
            if cname and (problem := text_problem(cname, "client name")):
                raise InvalidInputError(problem)
        cid = validate_client_id(cid)
        if any(cid == seen for seen, _ in specs):
            # Two objects for one row would each write their own totals over the other's.
            raise InvalidClientIdError(cid, "listed twice: one client run per client")
        specs.append((cid, cname))
    return specs


class Job(EndsOnExit):
    """A started (or attached) job.  A context manager: leaving it completes the job.

    Every write after the start goes by the row's record ID (never by Run ID), so another
    host's short-lived claim row for the same Run ID cannot make it fail.
    """

    #: Its OpenTelemetry span, when tracing is on and this process started it.
    _span: Any = None

    def __init__(
        self,
        tracker: Tracker,
        run_id: BaseRunId,
        *,
        stream: int,
        notes: Notes,
        status: Status,
        record_id: str | None = None,
        attached: bool = False,
    ) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.stream = stream
        self.status = status
        self.record_id = record_id
        self._notes = notes
        self._attached = attached
        # Clients opened through this object: a second open of one of them may meet its row.
        self._opened: set[str] = set()
        # Their runs: those still open when the job ends are closed with it.
        self._runs: list[ClientRun] = []
        # Guards the two above: threads may open clients of one job at once.
        self._lock = threading.Lock()
        forks.register(self, Job._fresh_lock)
        # An exclusive job's runs, every one (see _client_rows).
        self._exclusive_runs: list[ClientRun] = []
        self._log_extra = {"run_id": str(run_id)}

    def __repr__(self) -> str:
        return f"Job(run_id={str(self.run_id)!r}, status={self.status.value!r})"

    def _fresh_lock(self) -> None:
        self._lock = threading.Lock()  # after a fork (see jobtrack_airtable.forks)

    def _end_ok(self) -> None:
        self.complete()

    # ------------------------------------------------------------ the outbox

    _version = 0
    #: How the job was asked to end, kept until Airtable holds it.
    _final: FinalIntent | None = None
    _heartbeat_due = False

    @classmethod
    def restore(cls, tracker: Tracker, state: JobState, version: int) -> Job:
        """A job rebuilt from an outbox entry another process left, to be replayed."""
        notes = Notes(None, tracker.clock)
        notes.lines = list(state.notes)
        job = cls(
            tracker,
            as_base_run_id(state.run_id),
            stream=state.stream,
            notes=notes,
            status=Status.RUNNING,
            record_id=state.record_id,
            attached=True,
        )
        job._claim_marker = state.claim
        job._final = state.final
        job._heartbeat_due = state.heartbeat
        job._version = version
        return job

    def _outbox_key(self) -> str:
        return entry_key(self.tracker.conn.base_id, JOBS_TABLE, str(self.run_id))

    def _persist(self) -> None:
        """Store what this job still has to write durably, before the call returns."""
        tracker = self.tracker
        if tracker._sealed:
            raise TrackerClosedError(str(self.run_id))
        state = JobState(
            run_id=str(self.run_id),
            stream=self.stream,
            record_id=self.record_id,
            notes=list(self._notes.lines),
            heartbeat=self._heartbeat_due,
            final=self._final,
            claim=self._claim_marker,
        )
        # The store raises the version above whatever an earlier object of this job (an
        # attach, a replay) left: the version stored is the one to retire.
        self._version = tracker.outbox.put(
            self._outbox_key(), self._version + 1, state.dumps(), tracker._owner
        )

    def _synced(self, call: Callable[[], T]) -> T:
        """``call()`` writes the persisted state: retire the entry once Airtable holds it;
        keep it (noting why) when Airtable refuses, for the next synchronous point."""
        tracker = self.tracker
        version = self._version
        try:
            result = call()
        except TRACKING_ERRORS as exc:
            tracker.outbox.refused(self._outbox_key(), version, f"{type(exc).__name__}: {exc}")
            tracker._refused_jobs[str(self.run_id)] = self
            raise
        tracker.outbox.retire(self._outbox_key(), version)
        tracker._refused_jobs.pop(str(self.run_id), None)
        return result

    def _replay(self) -> None:
        """Write what the entry holds: the completion (aggregates recomputed now), else
        the pending note lines and Last Updated."""
        final = self._final
        if final is not None and not self.status.is_terminal:
            self._finish(
                final.status,
                force=final.force,
                note=final.note,
                fit=final.fit,
                error=final.error,
                replaying=True,
            )
        elif self._notes.lines or self._heartbeat_due:
            self._synced(self._write_notes)
        else:
            self._synced(lambda: None)

    def _end_failed(self, exc: BaseException) -> None:
        self._finish(Status.FAILED, note=f"failed: {error_text(exc)}", fit=True, error=exc)

    # ------------------------------------------------------------ client runs

    def client(self, client_id: str, *, name: str | None = None, force: bool = False) -> ClientRun:
        """Open one client run of this job.

        The open is group-committed with the run's later writes (a run opened and closed
        within one flush interval costs one record of one request).  A client this job
        already opened, or any client of an attached job, may have a row: that open is
        written at once and handled as :meth:`Tracker.client` describes (continue from
        the stored totals; refuse an ended run unless ``force=True``).

        >>> with job.client("Guy-Wilson", name="Guy Wilson") as run:  # doctest: +SKIP
        ...     run.add(profiles_examined=10, profile_tokens=900)
        """
        return self.open_clients([(client_id, name)], force=force)[0]

    def open_clients(
        self, clients: Iterable[str | tuple[str, str | None]], *, force: bool = False
    ) -> list[ClientRun]:
        """Open many client runs of this job: ⌈N/10⌉ records' worth of requests.

        >>> runs = job.open_clients(["Guy-Wilson", ("Ana-Jones", "Ana Jones")])  # doctest: +SKIP
        """
        self.tracker._check_open("client()")
        if self.status.is_terminal:
            # A new Running row under an ended job is what sync would have to repair.
            raise JobEndedError(str(self.run_id), self.status.value, "opening a client run")
        specs = _client_specs(clients)
        ids = [cid for cid, _ in specs]
        with self._lock:
            # Rows of a job this process started are new unless this job opened them
            # already (claimed here, under the lock, so two threads cannot both see new).
            new = not self._attached and not (self._opened & set(ids)) and len(set(ids)) == len(ids)
            self._opened.update(ids)
        runs = self.tracker._open(as_base_run_id(self.run_id), specs, new=new, force=force)
        with self._lock:
            self._runs = [r for r in self._runs if not r.status.is_terminal] + runs
            if self._exclusive:
                self._exclusive_runs.extend(runs)
        return runs

    def _close_open_runs(self, reason: str) -> None:
        """End the client runs this job opened that are still open, as ``Failed``: the worker
        never said they finished (``Completed`` would be a guess), and a ``Running`` row under
        an ended job is what ``sync`` would otherwise have to repair."""
        with self._lock:
            runs, self._runs = self._runs, []
        for run in runs:
            if run.refusal is None and not run.status.is_terminal:
                log.warning(
                    "client run %s was still open when job %s ended; closing it as Failed",
                    run.run_id,
                    self.run_id,
                    extra=run._log_extra,
                )
                run.close(Status.FAILED, error=reason)

    #: Started with ``exclusive=True`` and still known to be all of its rows.
    _exclusive = False
    #: Whether the last completion read the client rows back.
    _read_back = True

    def _client_rows(self) -> list[ClientRunRow]:
        """The job's client rows: as acknowledged to this tracker when the job is exclusive
        and that is all of it, else read back (⌈N/100⌉ requests)."""
        tracker = self.tracker
        if self._exclusive:
            known = acknowledged_rows(
                self._exclusive_runs, tracker.outbox, tracker.conn.base_id, str(self.run_id)
            )
            if known is not None:
                self._read_back = False
                return known
        self._read_back = True
        return tracker.repo.client_runs.of_job(self.run_id)

    # ------------------------------------------------------------ job writes

    #: A corrected Start Time the job's next write carries (see :meth:`Tracker.job`).
    _start_fix: str | None = None

    def _write(self, values: dict[str, Any]) -> JobRow:
        values = {"run_id": str(self.run_id), **values}
        if self._start_fix is not None:
            values.setdefault("start_time", self._start_fix)
        with watch() as outcome:
            try:
                [(row, _)] = self.tracker.repo.jobs.write([(self.record_id, values)])
            finally:
                # Failed in the end or not, an attempt given up on may still be applied.
                self._maybe_late(outcome)
        self.record_id = row.record_id
        self._start_fix = None
        self._last_values = values
        return row

    # -------------------------------------------------- writes applied late

    #: The claim marker of the job's start (its copies, created late, are ours to delete).
    _claim_marker: str | None = None
    #: Until when (epoch s) a job write whose answer timed out may still be applied.
    _unsettled_until = 0.0
    _last_values: dict[str, Any] | None = None

    def _maybe_late(self, outcome: Outcome) -> None:
        """A write with an attempt given up on while in flight (a read timeout, not a wait
        for the limiter or a 429 penalty: see :class:`~..transport.adapter.Outcome`) may
        still be applied by the server (a second start row, older notes over newer ones)."""
        conn = self.tracker.conn
        if outcome.maybe_late:
            until = time.time() + conn.settings.settle_seconds
            self._unsettled_until = max(self._unsettled_until, until)

    def _settle(self, row: JobRow) -> JobRow:
        """After the job's final write: wait out the settle window of a timed-out write,
        then delete start rows created late and rewrite the final state if a late write
        overwrote it (a list of the Run ID's rows: 1 request, + the repairs)."""
        for _ in range(3):
            if not self._unsettled_until:
                return row
            while (left := self._unsettled_until - time.time()) > 0:
                time.sleep(min(left, 1.0))
            self._unsettled_until = 0.0
            repo = self.tracker.repo
            records = repo.list_records(
                "jobs", formula=repo.key_formula("jobs", [str(self.run_id)])
            )
            rows = [repo.jobs.row(r) for r in records]
            marker = self._claim_marker
            copies = [
                r.record_id
                for r in rows
                if r.record_id != self.record_id and marker and marker in (r.system_notes or "")
            ]
            if copies:
                log.warning(
                    "job %s: removing %d start row(s) the server created late",
                    self.run_id,
                    len(copies),
                    extra=self._log_extra,
                )
                repo.delete("jobs", copies)
            mine = next((r for r in rows if r.record_id == self.record_id), None)
            written = self._last_values or {}
            notes = written.get("system_notes")
            holds = mine is not None
            if mine is not None and written.get("status"):
                holds = mine.status is self.status
            if mine is not None and notes:
                holds = holds and notes in (mine.system_notes or "")
            if not holds and written:
                log.warning(
                    "job %s: a write applied late overwrote the final state; writing it again",
                    self.run_id,
                    extra=self._log_extra,
                )
                row = self._write(written)
        return row

    def _current(self) -> JobRow | None:
        """The job row as stored now (1 request): by record ID, else by Run ID."""
        jobs = self.tracker.repo.jobs
        row = jobs.get(self.record_id) if self.record_id else None
        if row is None:
            row = jobs.find(self.run_id)
            if row is not None:
                self.record_id = row.record_id
        return row

    def refresh(self) -> JobRow:
        """Read the job row as stored now (1 request), updating :attr:`status`.

        >>> job.refresh().aggregates["clients_processed"]        # doctest: +SKIP
        3
        """
        row = self._current()
        if row is None:
            raise NotFoundError(
                f"no job with run ID {str(self.run_id)!r}", status=404, error_type="NOT_FOUND"
            )
        if row.status is not None:
            self.status = row.status
        self._notes.server = row.system_notes or ""
        return row

    def _notes_lock(self) -> AbstractContextManager[bool]:
        """The lock of this job's row in the limiter's shared store, held from the read of
        its notes to the write: no other writer sharing the store can interleave."""
        conn = self.tracker.conn
        return row_locks(conn.limiter, [row_key(conn.base_id, "jobs", str(self.run_id))])

    def note(self, text: str) -> None:
        """Append a line to the job's System Notes (2 requests: the row's current notes are
        read, under the row's lock, so that lines another process appended are kept)."""
        # Kept from now on: if this write fails, the job's next write sends the line.
        self._notes.append(text)
        self._persist()
        mode = self.tracker.on_tracking_error
        run_guarded(mode, f"a note of job {self.run_id}", lambda: self._synced(self._write_notes))

    def _write_notes(self) -> None:
        with self._notes_lock():
            row = self._current()
            if row is not None:
                self._notes.server = row.system_notes or ""
            sent = len(self._notes.lines)
            row = self._write(
                {
                    "system_notes": self._notes.text,
                    "last_updated": to_airtable(self.tracker.clock()),
                }
            )
        self._notes.landed(row.system_notes, sent)
        self._heartbeat_due = False

    def heartbeat(self) -> None:
        """Refresh the job's Last Updated (1 request), so a long job with no other write is
        not taken for a stale one by ``sync``."""
        self._heartbeat_due = True
        self._persist()
        run_guarded(
            self.tracker.on_tracking_error,
            f"a heartbeat of job {self.run_id}",
            lambda: self._synced(self._beat),
        )

    def _beat(self) -> None:
        self._write({"last_updated": to_airtable(self.tracker.clock())})
        self._heartbeat_due = False

    def complete(
        self,
        status: Status | str | None = None,
        *,
        force: bool = False,
        note: str | None = None,
    ) -> JobRow | None:
        """Aggregate the client rows and close the job: ⌈N/100⌉ + 2 requests (plus the
        writes of client runs still pending); 2 for an exclusive job whose rows' acknowledged
        state is all known (:meth:`Tracker.job`).

        Durable before anything is sent: the completion's intent is in the outbox until
        Airtable acknowledges the write; refused, it is tried again at ``tracker.flush()`` /
        ``tracker.close()``, and a later tracker of the machine or ``outbox replay`` finishes
        it (the aggregates recomputed then) if this process does not.

        Without ``status`` the SPEC's rule decides (all failed → ``Failed``, nothing
        processed → ``No Leads To Score``, else ``Completed``).  The aggregates are
        recomputed from the client rows every time, never incremented, so completing twice
        (with ``force``) gives the same numbers.  ``note`` is appended to System Notes; a
        note that is not a string or does not fit is refused before any request.

        The job row is read first: if another writer (``sync``, an admin) already made it
        terminal, that status stays, unless ``force=True``, and the notes say so.

        Client runs this job opened and that are still open are closed first, as ``Failed``
        (Error Details: "still open when job … completed"): the worker never said they
        finished, and a ``Running`` client under an ended job is what ``sync`` would have to
        repair.  After it, ``job.client()`` raises
        :class:`~jobtrack_airtable.errors.JobEndedError`.

        Returns the row as written; ``None`` when the tracking base failed and
        ``JOBTRACK_ON_TRACKING_ERROR=warn`` (the failure is logged, the worker goes on).
        """
        if note is not None:
            # Refuse a bad note before reading anything.
            self._notes.check(note)
        return run_guarded(
            self.tracker.on_tracking_error,
            f"completing job {self.run_id}",
            lambda: self._finish(status, force=force, note=note, fit=False),
        )

    def _finish(
        self,
        status: Status | str | None,
        *,
        force: bool = False,
        note: str | None = None,
        fit: bool,
        error: BaseException | str | None = None,
        replaying: bool = False,
    ) -> JobRow:
        new = parse_status(status) if status is not None else None
        tracker = self.tracker
        if not replaying:
            # A closing tracker still writes what it kept (its close replays it).
            tracker._check_open("completing a job")
        if new is not None:
            # Refuse before reading anything.
            check_transition(self.status, new, force=force)
        # Durable before anything is sent: a process that dies from here on, or a refusal,
        # leaves the intent (never numbers) for a replay.
        self._final = FinalIntent(
            new.value if new is not None else None,
            force=force,
            note=note,
            fit=fit,
            error=error_text(error) if error is not None else None,
        )
        self._persist()

        def finish_now() -> JobRow:
            if error is None:
                self._close_open_runs(f"still open when job {self.run_id} completed")
            else:
                self._close_open_runs(f"job {self.run_id} failed: {error_text(error)}")
            # Unguarded, even in warn mode: a job must never be aggregated from client rows
            # whose pending writes did not land.
            tracker._commit.drain()
            # A client write applied late would skew the aggregates: wait it out, repair.
            tracker._commit.settle()
            with self._notes_lock():
                row = self._finish_locked(new, force=force, note=note, fit=fit, error=error)
            return self._settle(row)

        lines = len(self._notes.lines)
        try:
            return self._synced(finish_now)
        except BaseException:
            # The lines this attempt added are the intent's to add again, once.
            del self._notes.lines[lines:]
            raise

    def _finish_locked(
        self,
        new: Status | None,
        *,
        force: bool,
        note: str | None,
        fit: bool,
        error: BaseException | str | None,
    ) -> JobRow:
        """The read of the job row, its client rows and the write, under the row's lock."""
        tracker = self.tracker
        current = self._current()
        rows = self._client_rows()
        if new is None:
            new = completion_status(rows)
            check_transition(self.status, new, force=force)
        agg = aggregate(rows)
        now = tracker.clock()
        jobs = tracker.conn.schema.jobs
        # The job's own start stands; its end is now.
        values: dict[str, Any] = agg.to_values(jobs, times=False)
        values["last_updated"] = to_airtable(now)
        if current is not None:
            self._notes.server = current.system_notes or ""
        theirs = current.status if current is not None else None
        final = new
        # When this writer ended the job itself, a terminal row is its own doing.
        ended = (
            None
            if self.status.is_terminal
            else ended_elsewhere(
                theirs,
                new,
                force=force,
                origin=tracker.origin,
                did="finished the job",
                override="complete",
            )
        )
        if ended is not None:
            final, line = ended
            self._notes.append(line, fit=True)
        else:
            forced_note = check_transition(self.status, new, force=force)
            if forced_note:
                self._notes.append(forced_note, fit=True)
        if note:
            self._notes.append(note, fit=fit)
        if final is new:
            values.update({"status": new.value, "end_time": to_airtable(now)})
            if error is not None and jobs.has("error_details"):
                # Job Tracking has no Error Details in the default schema (the error goes to
                # System Notes); a base that adds the field gets it there too.
                values["error_details"] = error_text(error)
        sent = len(self._notes.lines)
        if sent:
            values["system_notes"] = self._notes.text
        row = self._write(values)
        tracker._spend(2 + (1 + len(rows) // 100 if self._read_back else 0))
        self._notes.landed(row.system_notes, sent)
        self.status = final
        end_span(
            self._span,
            final,
            error=error_text(error) if error is not None else None,
            metrics=row.aggregates,
        )
        self._span = None
        tracker._spans.pop(str(self.run_id), None)
        log.info(
            "job %s completed as %s (%d clients)",
            self.run_id,
            final.value,
            len(rows),
            extra=self._log_extra,
        )
        return row

    def fail(self, error: BaseException | str, *, force: bool = False) -> JobRow | None:
        """Close the job as ``Failed`` with the error in System Notes (and in Error Details,
        where the base has that optional field).  ``None`` when the write failed and
        ``JOBTRACK_ON_TRACKING_ERROR=warn``."""
        return run_guarded(
            self.tracker.on_tracking_error,
            f"failing job {self.run_id}",
            lambda: self._finish(
                Status.FAILED,
                force=force,
                note=f"failed: {error_text(error)}",
                fit=True,
                error=error,
            ),
        )
