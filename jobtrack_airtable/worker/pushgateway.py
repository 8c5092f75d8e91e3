"""A worker's job, pushed to a Prometheus Pushgateway when it ends: the batch-job pattern
(a job too short-lived to be scraped leaves its final figures at the gateway).

Optional and explicit: nothing is imported or sent unless the worker calls
:func:`push_job_metrics` with the row :meth:`~jobtrack_airtable.tracker.Job.complete`
returned (``prometheus_client`` comes with ``pip install 'jobtrack-airtable[prometheus]'``)::

    row = job.complete()
    push_job_metrics(row, "http://pushgateway:9091")

One group per stream (``job="jobtrack", stream="1"``).  The push is a POST (Prometheus'
``pushadd``): it replaces the series it sends and keeps the others, so a failed run leaves
``jobtrack_job_last_success_timestamp_seconds`` of the last good one in place, which is what
an alert on "no success for N hours" needs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInputError, MissingExtraError, show
from ..rows import JobRow
from ..statuses import Status

__all__ = ["push_job_metrics"]


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MissingExtraError(
            "pushing to a Pushgateway needs prometheus_client: "
            "pip install 'jobtrack-airtable[prometheus]'"
        ) from None
    return prometheus_client


def push_job_metrics(
    row: JobRow,
    gateway: str,
    *,
    job: str = "jobtrack",
    timeout: float = 10.0,
    now: datetime | None = None,
) -> None:
    """Push a finished job's final figures to the Pushgateway at ``gateway``
    (``http://host:9091``).  A row that has not ended is refused before anything is sent."""
    status = row.status
    if status is None or not status.is_terminal:
        raise InvalidInputError(
            f"only a finished job is pushed; run {row.run_id!r} is {show(row.status_raw)}"
        )
    if not isinstance(gateway, str) or not gateway.startswith(("http://", "https://")):
        raise InvalidInputError(f"gateway must be an http(s) URL, not {show(gateway)}")
    prom = _prometheus()
    registry = prom.CollectorRegistry()
    end = row.end_time or now or datetime.now(UTC)

    def gauge(name: str, doc: str, value: float, **labels: str) -> None:
        metric = prom.Gauge(name, doc, list(labels), registry=registry)
        (metric.labels(**labels) if labels else metric).set(value)

    gauge("jobtrack_job_last_completion_timestamp_seconds", "When the job ended.", end.timestamp())
    if status is not Status.FAILED:
        gauge(
            "jobtrack_job_last_success_timestamp_seconds",
            "When the last job that did not fail ended.",
            end.timestamp(),
        )
    if row.start_time is not None:
        gauge(
            "jobtrack_job_last_duration_seconds",
            "How long the job ran.",
            (end - row.start_time).total_seconds(),
        )
    statuses = prom.Gauge(
        "jobtrack_job_last_status", "1 for the job's final status.", ["status"], registry=registry
    )
    for each in Status:
        if each.is_terminal:
            statuses.labels(status=each.value).set(1 if each is status else 0)
    for key in ("clients_processed", "clients_with_errors"):
        if (value := row.aggregates.get(key)) is not None:
            gauge(f"jobtrack_job_last_{key}", f"The job's {key.replace('_', ' ')}.", value)
    grouping = {"stream": str(row.stream) if row.stream is not None else "none"}
    prom.pushadd_to_gateway(
        gateway, job=job, registry=registry, grouping_key=grouping, timeout=timeout
    )
