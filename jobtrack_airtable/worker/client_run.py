"""One client's run inside a job (SPEC §3.2): metrics accumulated in the process, written as
absolute totals by the tracker's group commit (:mod:`jobtrack_airtable.worker.commit`).

>>> with job.client("Guy-Wilson", name="Guy Wilson") as run:      # doctest: +SKIP
...     run.add(profiles_examined=10, profile_tokens=900)
...     run.set(apify_costs=0.42)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Unpack

from .. import forks
from ..errors import (
    InvalidInputError,
    RunClosedError,
    TerminalRunError,
    TrackerClosedError,
    UnknownMetricError,
    show,
)
from ..metrics import (
    METRIC_KEYS,
    ClientMetrics,
    MetricValues,
    RunValues,
    trusted,
    validate_metrics,
)
from ..rows import ClientRunRow
from ..run_ids import ClientRunId, as_client_run_id
from ..schema import text_problem
from ..statuses import Status, check_transition, parse_status
from ..timeutil import to_airtable
from .runs import (
    CLIENT_RUN_EXTRA_FIELDS,
    EndsOnExit,
    Notes,
    did_work,
    ended_elsewhere,
    error_text,
    found,
    quiet_after,
)
from .tracing import end_span

if TYPE_CHECKING:
    from .tracker import Tracker

__all__ = ["ClientRun"]

log = logging.getLogger("jobtrack_airtable.worker.tracker")


class ClientRun(EndsOnExit):
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
        name: str | None,
        new: bool,
        force: bool = False,
    ) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.client_id = client_id
        self.name = name or client_id
        # A name the caller gave overwrites the row's; the client ID standing in for a name
        # nobody gave must never replace a stored one (a restarted worker re-opening a run).
        self._name_given = bool(name)
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
        self._notes = Notes(None, tracker.clock)
        # An open that must learn whether the row exists writes nothing that row holds.
        self._probe = not new
        self._status_due: Status | None = Status.RUNNING if new else None
        self._start_due: str | None = to_airtable(tracker.clock()) if new else None
        self._end: str | None = None
        self._error: str | None = None
        self._close_force = False
        # Versions only grow, across processes too: the outbox stores every change above the
        # stored version (whatever the clocks), and the run continues from what it stored.
        self._version = time.time_ns() // 1000
        self._written_version = 0
        #: The last refusal its write met (kept pending; raised at synchronous points).
        self._refused: Exception | None = None
        self._refusal_logged: str | None = None
        # What the last acknowledged write put in the row, to verify it after a timeout.
        self._acked: dict[str, Any] = {}
        self._acked_status: Status | None = None
        self._heartbeat = False
        self._worked = False
        self._lock = threading.RLock()
        forks.register(self, ClientRun._fresh_lock)
        self._log_extra = {"run_id": str(run_id), "client_id": client_id}

    #: Its OpenTelemetry span (tracing.py), ended by :meth:`close`.
    _span: Any = None

    def _fresh_lock(self) -> None:
        # After a fork: the parent's commit thread may have held it mid-write.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"ClientRun(run_id={str(self.run_id)!r}, status={self.status.value!r})"

    @property
    def totals(self) -> ClientMetrics:
        """The metric totals as the process knows them (written or pending), including the
        totals the row held when this run was re-opened."""
        with self._lock:
            base = {k: v for k, v in self._base.values().items() if k not in self._set_keys}
            # Both validated where they entered (the row read back, add()/set()).
            return trusted(base).plus(self._local)

    def _adopt(self, row: ClientRunRow) -> None:
        """Continue from a stored row (re-open, attach)."""
        self.record_id = row.record_id
        self._probe = False
        self._base = row.metrics
        self._notes.server = row.system_notes or ""
        self._worked = did_work(row.metrics)
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

    def _check_writable(self, action: str) -> None:
        """A change to an ended run would rewrite a row the library already called final
        (a ``Completed`` row's totals growing after the fact): refused, before anything."""
        self._check_open()
        if self.tracker._closed:
            raise TrackerClosedError(str(self.run_id))
        if self.status.is_terminal:
            raise RunClosedError(str(self.run_id), self.status.value, action)

    def _changed(self) -> None:
        """Record a change (under the run lock): a new version, stored in the outbox before
        the caller returns."""
        self._version += 1
        self.tracker._persist(self)

    @contextmanager
    def _recording(self) -> Iterator[None]:
        """A caller's change (made in the block, under the run lock), stored in the outbox
        before the block ends.  If it cannot be stored (the outbox failed: a full disk, Redis
        down), the run is left exactly as it was and the error raised: the caller was told
        the change did not happen, so it is never written later, and a retry counts once."""
        saved = dict(self.__dict__)
        set_keys, extra, lines = set(self._set_keys), dict(self._extra), list(self._notes.lines)
        try:
            yield
            self._changed()
        except BaseException:
            self.__dict__.update(saved)
            self._set_keys, self._extra, self._notes.lines = set_keys, extra, lines
            raise

    # ------------------------------------------------------------- the outbox

    def snapshot(self) -> str:
        """The run's whole state as JSON, for the outbox (under the run lock)."""
        return json.dumps(
            {
                "run_id": str(self.run_id),
                "client_id": self.client_id,
                "name": self.name,
                "name_given": self._name_given,
                "record_id": self.record_id,
                "base": self._base.values(),
                "local": self._local.values(),
                "set_keys": sorted(self._set_keys),
                "extra": self._extra,
                "notes": self._notes.lines,
                "probe": self._probe,
                "status": self.status.value,
                "status_due": self._status_due.value if self._status_due else None,
                "start_due": self._start_due,
                "end": self._end,
                "error": self._error,
                "force": self._force,
                "close_force": self._close_force,
                "worked": self._worked,
                "wrote_terminal": self._wrote_terminal,
            },
            default=str,
            separators=(",", ":"),
        )

    @classmethod
    def restore(cls, tracker: Tracker, payload: str, version: int) -> ClientRun:
        """A run rebuilt from an outbox entry another process left (it died, or its tracker
        closed with the write refused): written by this tracker's group commit."""
        d = json.loads(payload)
        run = cls(
            tracker,
            as_client_run_id(d["run_id"]),
            client_id=d["client_id"],
            name=d["name"],
            new=False,
            force=d["force"],
        )
        run._name_given = d["name_given"]
        run.record_id = d["record_id"]
        run._base = validate_metrics(d["base"])
        run._local = validate_metrics(d["local"])
        run._set_keys = set(d["set_keys"])
        run._extra = d["extra"]
        run._notes.lines = list(d["notes"])
        run._probe = d["probe"]
        run.status = Status(d["status"])
        run._status_due = Status(d["status_due"]) if d["status_due"] else None
        run._start_due = d["start_due"]
        run._end = d["end"]
        run._error = d["error"]
        run._close_force = d["close_force"]
        run._worked = d["worked"]
        run._wrote_terminal = d["wrote_terminal"]
        run._version = version
        return run

    def urgent(self) -> bool:
        """An open or a status change must show promptly; increments can wait."""
        return self._probe or self._status_due is not None or self._heartbeat

    def refusal_pending(self) -> Exception | None:
        return self._refused

    def unsettled(self, until: float) -> None:
        with self._lock:
            self._settle_until = until

    _settle_until = 0.0

    def verify(self, row: ClientRunRow | None) -> bool:
        with self._lock:
            holds = row is not None
            if row is not None:
                stored = row.metrics.to_values(self.tracker.conn.schema.client_runs)
                holds = all(stored.get(k) == v for k, v in self._acked.items())
                ours, theirs = self._acked_status, row.status
                if ours is not None and theirs is not ours:
                    # Another writer ending the run is not a late write of ours.
                    holds = holds and theirs is not None and theirs.is_terminal
                    holds = holds and not ours.is_terminal
            else:
                self.record_id = None
            self._settle_until = 0.0
            if holds:
                self.tracker._retire(self, self._written_version)
                return True
            if self._acked_status is not None:
                self._status_due = self.status
            self._changed()
            return False

    def _mark(self) -> None:
        self.tracker._commit.mark(self)

    # --------------------------------------------------------------- metrics

    def add(self, **increments: Unpack[MetricValues]) -> None:
        """Add to metric totals, e.g. ``run.add(profiles_examined=10, profile_tokens=900)``.

        Values are validated first (a bad one raises and changes nothing); the write is
        group-committed.  If that write fails even after the retry policy (429, 5xx,
        network), the totals stay pending for the next one: ``add`` does not raise for it.
        """
        delta = ClientMetrics.of(**increments)
        with self._lock, self._recording():
            # Under the run's lock: a close in another thread cannot slip in between.
            self._check_writable("add")
            self._local = self._local.plus(delta)
            self._worked = self._worked or not delta.is_empty
        self._mark()

    def set(self, **typed: Unpack[RunValues]) -> None:
        """Set absolute values: metrics (``apify_costs=1.25``) or ``apify_run_id`` /
        ``client_name``.  Unknown names raise, listing what is allowed; so does a value
        Airtable would refuse (checked now, so that it cannot fail a later write).
        ``apify_run_id=None`` clears it; the client name cannot be cleared."""
        values: dict[str, Any] = dict(typed)
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
        with self._lock, self._recording():
            self._check_writable("set")
            self._local = self._local.merged(metrics)
            self._set_keys.update(metrics.values())
            if extra.get("client_name"):
                self.name = extra["client_name"]
                self._name_given = True
            self._extra.update(extra)
            self._worked = self._worked or not metrics.is_empty
        self._mark()

    def note(self, text: str) -> None:
        """Append a line to System Notes (written with the next group commit, merged into
        the row's current notes).  A note that is not a string or does not fit is refused,
        changing nothing."""
        with self._lock, self._recording():
            self._check_writable("note")
            self._notes.append(text)
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
                with self._recording():
                    self._heartbeat = True
        self._mark()
        self.tracker.flush()
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
        with self._lock, self._recording():
            if status is not None:
                new = parse_status(status)
            elif error is not None:
                new = Status.FAILED
            elif not self._worked or not did_work(self.totals):
                new = Status.NO_LEADS
            else:
                new = Status.COMPLETED
            forced_note = check_transition(self.status, new, force=force)
            if forced_note:
                self._notes.append(forced_note, fit=True)
            self._status_due = new
            self._end = to_airtable(self.tracker.clock())
            self._error = error_text(error) if error is not None else None
            self._close_force = force
            self.status = new
        if self._span is not None:
            end_span(self._span, new, error=self._error, metrics=dict(self.totals))
            self._span = None
        log.info("client run %s closed as %s", self.run_id, new.value, extra=self._log_extra)
        self._mark()
        if not wait:
            return None
        self.tracker.flush()
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
        row's current text) or ends a run that has been quiet (see :func:`quiet_after`):
        only then can ``sync`` have ended it meanwhile, so an active run's close costs no
        read."""
        with self._lock:
            if self._probe or not self.dirty():
                return False
            if self._notes.lines:
                return True
            if self._status_due is None or not self._status_due.is_terminal:
                return False
            quiet = self.tracker._commit.wall() - self._last_write
            return quiet >= quiet_after(self.tracker)

    def observe(self, row: ClientRunRow | None) -> None:
        with self._lock:
            if row is None:
                # Gone (merged away by sync): the write by natural key lands on the survivor.
                self.record_id = None
                return
            self._notes.server = row.system_notes or ""
            theirs, ours = row.status, self._status_due
            if ours is None or self._wrote_terminal:
                return
            ended = ended_elsewhere(
                theirs,
                ours,
                force=self._close_force,
                origin=self.tracker.origin,
                did="closed the run",
                override="close",
                summary=f" ({found(self.totals)})",
            )
            if ended is None:
                return
            final, line = ended
            self._notes.append(line, fit=True)
            if final is ours:
                return
            self._status_due = None
            self._end = None
            self._error = None
            self.status = final

    _wrote_terminal = False
    #: The commit's ``wall`` time of the run's last landed write (0: adopted, never written).
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
                if not self._name_given:
                    del fields["client_name"]
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
            return self.record_id, fields, ("write", self._version, status, sent, fields)

    def written(self, row: ClientRunRow, created: bool, token: Any) -> None:
        with self._lock:
            self.record_id = row.record_id
            self._last_write = self.tracker._commit.wall()
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
                if not self.dirty():
                    self.tracker._retire(self, token[1])
                return
            _, version, status, sent, fields = token
            self._refused = None
            self._refusal_logged = None
            table = self.tracker.conn.schema.client_runs
            self._acked = {k: v for k, v in fields.items() if table.has(k) and k in METRIC_KEYS}
            self._notes.landed(row.system_notes, sent)
            self._last_write = self.tracker._commit.wall()
            if version == self._version:
                self._written_version = version
                self._heartbeat = False
            sent_status: Status | None = status
            if sent_status is not None and sent_status is self._status_due:
                self._status_due = None
                self._start_due = None
                self._wrote_terminal = self._wrote_terminal or sent_status.is_terminal
            if sent_status is not None:
                self._acked_status = sent_status
            self._row = row
            if version == self._version:
                self.tracker._retire(self, version)

    def refused(self, error: Exception, token: Any) -> None:
        with self._lock:
            # Kept: the state stays pending here and in the outbox; the refusal is raised at
            # the next synchronous point and the write tried again there (the token or the
            # field may be back by then), or by the next tracker / ``outbox replay``.
            self._refused = error
            self.tracker._refused(self, token[1], error)
            text = f"{type(error).__name__}: {error}"
            if text != self._refusal_logged:
                self._refusal_logged = text
                log.error(
                    "client run %s: Airtable refused its write (%s); kept in the outbox, "
                    "raised at the next flush or close",
                    self.run_id,
                    error,
                    extra=self._log_extra,
                )
