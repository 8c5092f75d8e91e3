"""What jobs and client runs share: System Notes as this process writes them, error text that
can always be recorded, and the ``with`` protocol that always ends a run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from ..airtable import MAX_LONG_TEXT
from ..errors import InvalidInputError, show
from ..metrics import COUNT_KEYS, ClientMetrics
from ..schema import text_problem
from ..statuses import Status

__all__ = [
    "CLIENT_RUN_EXTRA_FIELDS",
    "MAX_ERROR_DETAILS",
    "EndsOnExit",
    "Notes",
    "did_work",
    "error_text",
    "sendable",
]

log = logging.getLogger("jobtrack_airtable.worker.tracker")

#: Error Details is a long-text field (100,000 characters); keep a margin.
MAX_ERROR_DETAILS = 50_000
#: Fields a client run may ``set`` besides metrics.
CLIENT_RUN_EXTRA_FIELDS = ("apify_run_id", "client_name")


def sendable(text: str) -> str:
    """``text`` with unpaired surrogates (undecodable bytes in an error message) written as
    ``\\udcxx`` escapes: they cannot be sent as UTF-8, and a failure must still be recorded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_text(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return sendable(text[:MAX_ERROR_DETAILS])


def did_work(totals: ClientMetrics) -> bool:
    """Whether any count is non-zero (costs alone are not work)."""
    return any(totals.values().get(k) for k in COUNT_KEYS)


class Notes:
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
        room = max(0, MAX_LONG_TEXT - len(head))
        if fit:
            line = sendable(str(line))[:room]
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
