"""Celery and RQ integrations against the real libraries (issue 21): real Redis, real worker
processes (Celery's prefork pool, RQ's fork-per-job work horse), the local server over HTTP.

A task that fails and is retried continues its client run (the retry does not meet a
``Failed`` row and ``TerminalRunError``); only the last failure fails it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import CRR_TABLE, make_conn, rows
from .test_integrations import worker_env

pytest.importorskip("celery")
pytest.importorskip("rq")
redis = pytest.importorskip("redis")

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JOBTRACK_TEST_REDIS_URL (database 3 of it), else a redis-server of our own."""
    url = os.environ.get("JOBTRACK_TEST_REDIS_URL")
    if url:
        yield url.rsplit("/", 1)[0] + "/3"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis: set JOBTRACK_TEST_REDIS_URL or install redis-server")
    from .test_fleet import RedisServer

    server = RedisServer(binary, tmp_path_factory.mktemp("redis-tasks")).start()
    yield server.url.rsplit("/", 1)[0] + "/3"
    server.kill()


def _env(srv: LocalAirtable, redis_url: str) -> dict[str, str]:
    env = worker_env(srv)
    env["JOBTRACK_TEST_REDIS_URL"] = redis_url
    env["PYTHONPATH"] = str(ROOT)
    return env


def _clients(srv: LocalAirtable) -> dict[str, dict]:
    return {r["fields"]["Client ID"]: r["fields"] for r in rows(srv, CRR_TABLE)}


def _check(srv: LocalAirtable) -> None:
    stored = _clients(srv)
    retried = stored["Retried-Once"]
    assert retried["Status"] == "Completed"
    assert retried["Profiles Examined for Scoring"] == 20  # both attempts' work, once each
    assert (
        "attempt 1 failed (TimeoutError: AI provider timed out); the task will retry"
        in (retried["System Notes"])
    )
    doomed = stored["Always-Fails"]
    assert doomed["Status"] == "Failed"  # the last attempt's failure only
    assert doomed["Error Details"] == "TimeoutError: AI provider timed out"
    assert doomed["Profiles Examined for Scoring"] == 30
    assert "attempt 2 failed" in doomed["System Notes"]
    assert "attempt 3 failed" not in doomed["System Notes"]
    assert stored["First-Try"]["Status"] == "Completed"
    assert stored["First-Try"]["Profiles Examined for Scoring"] == 10


@pytest.mark.timeout(300)
def test_rq_retries_continue_the_run(local_airtable: LocalAirtable, redis_url: str) -> None:
    from redis import Redis
    from rq import Queue, Retry

    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue("jobtrack-tests", connection=connection)
    for cid, fail_times in (("Retried-Once", 1), ("Always-Fails", 9), ("First-Try", 0)):
        queue.enqueue(
            "tests.framework_tasks.rq_score", str(job.run_id), cid, fail_times, retry=Retry(max=2)
        )
    proc = subprocess.run(
        [str(BIN / "rq"), "worker", "--burst", "--url", redis_url, "jobtrack-tests"],
        env=_env(local_airtable, redis_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check(local_airtable)
    connection.close()
    tracker.close()


@pytest.mark.timeout(300)
def test_celery_autoretry_continues_the_run(
    local_airtable: LocalAirtable, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis import Redis

    Redis.from_url(redis_url).flushdb()
    from . import framework_tasks

    framework_tasks.app.conf.update(broker_url=redis_url, result_backend=redis_url)
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    worker = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "tests.framework_tasks",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        env=_env(local_airtable, redis_url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        results = {
            cid: framework_tasks.celery_score.delay(str(job.run_id), cid, fail_times)
            for cid, fail_times in (("Retried-Once", 1), ("Always-Fails", 9), ("First-Try", 0))
        }
        assert results["Retried-Once"].get(timeout=120) == 20
        assert results["First-Try"].get(timeout=120) == 10
        with pytest.raises(TimeoutError):
            results["Always-Fails"].get(timeout=120)
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=60)
    tracker.flush()
    _check(local_airtable)
    assert "TerminalRunError" not in err
    tracker.close()
