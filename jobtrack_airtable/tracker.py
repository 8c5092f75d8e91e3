"""The worker API (SPEC §3.2): record a job and its client runs in a few lines.

>>> tracker = Tracker.from_env()                                  # doctest: +SKIP
>>> with tracker.job(stream=1) as job:                            # doctest: +SKIP
...     with job.client("Guy-Wilson", name="Guy Wilson") as run:
...         for chunk in chunks:
...             run.add(profiles_examined=len(chunk), profile_tokens=tokens)
...     # leaving the block aggregates the client rows and completes the job

Guarantees:

* a run always ends: an exception marks it ``Failed`` (with the error in Error Details for
  client runs, in System Notes for jobs); a client run that did no work ends
  ``No Leads To Score``;
* metric increments are accumulated in the process and written as absolute totals, so a
  retried write can never double-count, and coalesced by ``flush_interval`` so a thousand
  increments cost a handful of requests;
* a job start never makes two rows, even when two orchestrators start in the same second or a
  response is lost (see :meth:`Tracker.start_job`);
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
from .errors import (
    InvalidClientIdError,
    InvalidInputError,
    LimiterUnavailableError,
    UnknownMetricError,
    show,
)
from .metrics import COUNT_KEYS, ClientMetrics, ClientRunRow, JobRow, aggregate, completion_status
from .recovery import RETRYABLE
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
#: Failures of a deferred metric write that leave the totals pending (see ``_maybe_flush``).
_DEFERRED_WRITE_ERRORS: tuple[type[Exception], ...] = (*RETRYABLE, LimiterUnavailableError)


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
    """System Notes held in the process and appended to, never overwritten.

    A caller's line must be a string that fits: System Notes is a long-text field of at most
    100,000 characters, and a line Airtable would refuse, once appended, would fail every
    later write of the row (metrics included).  So :meth:`append` refuses it, changing
    nothing; the library's own lines (``fit=True``: failures, forced statuses) are cut to fit
    instead, so that recording a failure never fails.
    """

    def __init__(self, existing: str | None, clock: Callable[[], datetime]) -> None:
        self.text = existing or ""
        self._clock = clock

    def append(self, line: str, *, fit: bool = False) -> str:
        stamp = self._clock().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        head = f"{self.text}\n[{stamp}] " if self.text else f"[{stamp}] "
        room = max(0, MAX_TEXT_LENGTH - len(head))
        if fit:
            line = _sendable(str(line))[:room]
        elif not isinstance(line, str):
            raise InvalidInputError(f"a note must be a string, got {show(line)}")
        elif problem := text_problem(line, "the note", limit=room):
            raise InvalidInputError(f"{problem} (System Notes already holds {len(head)})")
        self.text = head + line
        return self.text


class Tracker:
    """Entry point for workers: starts jobs and opens client runs.

    Build it with :meth:`from_env` (reads ``AIRTABLE_API_KEY`` / ``AIRTABLE_BASE_ID`` and the
    other settings) or from an existing :class:`~jobtrack_airtable.client.Connection`.
    ``clock`` and ``tz`` are injectable for tests.
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
        self.flush_interval = (
            flush_interval if flush_interval is not None else settings.flush_interval
        )
        #: Who starts jobs, as written in System Notes (host and process by default).
        self.origin = origin or f"{socket.gethostname()} pid {os.getpid()}"
        self._claim_marker = claim_marker or (lambda: uuid.uuid4().hex[:12])
        self._lock = threading.Lock()
        self._last_issued: BaseRunId | None = None

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

    def start_job(self, *, stream: int = 1, note: str | None = None) -> Job:
        """Start a job: a ``Running`` row with a fresh, unique run ID (2 requests).

        Uniqueness across hosts cannot come from a check-then-create (two orchestrators can
        both see an ID free), so the start *creates* the row carrying a random claim marker,
        then reads every row of that ID: the oldest row wins.  A loser deletes its row and
        moves to the next second; copies of its own row left by a retried create (lost
        response) are deleted too.
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
            record = self.repo.claim("jobs", values, marker)
            if record is not None:
                job = Job(self, candidate, stream=stream, notes=notes, status=Status.RUNNING)
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

    def job(self, *, stream: int = 1, note: str | None = None) -> Job:
        """Alias of :meth:`start_job` that reads well in a ``with`` statement."""
        return self.start_job(stream=stream, note=note)

    def attach_job(self, run_id: BaseRunId | str) -> Job:
        """Attach to a job started elsewhere, by its propagated run ID (1 request).

        Raises :class:`~jobtrack_airtable.errors.NotFoundError` if no such job exists.
        """
        key = as_base_run_id(run_id)
        row = self.repo.find_job(key)
        if row is None:
            from .errors import NotFoundError

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
            attached=True,
        )

    # ------------------------------------------------------------- client runs

    def client_run(
        self,
        job_run_id: BaseRunId | str,
        client_id: str,
        *,
        name: str | None = None,
    ) -> ClientRun:
        """Open a client run of a job started elsewhere (1 request, no read).

        The job's run ID is propagated from the orchestrator; it must be a *base* run ID.
        """
        return self.open_client_runs(job_run_id, [(client_id, name)])[0]

    def open_client_runs(
        self,
        job_run_id: BaseRunId | str,
        clients: Iterable[str | tuple[str, str | None]],
    ) -> list[ClientRun]:
        """Open many client runs at once: ⌈N/10⌉ requests.

        ``clients`` holds client IDs or ``(client ID, name)`` tuples.  Every one is validated
        before the first request.
        """
        base = as_base_run_id(job_run_id)
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
                raise InvalidClientIdError(
                    item, "expected a client ID or a (client ID, name) tuple"
                )
            specs.append((validate_client_id(cid), cname))
        runs = [
            ClientRun(self, with_client(base, cid), client_id=cid, name=cname or cid)
            for cid, cname in specs
        ]
        now = self.clock()
        self.repo.upsert_client_runs([r._open_values(now) for r in runs])
        for r in runs:
            r._last_flush = time.monotonic()
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
        row = self.repo.find_client_run(key)
        if row is None:
            from .errors import NotFoundError

            raise NotFoundError(
                f"no client run with run ID {str(key)!r}", status=404, error_type="NOT_FOUND"
            )
        run = ClientRun(
            self,
            key,
            client_id=key.client_id,
            name=row.client_name or key.client_id,
            notes=row.system_notes,
            status=row.status or Status.RUNNING,
        )
        run._totals = row.metrics
        run._opened = True
        run._last_flush = time.monotonic()
        return run


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
    """A started (or attached) job.  A context manager: leaving it completes the job."""

    def __init__(
        self,
        tracker: Tracker,
        run_id: BaseRunId,
        *,
        stream: int,
        notes: _Notes,
        status: Status,
        attached: bool = False,
    ) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.stream = stream
        self.status = status
        self._notes = notes
        self._attached = attached
        self._log_extra = {"run_id": str(run_id)}

    def __repr__(self) -> str:
        return f"Job(run_id={str(self.run_id)!r}, status={self.status.value!r})"

    def _end_ok(self) -> None:
        self.complete()

    def _end_failed(self, exc: BaseException) -> None:
        self._finish(Status.FAILED, note=f"failed: {_error_text(exc)}", fit=True, error=exc)

    def client(self, client_id: str, *, name: str | None = None) -> ClientRun:
        """Open one client run of this job (1 request)."""
        return self.tracker.client_run(self.run_id, client_id, name=name)

    def open_clients(self, clients: Iterable[str | tuple[str, str | None]]) -> list[ClientRun]:
        """Open many client runs of this job: ⌈N/10⌉ requests."""
        return self.tracker.open_client_runs(self.run_id, clients)

    def note(self, text: str) -> None:
        """Append a line to the job's System Notes (1 request)."""
        now = self.tracker.clock()
        self.tracker.repo.upsert_job(
            {
                "run_id": str(self.run_id),
                "system_notes": self._notes.append(text),
                "last_updated": to_airtable(now),
            }
        )

    def heartbeat(self) -> None:
        """Refresh the job's Last Updated (1 request), so a long job with no other write is
        not taken for a stale one by ``sync``."""
        self.tracker.repo.upsert_job(
            {"run_id": str(self.run_id), "last_updated": to_airtable(self.tracker.clock())}
        )

    def complete(
        self,
        status: Status | str | None = None,
        *,
        force: bool = False,
        note: str | None = None,
    ) -> JobRow:
        """Aggregate the client rows and close the job: ⌈N/100⌉ + 1 requests.

        Without ``status`` the SPEC's rule decides (all failed → ``Failed``, nothing
        processed → ``No Leads To Score``, else ``Completed``).  The aggregates are
        recomputed from the client rows every time, never incremented, so completing twice
        (with ``force``) gives the same numbers.  ``note`` is appended to System Notes; a
        note that is not a string or does not fit is refused before any request.
        """
        if note is not None:
            # Refuse a bad note before reading anything (on a scratch copy of the notes).
            _Notes(self._notes.text, self.tracker.clock).append(note)
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
            forced_note = check_transition(self.status, new, force=force)
        rows = self.tracker.repo.client_runs_of(self.run_id)
        if new is None:
            new = completion_status(rows)
            forced_note = check_transition(self.status, new, force=force)
        agg = aggregate(rows)
        now = self.tracker.clock()
        # The job's own start stands; its end is now.
        jobs = self.tracker.conn.schema.jobs
        values: dict[str, Any] = jobs.from_names(agg.to_fields(jobs, times=False))
        if forced_note:
            self._notes.append(forced_note, fit=True)
        if note:
            self._notes.append(note, fit=fit)
        values.update(
            {
                "run_id": str(self.run_id),
                "status": new.value,
                "end_time": to_airtable(now),
                "last_updated": to_airtable(now),
            }
        )
        if forced_note or note:
            values["system_notes"] = self._notes.text
        if error is not None and jobs.has("error_details"):
            # Job Tracking has no Error Details in the default schema (the error goes to
            # System Notes); a base that adds the field gets it there too.
            values["error_details"] = _error_text(error)
        row = self.tracker.repo.upsert_job(values)
        self.status = new
        log.info(
            "job %s completed as %s (%d clients)",
            self.run_id,
            new.value,
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

    ``add()`` and ``set()`` change the in-process totals; they are written (as absolute
    values) at most once per ``flush_interval``, and always on close.
    """

    def __init__(
        self,
        tracker: Tracker,
        run_id: ClientRunId,
        *,
        client_id: str,
        name: str,
        notes: str | None = None,
        status: Status = Status.RUNNING,
    ) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.client_id = client_id
        self.name = name
        self.status = status
        self._totals = ClientMetrics()
        self._extra: dict[str, Any] = {}
        self._notes = _Notes(notes, tracker.clock)
        self._dirty = False
        self._worked = False
        self._opened = False
        self._last_flush = 0.0
        self._lock = threading.RLock()
        self._log_extra = {"run_id": str(run_id), "client_id": client_id}

    def __repr__(self) -> str:
        return f"ClientRun(run_id={str(self.run_id)!r}, status={self.status.value!r})"

    @property
    def totals(self) -> ClientMetrics:
        """The metric totals as the process knows them (written or pending)."""
        return self._totals

    def _open_values(self, now: datetime) -> dict[str, Any]:
        self._opened = True
        return {
            "run_id": str(self.run_id),
            "client_id": self.client_id,
            "client_name": self.name,
            "status": Status.RUNNING.value,
            "start_time": to_airtable(now),
            "last_updated": to_airtable(now),
        }

    def _end_ok(self) -> None:
        self.close()

    def _end_failed(self, exc: BaseException) -> None:
        self.close(Status.FAILED, error=exc)

    # --------------------------------------------------------------- metrics

    def add(self, **increments: Any) -> None:
        """Add to metric totals, e.g. ``run.add(profiles_examined=10, profile_tokens=900)``.

        Values are validated first (a bad one raises and changes nothing); the write is
        deferred until the flush interval has passed since the last write.  If that deferred
        write still fails after the retry policy (429, 5xx, network), it is logged and the
        totals stay pending for the next flush or the close: ``add`` does not raise for it.
        """
        delta = ClientMetrics.of(**increments)
        with self._lock:
            self._totals = self._totals.plus(delta)
            self._dirty = True
            self._worked = self._worked or not delta.is_empty
        self._maybe_flush()

    def set(self, **values: Any) -> None:
        """Set absolute values: metrics (``apify_costs=1.25``) or ``apify_run_id`` /
        ``client_name``.  Unknown names raise, listing what is allowed; so does a value
        Airtable would refuse (checked now, so that it cannot fail a later flush).
        ``apify_run_id=None`` clears it; the client name cannot be cleared."""
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
            self._totals = self._totals.merged(metrics)
            if extra.get("client_name"):
                self.name = extra["client_name"]
            self._extra.update(extra)
            self._dirty = True
            self._worked = self._worked or not metrics.is_empty
        self._maybe_flush()

    def note(self, text: str) -> None:
        """Append a line to System Notes (written with the next flush).  A note that is not a
        string or does not fit in System Notes is refused, changing nothing."""
        with self._lock:
            self._notes.append(text)
            self._extra["system_notes"] = self._notes.text
            self._dirty = True

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush < self.tracker.flush_interval:
            return
        try:
            self.flush()
        except _DEFERRED_WRITE_ERRORS as exc:
            # The retry policy gave up on a *deferred* write (or a fail-closed limiter refused
            # it).  The increment is already in
            # the totals and stays pending: the next flush or the close writes it, as an
            # absolute total, so nothing is lost.  Raising here would report a failed
            # add() that was in fact applied (a caller retrying it would count it twice)
            # and abort the worker's scoring over a tracking hiccup.  Back off one interval.
            self._last_flush = time.monotonic()
            log.warning(
                "metric write of client run %s failed after retries (%s); the totals stay "
                "pending for the next flush or the close",
                self.run_id,
                type(exc).__name__,
                extra=self._log_extra,
            )

    def _values(self, now: datetime) -> dict[str, Any]:
        table = self.tracker.conn.schema.client_runs
        values = table.from_names(self._totals.to_fields(table))
        values.update(self._extra)
        values.update({"run_id": str(self.run_id), "last_updated": to_airtable(now)})
        return values

    def flush(self, *, heartbeat: bool = False) -> bool:
        """Write pending totals now (1 request); ``False`` when nothing was pending.

        With ``heartbeat=True`` it writes even when nothing is pending, refreshing Last
        Updated: call it during long silent phases so ``sync`` does not take a live run for
        a stale one.
        """
        with self._lock:
            if not self._dirty and not heartbeat:
                return False
            values = self._values(self.tracker.clock())
            self.tracker.repo.upsert("client_runs", [values])
            self._dirty = False
            self._last_flush = time.monotonic()
            return True

    def close(
        self,
        status: Status | str | None = None,
        *,
        error: BaseException | str | None = None,
        force: bool = False,
    ) -> ClientRunRow:
        """Write the final totals and status in one request.

        Without ``status``: ``Failed`` if ``error`` is given, ``No Leads To Score`` if nothing
        was recorded, else ``Completed``.
        """
        with self._lock:
            if status is not None:
                new = parse_status(status)
            elif error is not None:
                new = Status.FAILED
            elif not self._worked or not _did_work(self._totals):
                new = Status.NO_LEADS
            else:
                new = Status.COMPLETED
            forced_note = check_transition(self.status, new, force=force)
            if forced_note:
                self._notes.append(forced_note, fit=True)
                self._extra["system_notes"] = self._notes.text
            now = self.tracker.clock()
            values = self._values(now)
            values.update({"status": new.value, "end_time": to_airtable(now)})
            if error is not None:
                values["error_details"] = _error_text(error)
            if not self._opened:
                values.update(
                    {k: v for k, v in self._open_values(now).items() if k not in ("status",)}
                )
            record = self.tracker.repo.upsert("client_runs", [values])[0]
            self.status = new
            self._dirty = False
            log.info("client run %s closed as %s", self.run_id, new.value, extra=self._log_extra)
            return ClientRunRow.from_record(record, self.tracker.conn.schema.client_runs)

    def fail(self, error: BaseException | str, *, force: bool = False) -> ClientRunRow:
        """Close as ``Failed`` with ``error`` in Error Details."""
        return self.close(Status.FAILED, error=error, force=force)
