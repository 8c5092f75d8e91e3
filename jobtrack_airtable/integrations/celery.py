"""Celery: client runs of tasks that Celery retries (extra ``[celery]``).

>>> @app.task(bind=True, autoretry_for=(TimeoutError,), max_retries=3)  # doctest: +SKIP
... def score_client(self, job_run_id, client_id):
...     with client_run(self, job_run_id, client_id) as run:
...         run.add(profiles_examined=score(client_id))

A failure Celery will retry (an ``autoretry_for`` exception with retries left, or
``self.retry()``) leaves the run ``Running`` with a note; the retry continues it; the last
failure fails it (see :mod:`.retries`).  Jobs: ``@tracked_job`` on the task that fans out.

**Where the tracker lives.**  The default (``tracker=None``) is the worker process's own
tracker, built from the environment on first use in that process -- in each prefork child,
after the fork -- so nothing has to be created in the parent or in a ``worker_process_init``
signal.  A tracker built before the fork also works (:mod:`jobtrack_airtable.forks`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from ..errors import MissingExtraError
from ..worker.client_run import ClientRun
from ..worker.tracker import Tracker
from .retries import retrying_client_run
from .trackers import default_tracker

try:
    from celery.exceptions import Retry
except ImportError:  # pragma: no cover - the extra is missing
    raise MissingExtraError(
        "the Celery integration needs celery: pip install 'jobtrack-airtable[celery]'"
    ) from None

__all__ = ["client_run", "will_retry"]


def will_retry(task: Any, exc: BaseException) -> bool:
    """Whether Celery retries ``task`` after ``exc``: ``self.retry()`` was called, or ``exc``
    is one of its ``autoretry_for`` and retries are left."""
    if isinstance(exc, Retry):
        return True
    autoretry = tuple(getattr(task, "autoretry_for", ()) or ())
    if not autoretry or not isinstance(exc, autoretry):
        return False
    limit = task.max_retries
    return limit is None or task.request.retries < limit


def client_run(
    task: Any,
    job_run_id: str,
    client_id: str,
    *,
    name: str | None = None,
    tracker: Tracker | None = None,
) -> AbstractContextManager[ClientRun]:
    """The client run of a bound task (``bind=True``), continued across Celery's retries."""
    return retrying_client_run(
        tracker if tracker is not None else default_tracker(),
        job_run_id,
        client_id,
        name=name,
        will_retry=lambda exc: will_retry(task, exc),
        attempt=task.request.retries,
    )
