"""OpenTelemetry (issue 25): a job is a span with one child span per client run, their
status, error and metrics as attributes — recorded by the SDK's in-memory exporter while a
real tracker writes to a real local server.  Without OpenTelemetry nothing is imported."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.worker.tracker import Tracker

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process: one provider, its exporter cleared.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def test_a_job_span_with_one_child_per_client_run(
    local_airtable: LocalAirtable, spans: InMemorySpanExporter
) -> None:
    with Connection.from_settings(local_airtable.settings()) as conn:
        tracker = Tracker(conn)
        with tracker.job(stream=2) as job:
            with job.client("Guy-Wilson") as run:
                run.add(profiles_examined=10, profiles_scored=4, apify_costs="1.25")
            with job.client("Dana-Li") as run:
                run.fail(TimeoutError("no answer in 60 s"))
            job.client("Carl-Jones").close()
        tracker.close()
    finished = spans.get_finished_spans()
    (job_span,) = [s for s in finished if s.name == "jobtrack.job"]
    clients = {s.attributes["jobtrack.client_id"]: s for s in finished if s.parent is not None}
    assert sorted(clients) == ["Carl-Jones", "Dana-Li", "Guy-Wilson"]
    assert all(
        s.parent.span_id == job_span.context.span_id and s.name == "jobtrack.client_run"
        for s in clients.values()
    )
    assert job_span.attributes["jobtrack.run_id"] == str(job.run_id)
    assert job_span.attributes["jobtrack.stream"] == 2
    assert job_span.attributes["jobtrack.status"] == "Completed"
    assert job_span.attributes["jobtrack.clients_processed"] == 3
    assert job_span.attributes["jobtrack.clients_with_errors"] == 1
    guy = clients["Guy-Wilson"].attributes
    assert (guy["jobtrack.status"], guy["jobtrack.profiles_scored"]) == ("Completed", 4)
    assert guy["jobtrack.apify_costs"] == 1.25
    dana = clients["Dana-Li"]
    assert dana.attributes["jobtrack.status"] == "Failed"
    assert "TimeoutError: no answer in 60 s" in dana.attributes["jobtrack.error"]
    assert dana.status.status_code is StatusCode.ERROR
    assert clients["Carl-Jones"].attributes["jobtrack.status"] == "No Leads To Score"
    assert job_span.status.status_code is StatusCode.OK


def test_a_failed_job_span(local_airtable: LocalAirtable, spans: InMemorySpanExporter) -> None:
    with Connection.from_settings(local_airtable.settings()) as conn:
        Tracker(conn).job(stream=1).fail("scoring API down")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["jobtrack.error"] == "scoring API down"


def test_without_opentelemetry_nothing_is_imported() -> None:
    """A worker without the extra (simulated by hiding the package) imports nothing of it
    and its jobs still run."""
    code = (
        "import sys, importlib.util as u\n"
        "real = u.find_spec\n"
        "u.find_spec = lambda n, *a: None if n.startswith('opentelemetry') else real(n, *a)\n"
        "from jobtrack_airtable.worker import tracing\n"
        "assert tracing.start_job_span('251001-070000', 1) is None\n"
        "tracing.end_span(None, tracing.Status.COMPLETED)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
