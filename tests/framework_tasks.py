"""Tasks the Celery and RQ tests run in real workers (imported by the worker processes).

Each attempt scores 10 profiles; the first ``fail_times`` attempts then fail with a timeout
(after the work was counted), as an AI call that gives up would.
"""

from __future__ import annotations

import os

import rq
from celery import Celery

from jobtrack_airtable.integrations.celery import client_run as celery_client_run
from jobtrack_airtable.integrations.rq import client_run as rq_client_run

#: The broker and result backend: a real Redis (JOBTRACK_TEST_REDIS_URL).
app = Celery("jobtrack_tests")
app.conf.update(
    broker_url=os.environ.get("JOBTRACK_TEST_REDIS_URL", "redis://127.0.0.1:1/0"),
    result_backend=os.environ.get("JOBTRACK_TEST_REDIS_URL", "redis://127.0.0.1:1/0"),
    task_default_queue="jobtrack-tests",
    broker_connection_retry_on_startup=True,
)


@app.task(
    bind=True,
    autoretry_for=(TimeoutError,),
    max_retries=2,
    default_retry_delay=0,
    retry_backoff=False,
    retry_jitter=False,
)
def celery_score(self, job_run_id: str, client_id: str, fail_times: int) -> int:  # type: ignore[no-untyped-def]
    with celery_client_run(self, job_run_id, client_id) as run:
        run.add(profiles_examined=10)
        if self.request.retries < fail_times:
            raise TimeoutError("AI provider timed out")
        return run.totals.profiles_examined or 0


def rq_score(job_run_id: str, client_id: str, fail_times: int) -> int:
    with rq_client_run(job_run_id, client_id) as run:
        run.add(profiles_examined=10)
        current = rq.get_current_job()
        assert current is not None
        if current.meta["jobtrack_attempt"] <= fail_times:
            raise TimeoutError("AI provider timed out")
        return run.totals.profiles_examined or 0
