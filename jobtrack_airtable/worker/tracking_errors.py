"""What a tracking failure does to the worker (``JOBTRACK_ON_TRACKING_ERROR``).

Tracking must never be the reason a scoring run crashes, unless the worker asks for it:

* ``raise`` (the default): a failure to write to the tracking base (Airtable refused or could
  not be reached, the shared limiter is down) is raised at the synchronous points --
  ``job.complete()``, ``job.fail()``, ``job.note()``, ``job.heartbeat()``,
  ``run.close(wait=True)``, ``run.flush()``, ``tracker.flush()``, ``tracker.close()`` -- as its
  typed error;
* ``warn``: the same failure is logged as a warning and the call returns (``None`` where it
  would return a row); the client-run changes stay pending in the tracker, written by its
  next successful drain.

In both modes leaving a ``with`` block never replaces the worker's own exception with a
tracking one (it is logged instead).  Bad input (:class:`~.errors.InvalidInputError`) is the
caller's bug, not an outage: it is raised in both modes, before any request.

>>> run_guarded("warn", "tracker.flush()", lambda: 42)
42
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Literal, TypeVar

from ..errors import AirtableError, LimiterUnavailableError

__all__ = ["TRACKING_ERRORS", "Guarded", "OnTrackingError", "run_guarded"]

log = logging.getLogger("jobtrack_airtable.tracker")

T = TypeVar("T")
OnTrackingError = Literal["raise", "warn"]

#: Failures of the tracking base itself (as opposed to bad input from the worker).
TRACKING_ERRORS: tuple[type[Exception], ...] = (AirtableError, LimiterUnavailableError)


class Guarded:
    """The block of a synchronous point: in ``warn`` mode a tracking failure leaving it is
    logged and swallowed.  A context manager rather than a wrapper, so that it adds no frame
    to the stack of the writes made inside it.

    >>> with Guarded("warn", "tracker.flush()"):
    ...     raise AirtableError("gone")
    """

    __slots__ = ("mode", "what")

    def __init__(self, mode: OnTrackingError, what: str) -> None:
        self.mode = mode
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or self.mode == "raise" or not isinstance(exc, TRACKING_ERRORS):
            return False
        log.warning(
            "%s failed (%s: %s); JOBTRACK_ON_TRACKING_ERROR=warn: the worker goes on, the "
            "client-run changes stay pending in this tracker",
            self.what,
            type(exc).__name__,
            exc,
        )
        return True


def run_guarded(mode: OnTrackingError, what: str, call: Callable[[], T]) -> T | None:
    """``call()``; in ``warn`` mode a tracking failure is logged and ``None`` returned."""
    with Guarded(mode, what):
        return call()
    return None
