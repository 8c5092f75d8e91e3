"""Throughput under Airtable's real rate limit: 1, 2 and 4 worker processes sharing one base.

    .venv/bin/python benchmarks/throughput.py [--processes 1 2 4] [--seconds 20] [--penalty 30]

The local server enforces Airtable's limit: 5 requests per sliding second per base, and a
request over it gets a 429 *and* locks the base for ``--penalty`` seconds (30, Airtable's real
value, by default; a scaled value is printed in the title).  For each configuration, P worker
processes (``multiprocessing``, spawn) run the example worker's jobs back to back for
``--seconds`` against a fresh server, after a barrier so start-up does not count; the
server's request log is read at the end of the window.

Variants (rows):

* **ours** -- the library as a worker uses it, with the client-side limiter shared by every
  process through one SQLite file (``JOBTRACK_LIMITER_URL=sqlite:///…``) and the production
  retry policy (scaled to the penalty when ``--penalty`` is not 30);
* **naive baseline** -- ``benchmarks/naive_baseline.py``: plain pyairtable, default retries,
  no limiter (operations that fail are logged and skipped, as in the original);
* **fleet** -- extension point: ``--redis-url redis://…`` adds a row running the library with
  ``JOBTRACK_LIMITER_URL`` set to that Redis URL (see :func:`fleet_variant`).  Until the Redis
  limiter lands, the row says why it was skipped.

Columns: requests the server received in the window, successful requests per second, 429s,
seconds of the window the base spent locked in a penalty, and jobs completed in the window.

Ends with one line: ``p4_ours_rps=… p4_ours_429s=… p4_naive_rps=… p4_naive_429s=…`` (for the
largest P run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.table import Table

from benchmarks._harness import (
    BENCH_BASE_ID,
    BENCH_TOKEN,
    Discrepancies,
    compare,
    fmt,
    make_console,
    make_tracker,
    setup_logging,
    start_server,
)
from benchmarks.naive_baseline import (
    DeadlineReached,
    NaiveTracker,
    naive_api,
    run_naive_job,
)
from examples.lead_scoring_worker import JobTruth, make_plan, run_job
from jobtrack_airtable import Settings
from jobtrack_airtable.limiter import build_limiter
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY

#: Airtable's per-base limit (SPEC §2.1).
RATE = 5
AIRTABLE_PENALTY = 30.0


@dataclass(frozen=True)
class Variant:
    """One row family of the table: which implementation, and (for ours) which limiter store.

    ``limiter_url`` maps the configuration's temporary directory to a
    ``JOBTRACK_LIMITER_URL`` (``None`` = no limiter, the naive baseline).
    """

    key: str
    name: str
    kind: Literal["ours", "naive"]
    limiter_url: Callable[[Path], str] | None = None
    #: ``"fail"``: never fall back to a local limiter (the fleet row must measure Redis).
    limiter_fallback: Literal["local", "fail"] = "local"


OURS = Variant(
    "ours",
    "ours (local limiter)",
    "ours",
    lambda tmp: f"sqlite:///{tmp / 'ratelimit.sqlite'}",
)
NAIVE = Variant("naive", "naive baseline", "naive")
VARIANTS: dict[str, Variant] = {v.key: v for v in (OURS, NAIVE)}


def fleet_variant(redis_url: str) -> Variant:
    """The fleet row: the library with its limiter in Redis, shared by every process the way
    the machines of a fleet share it (SPEC §3.4).  Extension point for the Redis limiter:
    nothing else in this script needs to change when it lands."""
    return Variant("fleet", "ours, fleet (Redis limiter)", "ours", lambda _tmp: redis_url, "fail")


@dataclass
class Row:
    variant: Variant
    processes: int
    seconds: float
    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    penalty_seconds: float = 0.0
    jobs: int = 0
    failed_ops: int = 0
    check: Discrepancies | None = None
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def _worker(
    kind: str,
    index: int,
    url: str,
    limiter_url: str | None,
    limiter_fallback: str,
    seconds: float,
    penalty: float,
    clients: int,
    chunks: int,
    seed: int,
    barrier: Any,
    results: Any,
) -> None:
    """One worker process: jobs back to back until the window closes."""
    setup_logging(False)
    rng = random.Random(seed * 7919 + index)
    jobs_in_window = 0
    truths: list[JobTruth] = []
    failed = 0
    if kind == "ours":
        tracker = make_tracker(
            url,
            rate_limit=RATE,
            limiter_url=limiter_url,
            limiter_fallback=limiter_fallback,
            policy=DEFAULT_POLICY.scaled(penalty / AIRTABLE_PENALTY),
        )
        barrier.wait()
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            plans = make_plan(rng, clients, chunks, prefix=f"P{index}N{n}-")
            truth = run_job(tracker, plans, stream=index + 1)
            truths.append(truth)
            failed += len(truth.all_tracking_errors)
            jobs_in_window += time.monotonic() <= deadline
            n += 1
        tracker.close()
    else:
        naive = NaiveTracker(naive_api(BENCH_TOKEN, url), BENCH_BASE_ID)
        barrier.wait()
        naive.deadline = time.monotonic() + seconds
        n = 0
        while True:
            plans = make_plan(rng, clients, chunks, prefix=f"P{index}N{n}-")
            try:
                run_naive_job(naive, plans, stream=index + 1)
            except DeadlineReached:
                break
            jobs_in_window += 1
            n += 1
        failed = naive.errors
    results.put({"index": index, "jobs": jobs_in_window, "failed": failed, "truths": truths})


def run_config(
    variant: Variant,
    processes: int,
    *,
    seconds: float,
    penalty: float,
    clients: int,
    chunks: int,
    seed: int,
) -> Row:
    """Run one (variant, P) configuration against a fresh server and limiter file."""
    row = Row(variant, processes, seconds)
    with tempfile.TemporaryDirectory(prefix="jobtrack-throughput-") as tmp:
        limiter_url = variant.limiter_url(Path(tmp)) if variant.limiter_url else None
        if limiter_url is not None:
            # Build and use the limiter once (on a key no worker uses), so a missing backend
            # or an unreachable store skips the row instead of measuring something else.
            try:
                limiter = build_limiter(
                    Settings(
                        _env_file=None,
                        limiter_url=limiter_url,
                        limiter_fallback=variant.limiter_fallback,
                    )
                )
                try:
                    limiter.acquire("appThroughputPre1")
                finally:
                    limiter.close()
            except Exception as exc:
                row.skipped = f"{type(exc).__name__}: {exc}"
                return row
        srv = start_server(rate_limit=RATE, penalty_seconds=penalty)
        try:
            ctx = multiprocessing.get_context("spawn")
            barrier = ctx.Barrier(processes + 1)
            results = ctx.Queue()
            procs = [
                ctx.Process(
                    target=_worker,
                    args=(
                        variant.kind,
                        i,
                        srv.url,
                        limiter_url,
                        variant.limiter_fallback,
                        seconds,
                        penalty,
                        clients,
                        chunks,
                        seed,
                        barrier,
                        results,
                    ),
                )
                for i in range(processes)
            ]
            for p in procs:
                p.start()
            barrier.wait(timeout=120)
            t0 = time.monotonic()
            time.sleep(seconds)
            entries = srv.request_log.entries
            t1 = time.monotonic()
            row.seconds = t1 - t0
            row.requests = len(entries)
            row.ok = sum(1 for e in entries if e.status is not None and 200 <= e.status < 300)
            row.rate_limited = sum(1 for e in entries if e.status == 429)
            row.penalty_seconds = srv.rate_limiter.seconds_in_penalty(t0, t1)
            truths: list[JobTruth] = []
            # Workers finish the job in hand (ours) or abandon it (naive); a worker that hit a
            # 429 sleeps a full penalty first, hence the generous timeout.
            for _ in procs:
                out = results.get(timeout=seconds + 4 * penalty + 120)
                row.jobs += out["jobs"]
                row.failed_ops += out["failed"]
                truths.extend(out["truths"])
            for p in procs:
                p.join(timeout=30)
            if variant.kind == "ours":
                row.check = compare(srv, truths)
            row.extra["requests_total"] = srv.request_log.total
        finally:
            srv.stop()
    return row


def render(rows: Sequence[Row], *, penalty: float, seconds: float) -> Table:
    scaled = (
        "" if penalty == AIRTABLE_PENALTY else f" — SCALED from Airtable's {AIRTABLE_PENALTY:g} s"
    )
    table = Table(
        title=f"Throughput at {RATE} requests/s per base, {penalty:g} s penalty{scaled}; "
        f"{seconds:g} s window per configuration"
    )
    for name, justify in (
        ("variant", "left"),
        ("P", "right"),
        ("requests", "right"),
        ("ok req/s", "right"),
        ("429s", "right"),
        ("s lost to penalties", "right"),
        ("jobs done", "right"),
        ("failed ops", "right"),
        ("base vs truth", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        if r.skipped:
            table.add_row(r.variant.name, str(r.processes), *["—"] * 6, f"skipped: {r.skipped}")
            continue
        table.add_row(
            r.variant.name,
            str(r.processes),
            fmt(r.requests),
            fmt(r.rps, 2),
            fmt(r.rate_limited),
            fmt(r.penalty_seconds, 1),
            fmt(r.jobs),
            fmt(r.failed_ops),
            ("exact" if r.check.ok else r.check.summary()) if r.check else "",
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run every (variant, P) configuration; exit 1 unless ours at the largest P got no 429
    and recorded correctly (requests/s is a wall-time figure: printed, never a verdict)."""
    parser = argparse.ArgumentParser(
        description="Requests/s, 429s and seconds lost to penalties for 1, 2 and 4 worker "
        "processes sharing one base under Airtable's real rate limit (local server)."
    )
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4], help="P values")
    parser.add_argument("--seconds", type=float, default=20.0, help="window per run (20)")
    parser.add_argument(
        "--penalty",
        type=float,
        default=AIRTABLE_PENALTY,
        help="seconds a base stays locked after a 429 (30 = Airtable; a smaller value is "
        "printed as scaled and our retry policy is scaled to match)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=sorted(VARIANTS),
        default=["ours", "naive"],
        help="which rows to run (ours naive)",
    )
    parser.add_argument(
        "--redis-url", help="also run the fleet row: the library with this Redis limiter"
    )
    parser.add_argument("--clients", type=int, default=5, help="clients per job (5)")
    parser.add_argument("--chunks", type=int, default=10, help="chunks per client (10)")
    parser.add_argument("--seed", type=int, default=11, help="seed of the workload (11)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show log lines")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    variants = [VARIANTS[k] for k in args.variants]
    if args.redis_url:
        variants.insert(1, fleet_variant(args.redis_url))
    console = make_console()
    rows: list[Row] = []
    for processes in args.processes:
        for variant in variants:
            console.print(f"running {variant.name}, P={processes} …")
            rows.append(
                run_config(
                    variant,
                    processes,
                    seconds=args.seconds,
                    penalty=args.penalty,
                    clients=args.clients,
                    chunks=args.chunks,
                    seed=args.seed,
                )
            )
    console.print(render(rows, penalty=args.penalty, seconds=args.seconds))
    p = max(args.processes)
    summary = []
    verdict = True
    for key in ("ours", "fleet", "naive"):
        row = next((r for r in rows if r.variant.key == key and r.processes == p), None)
        if row is None or row.skipped:
            continue
        summary.append(f"p{p}_{key}_rps={row.rps:.2f} p{p}_{key}_429s={row.rate_limited}")
        if key == "ours":
            verdict = row.rate_limited == 0 and bool(row.check and row.check.ok)
    print(" ".join(summary))
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
