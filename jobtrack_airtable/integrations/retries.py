"""A client run inside a task that a framework may retry (Celery ``autoretry_for``, RQ
``Retry``): a failed attempt that will be retried leaves the run ``Running``, with a note,
so the retry continues it instead of meeting a ``Failed`` row
(:class:`~jobtrack_airtable.errors.TerminalRunError`).  Only the last attempt's failure
fails the run.

The retry re-opens the run from its stored totals (``run.totals``): a task that redoes
part of the failed attempt's work should skip what is already counted, or ``set`` absolute
values, so that nothing is counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..worker.client_run import ClientRun
from ..worker.runs import error_text
from ..worker.tracker import Tracker

__all__ = ["retrying_client_run"]

log = logging.getLogger(__name__)


@contextmanager
def retrying_client_run(
    tracker: Tracker,
    job_run_id: str,
    client_id: str,
    *,
    will_retry: Callable[[BaseException], bool],
    attempt: int = 0,
    name: str | None = None,
) -> Iterator[ClientRun]:
    """Open (or continue) the client run; on leaving, close it, fail it, or -- when
    ``will_retry(exc)`` says the framework retries this failure -- leave it ``Running``
    with a note naming attempt ``attempt + 1`` and the error.  Whatever it ends with is
    written before the task returns (the retry, maybe in another process, finds it)."""
    run = tracker.client(job_run_id, client_id, name=name)
    try:
        yield run
    except BaseException as exc:
        try:
            if run.status.is_terminal:
                pass
            elif will_retry(exc):
                reason = error_text(exc)[:500]
                run.note(f"attempt {attempt + 1} failed ({reason}); the task will retry")
                run.flush()
                if not run.dirty():
                    # All on Airtable: the retry may run in another process of the machine
                    # while this one lives on, and its open must not meet this lease.
                    tracker._unhold(run)
            else:
                run.fail(exc, wait=True)
        except Exception:
            # Never mask the task's own exception (the framework decides on it).
            log.exception("could not record the failure of %s", run.run_id)
        raise
    if not run.status.is_terminal:
        # Written now, not within the flush interval: a task's end is where frameworks
        # recycle processes (RQ's work horse ends with os._exit, skipping exit hooks).
        run.close(wait=True)
