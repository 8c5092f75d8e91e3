"""Recording work that runs under something else: any function (:func:`tracked_job`), task
frameworks (:mod:`.celery`, :mod:`.rq`) and any command (:func:`record_command`, behind
``jobtrack-airtable run``)."""

from __future__ import annotations

from .command import record_command
from .decorators import current_job, tracked_job
from .retries import retrying_client_run
from .trackers import default_tracker

__all__ = [
    "current_job",
    "default_tracker",
    "record_command",
    "retrying_client_run",
    "tracked_job",
]
