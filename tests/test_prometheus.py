"""``metrics`` (issue 25): the base's health in Prometheus' format, computed from rows read
over HTTP from a real local server, parsed by ``prometheus_client``'s parser, written
atomically for the textfile collector, and scraped by a real Prometheus server."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from typer.testing import CliRunner

from jobtrack_airtable.admin.ops.prometheus import (
    MAX_CLIENT_SERIES,
    BaseMetrics,
    exposition,
    read_metrics_rows,
)
from jobtrack_airtable.cli import app
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.timeutil import utcnow
from jobtrack_airtable.transport.repository import Repository

from . import prometheus_servers as ps
from .ops_rows import client, job, put, subprocess_env

NOW = datetime(2025, 10, 20, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _samples(text: str) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def _value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    (match,) = [s.value for s in samples[name] if s.labels == labels]
    return float(match)


def _seed(repo: Repository, now: datetime) -> None:
    """Stream 1: a success at now-5h (10 min), a failure at now-3h; stream 2: a success
    last month (outside the month's counters) and a job still running."""
    put(
        repo,
        [
            job(now - 5 * HOUR, "Completed", minutes=10, stream=1),
            job(now - 3 * HOUR, "Failed", minutes=40, stream=1),
            job(now - timedelta(days=25), "Completed", minutes=2, stream=2),
            job(now - HOUR, "Running", minutes=None, stream=2),
        ],
        [
            client(now - 5 * HOUR, "Guy-Wilson", "Completed"),
            client(now - 3 * HOUR, "Guy-Wilson", "Failed"),
            client(now - 3 * HOUR, "Dana-Li", "No Leads To Score"),
        ],
    )


def test_exposition_parsed_by_prometheus_client(srv: LocalAirtable, repo: Repository) -> None:
    _seed(repo, NOW)
    srv.request_log.clear()
    rows = read_metrics_rows(repo, now=NOW)
    assert srv.request_log.total == 2  # one page per table
    text = exposition(BaseMetrics(now=NOW, activity=rows, api_calls=1234, quota=100_000))
    samples = _samples(text.decode())
    success = (NOW - 5 * HOUR + timedelta(minutes=10)).timestamp()
    assert _value(samples, "jobtrack_job_last_success_timestamp_seconds", stream="1") == success
    # Stream 2's last success was last month (25 days ago): still its last success, but not
    # in this month's counters.
    last_month = NOW - timedelta(days=25) + timedelta(minutes=2)
    assert _value(samples, "jobtrack_job_last_success_timestamp_seconds", stream="2") == (
        last_month.timestamp()
    )
    assert [s.labels["stream"] for s in samples["jobtrack_jobs_total"]] == ["1", "1"]
    assert _value(samples, "jobtrack_job_last_start_timestamp_seconds", stream="2") == (
        (NOW - HOUR).timestamp()
    )
    assert _value(samples, "jobtrack_jobs_running", stream="2") == 1
    assert _value(samples, "jobtrack_jobs_total", stream="1", status="Completed") == 1
    assert _value(samples, "jobtrack_jobs_total", stream="1", status="Failed") == 1
    # The histogram: 10 min and 40 min in stream 1.
    assert _value(samples, "jobtrack_job_duration_seconds_count", stream="1") == 2
    assert _value(samples, "jobtrack_job_duration_seconds_sum", stream="1") == 50 * 60
    assert _value(samples, "jobtrack_job_duration_seconds_bucket", stream="1", le="600.0") == 1
    assert _value(samples, "jobtrack_job_duration_seconds_bucket", stream="1", le="+Inf") == 2
    assert {s.labels["status"]: s.value for s in samples["jobtrack_client_runs_total"]} == {
        "Running": 0,
        "Completed": 1,
        "Failed": 1,
        "No Leads To Score": 1,
    }
    assert _value(samples, "jobtrack_client_consecutive_failures", client="Guy-Wilson") == 1
    assert [s.labels for s in samples["jobtrack_client_consecutive_failures"]] == [
        {"client": "Guy-Wilson"}
    ]
    assert _value(samples, "jobtrack_api_calls_month") == 1234
    assert _value(samples, "jobtrack_api_calls_quota") == 100_000
    # No _created series: these are recomputed figures, not this process's counters.
    assert not any(name.endswith("_created") for name in samples)


def test_per_client_series_stay_bounded(repo: Repository) -> None:
    start = NOW - 2 * HOUR
    put(
        repo,
        [job(start, "Completed")],
        [
            *(client(start, f"Client-{i:03d}", "Failed") for i in range(MAX_CLIENT_SERIES + 15)),
            *(client(start, f"Fine-{i:03d}", "Completed") for i in range(50)),
        ],
    )
    rows = read_metrics_rows(repo, now=NOW)
    samples = _samples(exposition(BaseMetrics(NOW, rows, None, None)).decode())
    failing = samples["jobtrack_client_consecutive_failures"]
    assert len(failing) == MAX_CLIENT_SERIES
    assert "jobtrack_api_calls_month" not in samples and "jobtrack_api_calls_quota" not in samples


def test_metrics_command_writes_the_textfile_atomically(
    srv: LocalAirtable, repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in subprocess_env(srv).items():
        monkeypatch.setenv(key, value)
    _seed(repo, utcnow().replace(microsecond=0))
    out = tmp_path / "textfile" / "jobtrack.prom"
    out.parent.mkdir()
    out.write_text("# the previous scrape's file\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["metrics", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    samples = _samples(out.read_text(encoding="utf-8"))
    assert _value(samples, "jobtrack_jobs_running", stream="2") == 1
    # Written by rename: no temporary file left beside it for the collector to read.
    assert [p.name for p in out.parent.iterdir()] == ["jobtrack.prom"]


@pytest.mark.slow
def test_real_prometheus_scrapes_metrics_serve(
    srv: LocalAirtable, repo: Repository, tmp_path: Path
) -> None:
    binary = ps.find("prometheus")
    if binary is None:
        pytest.skip("no prometheus binary (apt-get install prometheus; .ci/prometheus.sh)")
    _seed(repo, utcnow().replace(microsecond=0))
    port = ps.free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jobtrack_airtable.cli", "metrics", "serve", "--port", str(port)],
        env=subprocess_env(srv),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        scrape = ps.wait_for("metrics serve", lambda: ps.get(f"http://127.0.0.1:{port}/metrics"))
        assert b"jobtrack_job_last_success_timestamp_seconds" in scrape
        with ps.running_prometheus(f"127.0.0.1:{port}", tmp_path, binary) as prom:
            up = ps.wait_for(
                "a successful scrape",
                lambda: prom.query("up") if prom.query("up == 1") else None,
            )
            assert [(r["metric"]["job"], r["value"][1]) for r in up] == [("jobtrack", "1")]
            series = ps.wait_for(
                "the series",
                lambda: prom.query("jobtrack_job_last_success_timestamp_seconds") or None,
            )
            assert sorted(r["metric"]["stream"] for r in series) == ["1", "2"]
            running = prom.query("jobtrack_jobs_running")
            assert [(r["metric"]["stream"], r["value"][1]) for r in running] == [("2", "1")]
            assert prom.query('jobtrack_client_runs_total{status="Failed"}')[0]["value"][1] == "1"
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0  # SIGTERM is a clean stop
        assert server.stderr is not None
        err = server.stderr.read().decode()
        server.stderr.close()
    assert f"Serving metrics on http://127.0.0.1:{port}/metrics" in err


def test_metrics_serve_recomputes_at_most_once_per_min_interval(
    srv: LocalAirtable, repo: Repository
) -> None:
    """Three scrapes inside --min-interval cost one read of the base (one page per table)."""
    _seed(repo, utcnow().replace(microsecond=0))
    srv.request_log.clear()
    port = ps.free_port()
    args = ["metrics", "serve", "--port", str(port), "--min-interval", "1h"]
    server = subprocess.Popen(
        [sys.executable, "-m", "jobtrack_airtable.cli", *args],
        env=subprocess_env(srv),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        scrapes = [ps.wait_for("metrics serve", lambda: ps.get(url))]
        scrapes += [ps.get(url), ps.get(url)]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert len(set(scrapes)) == 1  # the same figures, not recomputed
    assert b'jobtrack_jobs_running{stream="2"} 1.0' in scrapes[0]
    assert srv.request_log.total == 2


def test_metrics_ride_out_a_transient_server_error(srv: LocalAirtable, repo: Repository) -> None:
    _seed(repo, NOW)
    srv.request_log.clear()
    srv.faults.add("503", method="GET", times=1, retry_after=0)
    rows = read_metrics_rows(repo, now=NOW)
    assert srv.request_log.total == 3  # the 503, its retry, the other table
    samples = _samples(exposition(BaseMetrics(NOW, rows, None, None)).decode())
    assert _value(samples, "jobtrack_jobs_running", stream="2") == 1
