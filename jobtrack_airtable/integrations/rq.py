"""RQ: client runs of jobs that RQ retries (extra ``[rq]``).

>>> def score_client(job_run_id, client_id):                     # doctest: +SKIP
...     with client_run(job_run_id, client_id) as run:
...         run.add(profiles_examined=score(client_id))
>>> queue.enqueue(score_client, run_id, "Guy-Wilson", retry=Retry(max=3))  # doctest: +SKIP

A failure RQ will retry (the job has ``retries_left``) leaves the run ``Running`` with a
note; the retry continues it; the last failure fails it (see :mod:`.retries`).  RQ's default
worker forks a work horse per job: the tracker is the work horse's own (built on first use
in it, see :mod:`.trackers`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from ..errors import MissingExtraError
from ..worker.client_run import ClientRun
from ..worker.tracker import Tracker
from .retries import retrying_client_run
from .trackers import default_tracker

try:
    import rq
except ImportError:  # pragma: no cover - the extra is missing
    raise MissingExtraError(
        "the RQ integration needs rq: pip install 'jobtrack-airtable[rq]'"
    ) from None

__all__ = ["client_run"]


def client_run(
    job_run_id: str,
    client_id: str,
    *,
    name: str | None = None,
    tracker: Tracker | None = None,
) -> AbstractContextManager[ClientRun]:
    """The client run of the RQ job running now, continued across RQ's retries."""
    current = rq.get_current_job()
    attempt = 0
    if current is not None:
        # RQ counts retries down, not attempts up: the attempt is kept in the job's meta.
        attempt = int(current.meta.get("jobtrack_attempt", 0))
        current.meta["jobtrack_attempt"] = attempt + 1
        current.save_meta()
    left = current.retries_left or 0 if current is not None else 0
    return retrying_client_run(
        tracker if tracker is not None else default_tracker(),
        job_run_id,
        client_id,
        name=name,
        will_retry=lambda exc: left > 0,
        attempt=attempt,
    )
