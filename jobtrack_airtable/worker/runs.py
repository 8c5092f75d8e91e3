"""What jobs and client runs share: System Notes as this process writes them, error text that
can always be recorded, and the ``with`` protocol that always ends a run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from ..airtable import MAX_LONG_TEXT
from ..errors import InvalidInputError, show
from ..metrics import COUNT_KEYS, ClientMetrics
from ..schema import text_problem
from ..statuses import Status

__all__ = [
    "CLIENT_RUN_EXTRA_FIELDS",
    "CUT_MARKER",
    "MAX_ERROR_DETAILS",
    "EndsOnExit",
    "Notes",
    "did_work",
    "error_text",
    "fit_notes",
    "found",
    "quiet_after",
    "sendable",
]

log = logging.getLogger("jobtrack_airtable.worker.tracker")

#: Error Details is a long-text field (100,000 characters); keep a margin.
MAX_ERROR_DETAILS = 50_000
#: Fields a client run may ``set`` besides metrics.
CLIENT_RUN_EXTRA_FIELDS = ("apify_run_id", "client_name")


#: Heads a System Notes text whose oldest lines were cut so that the newest ones fit.
CUT_MARKER = "[earlier notes cut: System Notes holds at most 100,000 characters]"
#: The longest line a note may hold once stamped: it must fit after the marker alone.
_LINE_ROOM = MAX_LONG_TEXT - len(CUT_MARKER) - 1


def fit_notes(text: str) -> str:
    r"""``text`` cut to Airtable's long-text limit by dropping its oldest lines, headed by
    :data:`CUT_MARKER`; every character counts (stamps, newlines, the marker).  Without
    this, one row whose notes another writer filled refuses every write of the row: its
    totals and its close included.

    >>> len(fit_notes("old line\n" * 20_000 + "new")) <= MAX_LONG_TEXT
    True
    """
    if len(text) <= MAX_LONG_TEXT:
        return text
    tail = text[len(text) - _LINE_ROOM :]
    line_end = tail.find("\n", 0, 2_000)
    if line_end >= 0:
        tail = tail[line_end + 1 :]  # from a whole line, unless that line is huge
    return f"{CUT_MARKER}\n{tail}"


def sendable(text: str) -> str:
    """``text`` with unpaired surrogates (undecodable bytes in an error message) written as
    ``\\udcxx`` escapes: they cannot be sent as UTF-8, and a failure must still be recorded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_text(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return sendable(text[:MAX_ERROR_DETAILS])


#: A run silent this long may have been ended by a ``sync`` with a short ``--stale-after``.
QUIET_FLOOR_SECONDS = 10.0


class _HasCommit(Protocol):
    @property
    def flush_interval(self) -> float: ...

    @property
    def conn(self) -> Any: ...


def quiet_after(tracker: _HasCommit) -> float:
    """Seconds without a write after which a run's row is read before its close, to keep a
    terminal status another writer set.  Not half this worker's stale threshold alone: an
    admin's ``sync --stale-after`` may be much shorter than the workers'
    ``JOBTRACK_STALE_AFTER_MINUTES``.  A busy run is written every flush interval, so two
    intervals of silence (at least :data:`QUIET_FLOOR_SECONDS`) mark it idle; a ``sync``
    whose threshold is shorter than that cannot tell a live run from a dead one anyway."""
    half_stale = tracker.conn.settings.stale_after.total_seconds() / 2
    return min(half_stale, max(2 * tracker.flush_interval, QUIET_FLOOR_SECONDS))


def found(totals: ClientMetrics) -> str:
    """What a worker found, for a note beside a status it could not set.

    >>> found(ClientMetrics(profiles_examined=30, profile_tokens=900))
    'totals: profiles_examined=30, profile_tokens=900'
    """
    values = {k: v for k, v in totals.values().items() if v}
    return "totals: " + (", ".join(f"{k}={v}" for k, v in values.items()) or "none")


def did_work(totals: ClientMetrics) -> bool:
    """Whether any count is non-zero (costs alone are not work)."""
    return any(totals.values().get(k) for k in COUNT_KEYS)


class Notes:
    """System Notes as this process writes them: the row's text as last seen on the server
    plus the lines this process appended since.  Written, the text is always *server text +
    new lines*, so nothing another writer appended is erased (the caller refreshes
    ``server`` from a read or a write response just before writing).

    System Notes is a long-text field of at most 100,000 characters, and a text Airtable
    would refuse would fail every write of the row (metrics and the close included).  So
    :attr:`text` always fits: when the row is full (another writer may fill it at any time),
    its oldest lines are cut, headed by :data:`CUT_MARKER` (:func:`fit_notes`).  A caller's
    line must be a string that fits on its own, stamp included; :meth:`append` refuses
    anything else, changing nothing.  The library's own lines (``fit=True``: completions,
    failures, forced statuses) are cut to fit instead, so a run can always end.
    """

    def __init__(self, server: str | None, clock: Callable[[], datetime]) -> None:
        self.server = server or ""
        self.lines: list[str] = []
        self._clock = clock

    @property
    def text(self) -> str:
        return fit_notes("\n".join([t for t in (self.server, *self.lines) if t]))

    def check(self, line: Any) -> None:
        """Raise as :meth:`append` would, changing nothing."""
        self._stamped(line, fit=False)

    def _stamped(self, line: Any, *, fit: bool) -> str:
        stamp = f"[{self._clock().astimezone(UTC).strftime('%Y-%m-%d %H:%M:%SZ')}] "
        # Older lines make way for a new one (see fit_notes); the stamped line itself must
        # fit behind the cut marker, every character counted.
        room = _LINE_ROOM - len(stamp)
        if fit:
            line = sendable(str(line))[:room]
        elif not isinstance(line, str):
            raise InvalidInputError(f"a note must be a string, got {show(line)}")
        elif problem := text_problem(line, "the note", limit=room):
            raise InvalidInputError(f"{problem} (with its time stamp, after older lines are cut)")
        return f"{stamp}{line}"

    def append(self, line: Any, *, fit: bool = False) -> str:
        self.lines.append(self._stamped(line, fit=fit))
        return self.text

    def landed(self, server: str | None, sent: int) -> None:
        """A write carrying the first ``sent`` new lines landed; ``server`` is the row's
        text in its response."""
        self.server = server or ""
        del self.lines[:sent]


class EndsOnExit:
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
