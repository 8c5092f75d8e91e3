"""``sync`` planning at scale: requests, wall time and peak memory over 10,000 and 50,000
client rows.

    .venv/bin/python benchmarks/sync_scale.py [--sizes 10000 50000] [--clients-per-job 50]

For each size, a fresh local server's store is filled *directly* (no HTTP, no request log)
with a realistic base: jobs of ``--clients-per-job`` client rows each, mostly consistent, with
a small share of planted problems so the plan has work to do (legacy statuses, stale
``Running`` rows, wrong job aggregates, duplicate client rows).  Then
:func:`jobtrack_airtable.admin.sync.plan_sync` plans over it in a separate process (spawned, like
an admin's CLI process, so the server's own memory is not counted).

Columns: rows, requests made (from the server's request log) against the SPEC §4 budget
``1 + ⌈J/100⌉ + ⌈C/100⌉`` (the schema read, then the pages), wall time of the plan with the
limiter off (reads + detection), peak traced Python memory of the planning process
(``tracemalloc``, in a second, traced run) and the same per client row, its peak RSS
(``resource.getrusage``, untraced run, interpreter and libraries included); then, with
``--rate`` (default 5, Airtable's limit), the plan's wall time with the client-side limiter at
that rate against the same requests made without planning (the reads alone), and their ratio:
a streaming plan hides its CPU behind the reads, so the ratio stays near 1.

Ends with one line: ``rows=N requests=N budget=N seconds=S peak_mib=M bytes_per_row=B
[paced_seconds=S reads_seconds=S ratio=R]`` per size, joined by `` | ``.  Exits 1 when a
size breaks the budget or holds more than 1 KiB per client row; the ratio is a wall-time
figure (a busy machine moves it), so it is printed, never a verdict.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.table import Table

from benchmarks._harness import (
    BENCH_BASE_ID,
    fmt,
    make_console,
    make_tracker,
    setup_logging,
    start_server,
)
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.metrics import JOB_SUM_KEYS
from jobtrack_airtable.schema import load_schema
from jobtrack_airtable.timeutil import to_airtable
from jobtrack_airtable.transport.codec import codec_for

INSERT_BATCH = 5_000


def fill_store(
    srv: LocalAirtable, client_rows: int, *, clients_per_job: int, seed: int
) -> tuple[int, int]:
    """Insert about ``client_rows`` client rows (and their jobs) into ``srv``'s store.
    Returns ``(jobs, client rows)`` inserted."""
    rng = random.Random(seed)
    schema = load_schema()
    jobs_spec, crr_spec = schema.jobs, schema.client_runs
    now = datetime.now(UTC)
    start = now - timedelta(days=60)
    jobs_n = math.ceil(client_rows / clients_per_job)
    job_rows: list[dict[str, Any]] = []
    client_batch: list[dict[str, Any]] = []
    inserted = 0

    def flush_clients() -> None:
        nonlocal inserted
        if client_batch:
            srv.store.create_records(
                BENCH_BASE_ID, crr_spec.name, client_batch, typecast=True, limit=None
            )
            inserted += len(client_batch)
            client_batch.clear()

    for j in range(jobs_n):
        began = start + timedelta(minutes=20 * j)
        base = began.strftime("%y%m%d-%H%M%S")
        # Every aggregate the job row holds, so a consistent job is consistent in full.
        sums = dict.fromkeys(JOB_SUM_KEYS, 0)
        failed = 0
        n = min(clients_per_job, client_rows - j * clients_per_job)
        for i in range(n):
            client_id = f"Client-{i:04d}"
            examined = rng.randint(0, 400)
            scored = rng.randint(0, examined)
            status = rng.choices(["Completed", "Failed", "No Leads To Score"], [90, 5, 5])[0]
            c_start = began + timedelta(seconds=5 + 10 * i)
            values: dict[str, Any] = {
                "run_id": f"{base}-{client_id}",
                "client_id": client_id,
                "client_name": client_id.replace("-", " "),
                "status": status,
                "start_time": to_airtable(c_start),
                "end_time": to_airtable(c_start + timedelta(seconds=rng.randint(5, 300))),
                "last_updated": to_airtable(c_start + timedelta(seconds=300)),
                "profiles_examined": examined,
                "profiles_scored": scored,
                "profile_tokens": scored * 500,
            }
            roll = rng.random()
            if roll < 0.01:
                values["status"] = "Success"  # legacy status: sync maps it
            elif roll < 0.015:
                values["status"] = "Running"  # stale: sync proposes Failed
                values.pop("end_time")
            failed += values["status"] == "Failed"
            for key in sums:
                sums[key] += values.get(key, 0)
            client_batch.append(codec_for(crr_spec).names(values))
            if rng.random() < 0.001:  # a duplicate row for the same run
                client_batch.append(codec_for(crr_spec).names(values))
            if len(client_batch) >= INSERT_BATCH:
                flush_clients()
        job: dict[str, Any] = {
            "run_id": base,
            "status": "Completed",
            "stream": 1 + j % 4,
            "start_time": to_airtable(began),
            "end_time": to_airtable(began + timedelta(minutes=15)),
            "last_updated": to_airtable(began + timedelta(minutes=15)),
            "clients_processed": n,
            "clients_with_errors": failed,
            **{k: v for k, v in sums.items() if k in jobs_spec.fields},
        }
        if rng.random() < 0.02:
            job["clients_processed"] = n + 1  # a drifted aggregate: sync recomputes it
        job_rows.append(
            codec_for(jobs_spec).names({k: v for k, v in job.items() if k in jobs_spec.fields})
        )
    flush_clients()
    for s in range(0, len(job_rows), INSERT_BATCH):
        srv.store.create_records(
            BENCH_BASE_ID,
            jobs_spec.name,
            job_rows[s : s + INSERT_BATCH],
            typecast=True,
            limit=None,
        )
    return len(job_rows), inserted


def plan_in_process(url: str, mode: str, rate: float) -> dict[str, Any]:
    """Run in a spawned process and measure itself.  ``mode``:

    * ``"plan"``: :func:`plan_sync` untraced: wall time and peak RSS;
    * ``"traced"``: the same under ``tracemalloc`` (about threefold slower, hence a separate
      run): the peak of traced Python allocations;
    * ``"reads"``: the same requests without planning (schema read, then every page of both
      tables): what the plan's wall time is compared with at ``rate`` requests/s.

    ``rate`` is the client-side limiter's rate (0 = off: requests counted, not throttled).
    """
    import resource
    import tracemalloc

    from jobtrack_airtable.admin.schema_check import fetch_meta
    from jobtrack_airtable.admin.sync import plan_sync
    from jobtrack_airtable.admin.sync.model import TABLE_ORDER
    from jobtrack_airtable.admin.sync.reader import read_tables

    setup_logging(False)
    tracker = make_tracker(url, timeout=120.0, rate_limit=rate)
    if mode == "traced":
        tracemalloc.start()
    started = time.perf_counter()
    summary = ""
    if mode == "reads":
        fetch_meta(tracker.conn)
        for _page in read_tables(tracker.repo, TABLE_ORDER):
            pass
    else:
        plan = plan_sync(tracker.repo)
        summary = (
            f"{plan.summary.update} update, {plan.summary.delete} delete, "
            f"{plan.summary.create} create, {plan.summary.attention} attention"
        )
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if mode == "traced" else 0
    tracemalloc.stop()
    tracker.close()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "seconds": seconds,
        "peak_bytes": peak,
        "rss_bytes": rss_kib * 1024,
        "summary": summary,
    }


def _run(ctx: Any, url: str, mode: str, rate: float) -> dict[str, Any]:
    # A fresh process per run: peak RSS and traced memory are per process.
    with ctx.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(plan_in_process, (url, mode, rate))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Plan over each size; exit 1 if a plan exceeds its request budget or holds more than
    1 KiB per client row (counts, not timings: the ratio is printed only)."""
    parser = argparse.ArgumentParser(
        description="Requests, wall time and peak memory of sync planning over large bases "
        "(rows inserted directly into the local server's store)."
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help="client rows per run (10000 50000; with --mirror 10000 50000 100000)",
    )
    parser.add_argument("--clients-per-job", type=int, default=50, help="client rows per job")
    parser.add_argument("--seed", type=int, default=3, help="seed of the data set (3)")
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="requests/s of the simulated Airtable run (plan vs reads alone); 0 skips it (5)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show log lines")
    parser.add_argument(
        "--mirror",
        action="store_true",
        help="instead: requests of sync with the local mirror (first, unchanged, K changed, "
        "50 deleted), planning CPU per row and a 15-minute cron's calls per month "
        "(sizes 10,000 50,000 100,000 unless --sizes)",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.mirror:
        from benchmarks._mirror_scale import run

        return run(args.sizes or [10_000, 50_000, 100_000], args.clients_per_job, args.seed)
    sizes = args.sizes or [10_000, 50_000]
    from jobtrack_airtable.admin.sync import plan_budget

    console = make_console()
    table = Table(title="sync plan at scale")
    columns = ["client rows", "jobs", "requests", "budget", "plan (no limit)", "peak traced"]
    columns += ["bytes/row", "peak RSS"]
    if args.rate:
        columns += [f"plan at {args.rate:g} req/s", f"reads alone at {args.rate:g} req/s", "ratio"]
    columns.append("plan")
    for name in columns:
        table.add_column(name, justify="left" if name == "plan" else "right")
    lines = []
    ok = True
    ctx = multiprocessing.get_context("spawn")
    for size in sizes:
        srv = start_server()
        try:
            console.print(f"filling the store with {size:,} client rows …")
            jobs, clients = fill_store(
                srv, size, clients_per_job=args.clients_per_job, seed=args.seed
            )
            srv.request_log.clear()
            result = _run(ctx, srv.url, "plan", 0)
            requests = srv.request_log.total
            traced = _run(ctx, srv.url, "traced", 0)
            paced = reads = None
            if args.rate:
                console.print(f"  … and at {args.rate:g} requests/s (plan, then reads alone)")
                paced = _run(ctx, srv.url, "plan", args.rate)
                reads = _run(ctx, srv.url, "reads", args.rate)
        finally:
            srv.stop()
        budget = plan_budget(jobs, clients)
        per_row = traced["peak_bytes"] / clients
        ok = ok and requests == budget and per_row <= 1024
        mib = traced["peak_bytes"] / 2**20
        row = [
            fmt(clients),
            fmt(jobs),
            fmt(requests),
            f"= {budget}",
            f"{result['seconds']:.1f} s",
            f"{mib:.0f} MiB",
            f"{per_row:,.0f}",
            f"{result['rss_bytes'] / 2**20:.0f} MiB",
        ]
        line = (
            f"rows={clients} requests={requests} budget={budget} "
            f"seconds={result['seconds']:.1f} peak_mib={mib:.0f} bytes_per_row={per_row:.0f}"
        )
        if paced is not None and reads is not None:
            ratio = paced["seconds"] / reads["seconds"]
            row += [f"{paced['seconds']:.1f} s", f"{reads['seconds']:.1f} s", f"{ratio:.3f}"]
            line += (
                f" paced_seconds={paced['seconds']:.1f} reads_seconds={reads['seconds']:.1f} "
                f"ratio={ratio:.3f}"
            )
        row.append(result["summary"])
        table.add_row(*row)
        lines.append(line)
    console.print(table)
    print(" | ".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
