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
  group-committed (:mod:`jobtrack_airtable.commit`): up to 10 runs per request, at most one
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
from datetime import UTC, datetime, tzinfo
from types import TracebackType
from typing import Any, Self

from .client import Connection
from .commit import GroupCommit
from .errors import (
    InvalidClientIdError,
    InvalidInputError,
    NotFoundError,
    TerminalRunError,
    UnknownMetricError,
    show,
)
from .metrics import (
    COUNT_KEYS,
    ClientMetrics,
    ClientRunRow,
    JobRow,
    aggregate,
    completion_status,
    validate_metrics,
)
from .repository import Repository
from .run_ids import (
    BaseRunId,
    ClientRunId,
    as_base_run_id,
    as_client_run_id,
    generate_base_run_id,
    validate_client_id,
    with_client,
)
from .schema import MAX_TEXT_LENGTH, text_problem
from .settings import Settings
from .statuses import Status, check_transition, parse_status
from .timeutil import to_airtable, utcnow

log = logging.getLogger(__name__)

#: Error Details is a long-text field (100,000 characters); keep a margin.
MAX_ERROR_DETAILS = 50_000
#: How many seconds a job start moves forward looking for a free run ID.
MAX_START_ATTEMPTS = 60
#: Fields a client run may ``set`` besides metrics.
CLIENT_RUN_EXTRA_FIELDS = ("apify_run_id", "client_name")


