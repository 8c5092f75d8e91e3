"""A worker pushes its job's final figures to a real ``prometheus-pushgateway`` (issue 25):
the batch-job pattern, through a job tracked against a real local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobtrack_airtable.errors import InvalidInputError
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.worker.pushgateway import push_job_metrics
from jobtrack_airtable.worker.tracker import Tracker

from . import prometheus_servers as ps


@pytest.fixture
def gateway() -> Iterator[str]:
    binary = ps.find("prometheus-pushgateway")
    if binary is None:
        pytest.skip("no prometheus-pushgateway (apt-get install it; .ci/prometheus.sh)")
    with ps.running_pushgateway(binary) as url:
        yield url


def _pushed(gateway: str) -> dict[str, dict[str, float]]:
    """name → {status label or "": value} of the series pushed for stream 1."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(ps.get(f"{gateway}/metrics").decode()):
        for s in family.samples:
            if s.labels.get("job") == "jobtrack" and s.labels.get("stream") == "1":
                out.setdefault(s.name, {})[s.labels.get("status", "")] = s.value
    return out


def test_a_job_pushes_its_final_metrics(local_airtable: LocalAirtable, gateway: str) -> None:
    with Connection.from_settings(local_airtable.settings()) as conn:
        tracker = Tracker(conn)
        job = tracker.job(stream=1)
        for cid in ("Guy-Wilson", "Dana-Li"):
            with job.client(cid) as run:
                run.add(profiles_examined=3)
        done = job.complete()
        requests = local_airtable.request_log.total
        push_job_metrics(done, gateway)
        assert local_airtable.request_log.total == requests  # the push reads nothing
        pushed = _pushed(gateway)
        assert done.end_time is not None and done.start_time is not None
        success = done.end_time.timestamp()
        assert pushed["jobtrack_job_last_success_timestamp_seconds"] == {"": success}
        assert pushed["jobtrack_job_last_completion_timestamp_seconds"] == {"": success}
        assert pushed["jobtrack_job_last_duration_seconds"] == {
            "": (done.end_time - done.start_time).total_seconds()
        }
        assert pushed["jobtrack_job_last_status"] == {
            "Completed": 1,
            "Failed": 0,
            "No Leads To Score": 0,
        }
        assert pushed["jobtrack_job_last_clients_processed"] == {"": 2}

        # The next run fails: its completion and status replace the old ones; the last
        # success stays (pushadd keeps the series a push does not send).
        failed = tracker.job(stream=1).fail("scoring API down")
        push_job_metrics(failed, gateway)
        again = _pushed(gateway)
        assert again["jobtrack_job_last_success_timestamp_seconds"] == {"": success}
        assert failed.end_time is not None
        assert again["jobtrack_job_last_completion_timestamp_seconds"] == {
            "": failed.end_time.timestamp()
        }
        assert again["jobtrack_job_last_status"]["Failed"] == 1


def test_only_finished_jobs_are_pushed(local_airtable: LocalAirtable) -> None:
    with Connection.from_settings(local_airtable.settings()) as conn:
        job = Tracker(conn).job(stream=1)
        row = job.refresh()
        with pytest.raises(InvalidInputError, match="only a finished job"):
            push_job_metrics(row, "http://127.0.0.1:9")
        job.complete()
        with pytest.raises(InvalidInputError, match="'ftp://x'"):
            push_job_metrics(job.refresh(), "ftp://x")
