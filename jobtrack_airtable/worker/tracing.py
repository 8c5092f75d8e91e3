"""OpenTelemetry spans for a worker's runs, when the application uses OpenTelemetry: a job
is a span (``jobtrack.job``) with one child span per client run (``jobtrack.client_run``),
each ended with its status, error and metrics as attributes.

Optional: with ``opentelemetry-api`` installed (``pip install 'jobtrack-airtable[otel]'``) the
spans go to whatever tracer provider the application configured (none configured: the API's
no-op tracer).  Without it nothing is imported and every function here returns at once; the
check costs one :func:`importlib.util.find_spec`, once per process.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from ..statuses import Status

__all__ = ["end_span", "start_client_span", "start_job_span"]

_TRACER: Any = None
_LOOKED = False
INSTRUMENTATION = "jobtrack_airtable"


def _tracer() -> Any:
    global _TRACER, _LOOKED
    if not _LOOKED:
        _LOOKED = True
        if importlib.util.find_spec("opentelemetry") is not None:
            from opentelemetry import trace

            # A proxy: a provider the application sets later is still used.
            _TRACER = trace.get_tracer(INSTRUMENTATION)
    return _TRACER


def start_job_span(run_id: str, stream: int) -> Any:
    """The span of a job just started (``None`` without OpenTelemetry)."""
    tracer = _tracer()
    if tracer is None:
        return None
    return tracer.start_span(
        "jobtrack.job", attributes={"jobtrack.run_id": run_id, "jobtrack.stream": stream}
    )


def start_client_span(parent: Any, run_id: str, client_id: str) -> Any:
    """The span of a client run, the child of its job's span when this process started the
    job (``None`` without OpenTelemetry)."""
    tracer = _tracer()
    if tracer is None:
        return None
    from opentelemetry import trace

    context = trace.set_span_in_context(parent) if parent is not None else None
    return tracer.start_span(
        "jobtrack.client_run",
        context=context,
        attributes={"jobtrack.run_id": run_id, "jobtrack.client_id": client_id},
    )


def end_span(
    span: Any, status: Status, *, error: str | None = None, metrics: Mapping[str, Any] = {}
) -> None:
    """End ``span`` with the run's final status, error and metrics (``None``-valued metrics
    are left out; costs are sent as floats)."""
    if span is None:
        return
    from opentelemetry.trace import StatusCode

    span.set_attribute("jobtrack.status", status.value)
    for key, value in metrics.items():
        if value is not None:
            span.set_attribute(
                f"jobtrack.{key}", value if isinstance(value, int | float) else float(value)
            )
    if status is Status.FAILED:
        span.set_attribute("jobtrack.error", error or "")
        span.set_status(StatusCode.ERROR, error or "failed")
    else:
        span.set_status(StatusCode.OK)
    span.end()
