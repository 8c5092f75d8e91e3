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
from typing import Literal, TypeVar

from ..errors import AirtableError, LimiterUnavailableError

__all__ = ["TRACKING_ERRORS", "OnTrackingError", "run_guarded"]

log = logging.getLogger("jobtrack_airtable.tracker")

T = TypeVar("T")
OnTrackingError = Literal["raise", "warn"]

#: Failures of the tracking base itself (as opposed to bad input from the worker).
TRACKING_ERRORS: tuple[type[Exception], ...] = (AirtableError, LimiterUnavailableError)


def run_guarded(mode: OnTrackingError, what: str, call: Callable[[], T]) -> T | None:
    """``call()``; in ``warn`` mode a tracking failure is logged and ``None`` returned."""
    try:
        return call()
    except TRACKING_ERRORS as exc:
        if mode == "raise":
            raise
        log.warning(
            "%s failed (%s: %s); JOBTRACK_ON_TRACKING_ERROR=warn: the worker goes on, the "
            "client-run changes stay pending in this tracker",
            what,
            type(exc).__name__,
            exc,
        )
        return None
