"""Event-loop lag of an asyncio worker using :class:`AsyncTracker` (issue 21).

    .venv/bin/python benchmarks/async_lag.py [--clients 30] [--chunks 10]

One job of ``--clients`` concurrent client coroutines, each scoring ``--chunks`` chunks (an
``await asyncio.sleep`` of 20-120 ms stands for the AI call, then ``run.add``), against a
local server in its own process (as Airtable is: its request handling must not compete with
the worker for the interpreter) at Airtable's 5 req/s and 30 s penalty, with the library's
limiter at 5 req/s and a 1 s flush interval.  A probe coroutine sleeps 5 ms in a loop and
records how late it wakes: the loop's lag.  Two runs: without a penalty, and with a 429
penalty half-way (another client bursts past the server's limit: the base is locked for
30 s, and the worker's next requests get 429s and wait it out).  One line per run:
``loop_lag penalty=no|yes max_ms=M p99_ms=P ticks=N seconds=S add_max_ms=A`` (A: the
longest ``run.add`` call, the only library code the loop's thread runs besides entering and
leaving blocks), then the probe alone for as long as a penalty run (``idle``): the lag this
machine adds with no worker at all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import BENCH_BASE_ID, BENCH_TOKEN
from jobtrack_airtable import AsyncTracker
from jobtrack_airtable.settings import Settings

PROBE = 0.005


async def _probe(lags: list[float], done: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not done.is_set():
        start = loop.time()
        await asyncio.sleep(PROBE)
        lags.append(loop.time() - start - PROBE)


async def _workload(
    tracker: AsyncTracker,
    clients: int,
    chunks: int,
    inject: object | None,
    seed: int,
    in_add: list[float],
) -> None:
    rng = random.Random(seed)
    delays = [[rng.uniform(0.02, 0.12) for _ in range(chunks)] for _ in range(clients)]
    scored = 0
    half = clients * chunks // 2

    async def client(i: int) -> None:
        nonlocal scored
        async with job.client(f"Client-{i:02d}") as run:
            for delay in delays[i]:
                await asyncio.sleep(delay)
                began = time.perf_counter()
                run.add(profiles_examined=10, profiles_scored=9, profile_tokens=4200)
                in_add.append(time.perf_counter() - began)
                scored += 1
                if scored == half and inject is not None:
                    inject()  # type: ignore[operator]

    async with tracker.job(stream=1) as job:
        await asyncio.gather(*(client(i) for i in range(clients)))


@contextmanager
def _server_process() -> Iterator[str]:
    """``jobtrack-airtable local serve`` in its own process, at Airtable's limits."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = Path(sys.executable).with_name("jobtrack-airtable")
    proc = subprocess.Popen(
        [
            str(cli),
            "local",
            "serve",
            "--port",
            str(port),
            "--base-id",
            BENCH_BASE_ID,
            "--rate-limit",
            "5",
            "--penalty",
            "30",
        ],
        env={**os.environ, "JOBTRACK_LOCAL_TOKEN": BENCH_TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _burst(url: str) -> None:
    """Another client of the base going past 5 req/s: the server locks the base for 30 s."""
    with requests.Session() as session:
        for _ in range(12):
            session.get(
                f"{url}/v0/{BENCH_BASE_ID}/Job%20Tracking",
                headers={"Authorization": f"Bearer {BENCH_TOKEN}"},
                params={"maxRecords": 1},
                timeout=10,
            )


def run(clients: int, chunks: int, *, penalty: bool, seed: int) -> str:
    with _server_process() as url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            api_key=BENCH_TOKEN,
            base_id=BENCH_BASE_ID,
            endpoint_url=url,
            rate_limit=5,
            limiter_url=f"sqlite:///{Path(tmp) / 'limiter.sqlite'}",
            outbox_url=f"sqlite:///{Path(tmp) / 'outbox.sqlite'}",  # never the user's own
            flush_interval=1.0,
        )

        in_add: list[float] = []

        async def main() -> tuple[list[float], float]:
            loop = asyncio.get_running_loop()
            inject = (lambda: loop.run_in_executor(None, _burst, url)) if penalty else None
            lags: list[float] = []
            done = asyncio.Event()
            prober = asyncio.create_task(_probe(lags, done))
            started = time.monotonic()
            async with AsyncTracker.from_settings(settings) as tracker:
                await _workload(tracker, clients, chunks, inject, seed, in_add)
            done.set()
            await prober
            return lags, time.monotonic() - started

        lags, seconds = asyncio.run(main())
    return (
        f"loop_lag penalty={'yes' if penalty else 'no'} {_summary(lags)} seconds={seconds:.1f} "
        f"add_max_ms={max(in_add) * 1000:.2f}"
    )


def _summary(lags: list[float]) -> str:
    p99 = statistics.quantiles(lags, n=100)[98] if len(lags) > 1 else 0.0
    return f"max_ms={max(lags) * 1000:.1f} p99_ms={p99 * 1000:.1f} ticks={len(lags)}"


def idle(seconds: float) -> str:
    """The probe alone: the lag this machine adds without any worker."""

    async def main() -> list[float]:
        lags: list[float] = []
        done = asyncio.Event()
        prober = asyncio.create_task(_probe(lags, done))
        await asyncio.sleep(seconds)
        done.set()
        await prober
        return lags

    return f"loop_lag idle {_summary(asyncio.run(main()))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--idle", type=float, default=35.0, help="seconds of the idle probe")
    args = parser.parse_args(argv)
    for penalty in (False, True):
        print(run(args.clients, args.chunks, penalty=penalty, seed=args.seed), flush=True)
    print(idle(args.idle), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