def _sendable(text: str) -> str:
    """``text`` with unpaired surrogates (undecodable bytes in an error message) written as
    ``\\udcxx`` escapes: they cannot be sent as UTF-8, and a failure must still be recorded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error_text(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return _sendable(text[:MAX_ERROR_DETAILS])


def _did_work(totals: ClientMetrics) -> bool:
    """Whether any count is non-zero (costs alone are not work)."""
    return any(totals.values().get(k) for k in COUNT_KEYS)


class _Notes:
    """System Notes as this process writes them: the row's text as last seen on the server
    plus the lines this process appended since.  Written, the text is always *server text +
    new lines*, so nothing another writer appended is erased (the caller refreshes
    ``server`` from a read or a write response just before writing).

    A caller's line must be a string that fits: System Notes is a long-text field of at most
    100,000 characters, and a line Airtable would refuse, once appended, would fail every
    later write of the row (metrics included).  So :meth:`append` refuses it, changing
    nothing; the library's own lines (``fit=True``: failures, forced statuses) are cut to fit
    instead, so that recording a failure never fails.
    """

    def __init__(self, server: str | None, clock: Callable[[], datetime]) -> None:
        self.server = server or ""
        self.lines: list[str] = []
        self._clock = clock

    @property
    def text(self) -> str:
        return "\n".join([t for t in (self.server, *self.lines) if t])

    def check(self, line: Any) -> None:
        """Raise as :meth:`append` would, changing nothing."""
        self._stamped(line, fit=False)

    def _stamped(self, line: Any, *, fit: bool) -> str:
        stamp = self._clock().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        current = self.text
        head = f"{current}\n[{stamp}] " if current else f"[{stamp}] "
        room = max(0, MAX_TEXT_LENGTH - len(head))
        if fit:
            line = _sendable(str(line))[:room]
        elif not isinstance(line, str):
            raise InvalidInputError(f"a note must be a string, got {show(line)}")
        elif problem := text_problem(line, "the note", limit=room):
            raise InvalidInputError(f"{problem} (System Notes already holds {len(head)})")
        return f"[{stamp}] {line}"

    def append(self, line: Any, *, fit: bool = False) -> str:
        self.lines.append(self._stamped(line, fit=fit))
        return self.text

    def landed(self, server: str | None, sent: int) -> None:
        """A write carrying the first ``sent`` new lines landed; ``server`` is the row's
        text in its response."""
        self.server = server or ""
        del self.lines[:sent]


class Tracker:
    """Entry point for workers: starts jobs and opens client runs.

    Build it with :meth:`from_env` (reads ``AIRTABLE_API_KEY`` / ``AIRTABLE_BASE_ID`` and the
    other settings) or from an existing :class:`~jobtrack_airtable.client.Connection`.  Use
    it as a context manager (or call :meth:`close`): leaving writes every pending change and
    closes the HTTP session and the limiter.  ``clock`` and ``tz`` are injectable for tests.

    >>> with Tracker.from_settings(srv.settings()) as tracker:    # doctest: +SKIP
    ...     job = tracker.job()
    """

    def __init__(
        self,
        conn: Connection,
        *,
        clock: Callable[[], datetime] = utcnow,
        tz: tzinfo | None = None,
        flush_interval: float | None = None,
        origin: str | None = None,
        claim_marker: Callable[[], str] | None = None,
    ) -> None:
        settings = conn.settings
        self.conn = conn
        self.repo = Repository(conn)
        self.clock = clock
        self.tz = tz if tz is not None else settings.tz
        interval = flush_interval if flush_interval is not None else settings.flush_interval
        #: Who writes, as recorded in System Notes (host and process by default).
        self.origin = origin or f"{socket.gethostname()} pid {os.getpid()}"
        self._claim_marker = claim_marker or (lambda: uuid.uuid4().hex[:12])
        self._lock = threading.Lock()
        self._last_issued: BaseRunId | None = None
        self._commit = GroupCommit(self.repo, interval=interval, clock=clock)
        self._closed = False

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

    def flush(self) -> None:
        """Write every pending client-run change now (⌈K/10⌉ requests for K runs)."""
        self._commit.drain()

    def close(self) -> None:
        """Write every pending change, then close the HTTP session and the limiter.
        Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            self._commit.close()
        finally:
            self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def job(self, *, stream: int = 1, note: str | None = None) -> Job:
        """Start a job: a ``Running`` row with a fresh, unique run ID (2 requests).

        Uniqueness across hosts cannot come from a check-then-create (two orchestrators can
        both see an ID free), so the start *creates* the row carrying a random claim marker,
        then reads every row of that ID: the oldest row wins.  A loser deletes its row and
        moves to the next second; copies of its own row left by a retried create (lost
        response) are deleted too.  The winner keeps its row's record ID and writes by it
        from then on.

        >>> with tracker.job(stream=2, note="nightly") as job:   # doctest: +SKIP
        ...     print(job.run_id)
        250930-141522
        """
        if isinstance(stream, bool) or not isinstance(stream, int) or stream < 1:
            raise InvalidInputError(f"stream must be an integer ≥ 1, got {show(stream)}")
        marker = self._claim_marker()
        candidate = self._next_candidate()
        for _ in range(MAX_START_ATTEMPTS):
            now = self.clock()
            notes = _Notes(None, self.clock)
            notes.append(f"started on {self.origin} (claim {marker})", fit=True)
            if note:
                notes.append(note)
            values = {
                "run_id": str(candidate),
                "status": Status.RUNNING.value,
                "stream": stream,
                "start_time": to_airtable(now),
                "last_updated": to_airtable(now),
                "system_notes": notes.text,
            }
            claimed = self.repo.jobs.claim(values, marker)
            if claimed is not None:
                notes.landed(notes.text, len(notes.lines))
                job = Job(
                    self,
                    candidate,
                    stream=stream,
                    notes=notes,
                    status=Status.RUNNING,
                    record_id=claimed.record_id,
                )
                log.info(
                    "started job %s (stream %d)",
                    candidate,
                    stream,
                    extra={"run_id": str(candidate)},
                )
                return job
            log.info(
                "run ID %s is taken; trying the next second",
                candidate,
                extra={"run_id": str(candidate)},
            )
            candidate = candidate.next_second()
            with self._lock:
                if self._last_issued is None or candidate > self._last_issued:
                    self._last_issued = candidate
        raise InvalidInputError(f"no free run ID within {MAX_START_ATTEMPTS} s after {candidate}")

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
            notes=_Notes(row.system_notes, self.clock),
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
        specs = _client_specs(clients)
        if not new:
            # Pending writes first, so that the probe sees this process's own earlier writes
            # of these rows (a run of the same client closed a moment ago).
            self._commit.drain()
        runs = [
            ClientRun(
                self, with_client(base, cid), client_id=cid, name=cname or cid, new=new, force=force
            )
            for cid, cname in specs
        ]
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
        for r in runs:
            log.info(
                "opened client run %s",
                r.run_id,
                extra={"run_id": str(r.run_id), "client_id": r.client_id},
            )
        return runs

    def attach_client_run(self, run_id: ClientRunId | str) -> ClientRun:
        """Resume a client run by its client run ID (1 read): totals continue from the row's
        values, so a worker restarted mid-run keeps counting instead of overwriting."""
        key = as_client_run_id(run_id)
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
        run._adopt(row)
        return run


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
        specs.append((validate_client_id(cid), cname))
    return specs


