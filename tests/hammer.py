"""Real worker processes hammering a local server through one shared limiter.

Each worker is a spawned process (nothing inherited but its arguments) that builds its own
``pyairtable.Api`` through :func:`~jobtrack_airtable.transport.client.build_api` -- so every request
passes the real ``AirtableAdapter`` and the limiter named by ``limiter_url`` -- and sends
``requests`` GETs to the ``Job Tracking`` table as fast as the limiter lets it.  A 429 is not
retried: it is counted by the server's request log, which is what the tests read.

``busy_loops(n)`` starts ``n`` processes that spin on the CPU, to saturate the machine.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from jobtrack_airtable.local import LocalAirtable

JOBS = "Job Tracking"


@dataclass(frozen=True)
class HammerSpec:
    url: str
    token: str
    base: str
    limiter_url: str
    requests: int
    penalty_seconds: float
    cache_dir: str = ""


def _hammer(spec: HammerSpec, barrier: Any, results: Any) -> None:
    import os

    if spec.cache_dir:
        os.environ["XDG_CACHE_HOME"] = spec.cache_dir
    from jobtrack_airtable.settings import Settings
    from jobtrack_airtable.transport.client import build_api
    from jobtrack_airtable.transport.recovery import RetryPolicy

    settings = Settings(
        _env_file=None,
        api_key=spec.token,
        base_id=spec.base,
        endpoint_url=spec.url,
        limiter_url=spec.limiter_url,
        rate_limit=5,
    )
    # One attempt per request: the hammer measures the limiter alone (a 429 is answered,
    # never waited out and retried).
    api = build_api(
        settings, policy=RetryPolicy(max_attempts=1), penalty_seconds=spec.penalty_seconds
    )
    table = api.table(spec.base, JOBS)
    statuses: list[int] = []
    error = None
    try:
        barrier.wait(timeout=120)  # start together: spawn start-up times differ by seconds
        for _ in range(spec.requests):
            try:
                table.first()
                statuses.append(200)
            except requests.HTTPError as exc:
                statuses.append(exc.response.status_code if exc.response is not None else -1)
    except Exception as exc:  # reported to the parent, which asserts on it
        error = f"{type(exc).__name__}: {exc}"
    finally:
        adapter = api.session.get_adapter(spec.url)
        adapter.limiter.close()  # type: ignore[attr-defined]
    results.put({"statuses": statuses, "error": error})


def run_hammer(
    srv: LocalAirtable,
    *,
    processes: int,
    requests_each: int,
    limiter_url: str,
    penalty_seconds: float,
    while_running: Callable[[], None] | None = None,
    cache_dirs: list[str] | None = None,
    timeout: float = 300.0,
) -> list[dict[str, Any]]:
    """Run ``processes`` hammering workers to completion and return their reports."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(processes)
    specs = [
        HammerSpec(
            srv.url,
            srv.token,
            srv.base_id,
            limiter_url,
            requests_each,
            penalty_seconds,
            cache_dirs[i] if cache_dirs else "",
        )
        for i in range(processes)
    ]
    procs = [ctx.Process(target=_hammer, args=(spec, barrier, results)) for spec in specs]
    for p in procs:
        p.start()
    try:
        if while_running is not None:
            while_running()
        reports = [results.get(timeout=timeout) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    return reports


def job_statuses(srv: LocalAirtable) -> list[int | None]:
    """Statuses of every request the server received for the workers' table."""
    return [e.status for e in srv.request_log.entries if JOBS in e.decoded_path]


def wait_for_requests(srv: LocalAirtable, n: int, timeout: float = 120.0) -> None:
    """Block until the server has received ``n`` requests for the workers' table."""
    deadline = time.monotonic() + timeout
    while len(job_statuses(srv)) < n and time.monotonic() < deadline:
        time.sleep(0.01)


@contextmanager
def busy_loops(n: int) -> Iterator[None]:
    """``n`` processes spinning on the CPU for the duration (killed afterwards)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)