class _EndsOnExit:
    """A run that always ends when its ``with`` block does: normally on success, as
    ``Failed`` on an exception (including KeyboardInterrupt), never left ``Running``."""

    status: Status
    run_id: str
    _log_extra: dict[str, str]

    def _end_ok(self) -> None:
        raise NotImplementedError

    def _end_failed(self, exc: BaseException) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.status.is_terminal:
            return
        if exc is None:
            self._end_ok()
            return
        try:
            self._end_failed(exc)
        except Exception:
            # Never mask the worker's own exception with a tracking failure.
            log.exception("could not record the failure of %s", self.run_id, extra=self._log_extra)


class Job(_EndsOnExit):
    """A started (or attached) job.  A context manager: leaving it completes the job.

    Every write after the start goes by the row's record ID (never by Run ID), so another
    host's short-lived claim row for the same Run ID cannot make it fail.
    """

    def __init__(
        self,
        tracker: Tracker,
        run_id: BaseRunId,
        *,
        stream: int,
        notes: _Notes,
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
        self._log_extra = {"run_id": str(run_id)}

    def __repr__(self) -> str:
        return f"Job(run_id={str(self.run_id)!r}, status={self.status.value!r})"

    def _end_ok(self) -> None:
        self.complete()

    def _end_failed(self, exc: BaseException) -> None:
        self._finish(Status.FAILED, note=f"failed: {_error_text(exc)}", fit=True, error=exc)

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
        specs = _client_specs(clients)
        ids = [cid for cid, _ in specs]
        # Rows of a job this process started are new unless this job opened them already.
        new = not self._attached and not (self._opened & set(ids)) and len(set(ids)) == len(ids)
        runs = self.tracker._open(as_base_run_id(self.run_id), specs, new=new, force=force)
        self._opened.update(ids)
        return runs

    # ------------------------------------------------------------ job writes

    def _write(self, values: dict[str, Any]) -> JobRow:
        values = {"run_id": str(self.run_id), **values}
        [(row, _)] = self.tracker.repo.jobs.write([(self.record_id, values)])
        self.record_id = row.record_id
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

    def note(self, text: str) -> None:
        """Append a line to the job's System Notes (2 requests: the row's current notes are
        read, so that lines another process appended are kept)."""
        self._notes.check(text)
        row = self._current()
        if row is not None:
            self._notes.server = row.system_notes or ""
        self._notes.append(text)
        sent = len(self._notes.lines)
        row = self._write(
            {"system_notes": self._notes.text, "last_updated": to_airtable(self.tracker.clock())}
        )
        self._notes.landed(row.system_notes, sent)

    def heartbeat(self) -> None:
        """Refresh the job's Last Updated (1 request), so a long job with no other write is
        not taken for a stale one by ``sync``."""
        self._write({"last_updated": to_airtable(self.tracker.clock())})

    def complete(
        self,
        status: Status | str | None = None,
        *,
        force: bool = False,
        note: str | None = None,
    ) -> JobRow:
        """Aggregate the client rows and close the job: ⌈N/100⌉ + 2 requests (plus the
        writes of client runs still pending).

        Without ``status`` the SPEC's rule decides (all failed → ``Failed``, nothing
        processed → ``No Leads To Score``, else ``Completed``).  The aggregates are
        recomputed from the client rows every time, never incremented, so completing twice
        (with ``force``) gives the same numbers.  ``note`` is appended to System Notes; a
        note that is not a string or does not fit is refused before any request.

        The job row is read first: if another writer (``sync``, an admin) already made it
        terminal, that status stays, unless ``force=True``, and the notes say so.
        """
        if note is not None:
            # Refuse a bad note before reading anything.
            self._notes.check(note)
        return self._finish(status, force=force, note=note, fit=False)

    def _finish(
        self,
        status: Status | str | None,
        *,
        force: bool = False,
        note: str | None = None,
        fit: bool,
        error: BaseException | str | None = None,
    ) -> JobRow:
        new = parse_status(status) if status is not None else None
        if new is not None:
            # Refuse before reading anything.
            check_transition(self.status, new, force=force)
        tracker = self.tracker
        tracker.flush()
        current = self._current()
        rows = tracker.repo.client_runs.of_job(self.run_id)
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
        if theirs is not None and theirs.is_terminal and not self.status.is_terminal:
            if theirs is new:
                pass
            elif force:
                self._notes.append(
                    f"{tracker.origin} finished the job as {new.value!r}; status forced from "
                    f"{theirs.value!r}, set by another writer (force=True)",
                    fit=True,
                )
            else:
                final = theirs
                self._notes.append(
                    f"{tracker.origin} finished the job as {new.value!r}, but another writer "
                    f"had already marked it {theirs.value!r}; status left {theirs.value!r} "
                    "(complete(force=True) overrides)",
                    fit=True,
                )
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
                values["error_details"] = _error_text(error)
        sent = len(self._notes.lines)
        if sent:
            values["system_notes"] = self._notes.text
        row = self._write(values)
        self._notes.landed(row.system_notes, sent)
        self.status = final
        log.info(
            "job %s completed as %s (%d clients)",
            self.run_id,
            final.value,
            len(rows),
            extra=self._log_extra,
        )
        return row

    def fail(self, error: BaseException | str, *, force: bool = False) -> JobRow:
        """Close the job as ``Failed`` with the error in System Notes (and in Error Details,
        where the base has that optional field)."""
        return self._finish(
            Status.FAILED,
            force=force,
            note=f"failed: {_error_text(error)}",
            fit=True,
            error=error,
        )


class ClientRun(_EndsOnExit):
    """One client's run inside a job.  A context manager: leaving it closes the run.

    ``add()``, ``set()``, ``note()`` and ``close()`` change the run's state in the process;
    the tracker's group commit writes the newest state (absolute totals) with other runs'
    writes, at most one ``flush_interval`` later; ``flush()`` and ``close(wait=True)`` put it
    on the wire at once.
    """

    def __init__(
        self,
        tracker: Tracker,
        run_id: ClientRunId,
        *,
        client_id: str,
        name: str,
        new: bool,
        force: bool = False,
    ) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.client_id = client_id
        self.name = name
        self.status = Status.RUNNING
        #: The row's record ID, once a write told it.
        self.record_id: str | None = None
        #: Set when the open found the row already ended (and ``force`` was not given).
        self.refusal: TerminalRunError | None = None
        self._force = force
        # Totals: the row's stored totals (when it existed) + this process's changes; a key
        # this process ``set`` is absolute.
        self._base = ClientMetrics()
        self._local = ClientMetrics()
        self._set_keys: set[str] = set()
        self._extra: dict[str, Any] = {}
        self._notes = _Notes(None, tracker.clock)
        # An open that must learn whether the row exists writes nothing that row holds.
        self._probe = not new
        self._status_due: Status | None = Status.RUNNING if new else None
        self._start_due: str | None = to_airtable(tracker.clock()) if new else None
        self._end: str | None = None
        self._error: str | None = None
        self._closed_by_us = False
        self._close_force = False
        self._version = 1
        self._written_version = 0
        self._heartbeat = False
        self._worked = False
        self._lock = threading.RLock()
        self._log_extra = {"run_id": str(run_id), "client_id": client_id}

    def __repr__(self) -> str:
        return f"ClientRun(run_id={str(self.run_id)!r}, status={self.status.value!r})"

    @property
    def totals(self) -> ClientMetrics:
        """The metric totals as the process knows them (written or pending), including the
        totals the row held when this run was re-opened."""
        with self._lock:
            base = {k: v for k, v in self._base.values().items() if k not in self._set_keys}
            return validate_metrics(base).plus(self._local)

    def _adopt(self, row: ClientRunRow) -> None:
        """Continue from a stored row (re-open, attach)."""
        self.record_id = row.record_id
        self._probe = False
        self._base = row.metrics
        self._notes.server = row.system_notes or ""
        self._worked = _did_work(row.metrics)
        if row.client_name:
            self.name = row.client_name
        if row.status is not None:
            self.status = row.status
        if row.status is None:
            # A row whose open was never confirmed (its worker died first): claim it.
            self._status_due = Status.RUNNING
            self._start_due = None if row.start_time else to_airtable(self.tracker.clock())
            self._changed()

    def _end_ok(self) -> None:
        self.close()

    def _end_failed(self, exc: BaseException) -> None:
        self.close(Status.FAILED, error=exc)

    def _check_open(self) -> None:
        if self.refusal is not None:
            raise self.refusal

    def _changed(self) -> None:
        """Record a change (under the run lock) and hand the run to the group commit."""
        self._version += 1

    def _mark(self) -> None:
        self.tracker._commit.mark(self)

    # --------------------------------------------------------------- metrics

    def add(self, **increments: Any) -> None:
        """Add to metric totals, e.g. ``run.add(profiles_examined=10, profile_tokens=900)``.

        Values are validated first (a bad one raises and changes nothing); the write is
        group-committed.  If that write fails even after the retry policy (429, 5xx,
        network), the totals stay pending for the next one: ``add`` does not raise for it.
        """
        self._check_open()
        delta = ClientMetrics.of(**increments)
        with self._lock:
            self._local = self._local.plus(delta)
            self._worked = self._worked or not delta.is_empty
            self._changed()
        self._mark()

    def set(self, **values: Any) -> None:
        """Set absolute values: metrics (``apify_costs=1.25``) or ``apify_run_id`` /
        ``client_name``.  Unknown names raise, listing what is allowed; so does a value
        Airtable would refuse (checked now, so that it cannot fail a later write).
        ``apify_run_id=None`` clears it; the client name cannot be cleared."""
        self._check_open()
        extra = {k: values.pop(k) for k in CLIENT_RUN_EXTRA_FIELDS if k in values}
        try:
            metrics = ClientMetrics.of(**values)
        except UnknownMetricError as exc:
            raise UnknownMetricError(exc.names, [*exc.allowed, *CLIENT_RUN_EXTRA_FIELDS]) from None
        for key, value in extra.items():
            if value is not None and not isinstance(value, str):
                raise InvalidInputError(f"{key} must be a string, got {show(value)}")
            if key == "client_name" and not value:
                # Clearing it would leave the row nameless while ``self.name`` kept the old one.
                raise InvalidInputError(
                    f"client_name must be a non-empty string, got {show(value)}"
                )
            if isinstance(value, str) and (problem := text_problem(value, key)):
                raise InvalidInputError(problem)
        with self._lock:
            self._local = self._local.merged(metrics)
            self._set_keys.update(metrics.values())
            if extra.get("client_name"):
                self.name = extra["client_name"]
            self._extra.update(extra)
            self._worked = self._worked or not metrics.is_empty
            self._changed()
        self._mark()

    def note(self, text: str) -> None:
        """Append a line to System Notes (written with the next group commit, merged into
        the row's current notes).  A note that is not a string or does not fit is refused,
        changing nothing."""
        self._check_open()
        with self._lock:
            self._notes.append(text)
            self._changed()
        self._mark()

    def flush(self, *, heartbeat: bool = False) -> bool:
        """Write pending changes now, with every other pending run's (⌈K/10⌉ requests);
        ``False`` when this run had nothing pending.

        With ``heartbeat=True`` it writes even when nothing is pending, refreshing Last
        Updated: call it during long silent phases so ``sync`` does not take a live run for
        a stale one.
        """
        self._check_open()
        with self._lock:
            if not self.dirty() and not heartbeat:
                return False
            if heartbeat:
                self._heartbeat = True
                self._changed()
        self._mark()
        self.tracker._commit.drain()
        return True

    def close(
        self,
        status: Status | str | None = None,
        *,
        error: BaseException | str | None = None,
        force: bool = False,
        wait: bool = False,
    ) -> ClientRunRow | None:
        """End the run: the final totals and status go out with the next group commit (at
        most one flush interval later, or at job completion / ``tracker.flush()`` / exit).
        With ``wait=True`` it is written now and the row as written is returned.

        Without ``status``: ``Failed`` if ``error`` is given, ``No Leads To Score`` if nothing
        was recorded, else ``Completed``.
        """
        self._check_open()
        with self._lock:
            if status is not None:
                new = parse_status(status)
            elif error is not None:
                new = Status.FAILED
            elif not self._worked or not _did_work(self.totals):
                new = Status.NO_LEADS
            else:
                new = Status.COMPLETED
            forced_note = check_transition(self.status, new, force=force)
            if forced_note:
                self._notes.append(forced_note, fit=True)
            self._status_due = new
            self._end = to_airtable(self.tracker.clock())
            self._error = _error_text(error) if error is not None else None
            self._closed_by_us = True
            self._close_force = force
            self.status = new
            self._changed()
        log.info("client run %s closed as %s", self.run_id, new.value, extra=self._log_extra)
        self._mark()
        if not wait:
            return None
        self.tracker._commit.drain()
        return self._row

    def fail(
        self, error: BaseException | str, *, force: bool = False, wait: bool = False
    ) -> ClientRunRow | None:
        """Close as ``Failed`` with ``error`` in Error Details."""
        return self.close(Status.FAILED, error=error, force=force, wait=wait)

    # ------------------------------------------------ the group commit's side

    _row: ClientRunRow | None = None

    def dirty(self) -> bool:
        return self.refusal is None and (self._written_version != self._version or self._heartbeat)

    def needs_read(self) -> bool:
        """Read the row before this write when it carries notes (to merge them into the
        row's current text) or ends a run this process has not written for half the stale
        threshold: only then can ``sync`` have ended it meanwhile (it ends ``Running`` rows
        silent for the whole threshold), so an active run's close costs no read."""
        with self._lock:
            if self._probe or not self.dirty():
                return False
            if self._notes.lines:
                return True
            if self._status_due is None or not self._status_due.is_terminal:
                return False
            quiet = time.monotonic() - self._last_write
            return quiet >= self.tracker.conn.settings.stale_after.total_seconds() / 2

    def observe(self, row: ClientRunRow | None) -> None:
        with self._lock:
            if row is None:
                # Gone (merged away by sync): the write by natural key lands on the survivor.
                self.record_id = None
                return
            self._notes.server = row.system_notes or ""
            theirs, ours = row.status, self._status_due
            if (
                theirs is None
                or not theirs.is_terminal
                or ours is None
                or theirs is ours
                or self._wrote_terminal
            ):
                return
            # Someone else (sync marking it stale, an admin) ended the run meanwhile.
            origin = self.tracker.origin
            if self._close_force:
                self._notes.append(
                    f"{origin} closed the run as {ours.value!r}; status forced from "
                    f"{theirs.value!r}, set by another writer (force=True)",
                    fit=True,
                )
                return
            self._notes.append(
                f"{origin} closed the run as {ours.value!r}, but another writer had already "
                f"marked it {theirs.value!r}; status left {theirs.value!r} "
                "(close(force=True) overrides)",
                fit=True,
            )
            self._status_due = None
            self._end = None
            self._error = None
            self.status = theirs

    _wrote_terminal = False
    #: ``time.monotonic()`` of the run's last landed write (0: adopted, never written).
    _last_write = 0.0

    def take(self, now: datetime) -> tuple[str | None, dict[str, Any], Any] | None:
        with self._lock:
            if not self.dirty():
                return None
            fields: dict[str, Any] = {
                "run_id": str(self.run_id),
                "client_id": self.client_id,
                "client_name": self.name,
                "last_updated": to_airtable(now),
            }
            if self._probe:
                # Nothing a stored row holds (status, times, totals, notes): see client_run.
                return None, fields, ("probe", self._version)
            table = self.tracker.conn.schema.client_runs
            fields.update(self.totals.to_values(table))
            fields.update(self._extra)
            status = self._status_due
            if status is not None:
                fields["status"] = status.value
                if self._start_due is not None:
                    fields["start_time"] = self._start_due
                if status.is_terminal:
                    fields["end_time"] = self._end
                    if self._error is not None:
                        fields["error_details"] = self._error
            sent = len(self._notes.lines)
            if sent:
                fields["system_notes"] = self._notes.text
            return self.record_id, fields, ("write", self._version, status, sent)

    def written(self, row: ClientRunRow, created: bool, token: Any) -> None:
        with self._lock:
            self.record_id = row.record_id
            self._last_write = time.monotonic()
            if token[0] == "probe":
                self._probe = False
                self._written_version = token[1]
                if created:
                    # A new row: the run's next write marks it Running with its start time.
                    self._status_due = Status.RUNNING
                    self._start_due = to_airtable(self.tracker.clock())
                    self._changed()
                elif row.status is not None and row.status.is_terminal and not self._force:
                    self.status = row.status
                    self.refusal = TerminalRunError(str(self.run_id), row.status.value)
                else:
                    previous = row.status
                    self._adopt(row)
                    if previous is not None and previous.is_terminal:
                        self.status = Status.RUNNING
                        self._status_due = Status.RUNNING
                        self._notes.append(
                            f"reopened by {self.tracker.origin} with force=True (was "
                            f"{previous.value!r}); totals continue from the stored ones",
                            fit=True,
                        )
                        self._changed()
                    log.info(
                        "client run %s already had a row (%s); continuing from its totals",
                        self.run_id,
                        previous.value if previous else "no status",
                        extra=self._log_extra,
                    )
                return
            _, version, status, sent = token
            self._notes.landed(row.system_notes, sent)
            self._last_write = time.monotonic()
            if version == self._version:
                self._written_version = version
                self._heartbeat = False
            sent_status: Status | None = status
            if sent_status is not None and sent_status is self._status_due:
                self._status_due = None
                self._start_due = None
                self._wrote_terminal = self._wrote_terminal or sent_status.is_terminal
            self._row = row

    def refused(self, error: Exception, token: Any) -> None:
        with self._lock:
            # Validated before queuing, so this is a base that changed under us; retrying
            # the same record would fail the same way.
            log.error(
                "client run %s: Airtable refused its write (%s); dropped",
                self.run_id,
                error,
                extra=self._log_extra,
            )
            self._written_version = self._version
            self._heartbeat = False
