"""Requests per operation: the library against the SPEC §4 budgets and the naive baseline.

    .venv/bin/python benchmarks/request_cost.py [--clients 50] [--chunks 20] [--seed 7]

Fixed workload: one job of the example worker (``examples/lead_scoring_worker.py``) over 50
clients of 20 chunks each (one ``run.add`` per chunk; some clients have no leads, some fail
part-way), then completion.  It runs three times, each against a fresh local server with the
rate limit off, and the requests are counted from the server's request log:

* **ours** -- the library with its defaults (flush interval 5 s);
* **ours, flush every chunk** -- flush interval 0: the most the library can spend on this
  workload, whatever the chunks' timing (real scoring is slow, so a real run lies between);
* **naive baseline** -- ``benchmarks/naive_baseline.py``: plain pyairtable as the original
  Node system worked (look up by formula then create/update, one record per request,
  read-modify-write per chunk, default pyairtable retries).

Ends with one line: ``ours=N budget=N baseline=N ratio=R``, then a second workload, "K
clients open at once" (default 50): K runs opened together, ``--intervals`` flush intervals
in which every run records a chunk (each interval ends with the drain the group commit's
thread makes), then all closed and the job completed.  Its line:
``open_at_once clients=K intervals=I ours=N per_interval=P budget=M`` where the budget is
start 2 + ⌈K/10⌉ per interval (the opens ride with the first) + ⌈K/10⌉ closes + completion
(⌈K/100⌉ + 2).

Then two workloads on a simulated clock (``benchmarks/_cadence.py``, issue 19):

* a continuously busy worker for ``--hours`` (24): one client at a time, 10 minutes each with
  a chunk every 30 s, jobs of 50 clients back to back, the default budget of 10,000
  requests a month; line ``busy_worker hours=H requests=N per_day=D budget_per_day=B
  slowest_visible=S`` (opens and closes must show within 60 s);
* a job of ``--big-job`` (5,000) quick clients, twice: started with
  ``tracker.job(exclusive=True)``, then as a shared job (the default); lines ``big_job
  clients=N exclusive=yes|no requests=R floor=F ratio=X limit=L completion=C
  completion_budget=B total=T`` where the floor is the start (2) + ⌈N/10⌉ (each client's final
  state once), ``requests`` what the job cost before its completion (the goal: within
  ``limit`` = 1.1 × the floor, measured as the 807 of issue 19 was) and the completion, counted
  apart as SPEC §4 counts it, 2 (exclusive: the rows acknowledged are known) or ⌈N/100⌉ + 2
  (the client rows are read back), within ``completion_budget`` = SPEC §4's ⌈N/100⌉ + 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import math

from rich.console import Console
from rich.table import Table

from benchmarks._cadence import big_job, big_job_floor, busy_worker
from benchmarks._harness import (
    CostReport,
    fmt,
    make_console,
    make_tracker,
    measure_request_cost,
    phase_rows,
    setup_logging,
    start_server,
)


def render(report: CostReport, console: Console) -> None:
    """Print the per-operation table and the correctness check of every run."""
    n = report.clients
    title = (
        f"Requests for 1 job × {n} clients × {report.chunks} chunks "
        f"({report.increments} metric increments), then completion"
    )
    table = Table(title=title)
    table.add_column("operation")
    table.add_column(f"ours (flush {report.flush_interval:g} s)", justify="right")
    table.add_column("SPEC §4 budget", justify="right")
    if report.ours_eager is not None:
        table.add_column("ours, flush every chunk", justify="right")
        table.add_column("its budget", justify="right")
    table.add_column("naive baseline", justify="right")
    eager = report.ours_eager.phases if report.ours_eager else None
    budget_eager = report.budget_eager or {}
    for phase, label, (ours, ours_eager, naive), budget in phase_rows(
        report.budget, report.ours.phases, eager, report.naive.phases
    ):
        cells = [label, fmt(ours), f"≤ {budget}"]
        if report.ours_eager is not None:
            cells += [fmt(ours_eager), f"≤ {budget_eager.get(phase, 0)}"]
        table.add_row(*cells, fmt(naive))
    totals = ["total", fmt(report.ours.total), f"≤ {sum(report.budget.values())}"]
    if report.ours_eager is not None:
        totals += [fmt(report.ours_eager.total), f"≤ {sum(budget_eager.values())}"]
    table.add_row(*totals, fmt(report.naive.total), style="bold")
    console.print(table)
    runs = [report.ours, *([report.ours_eager] if report.ours_eager else []), report.naive]
    for run in runs:
        console.print(
            f"{run.name}: {run.total} requests in {run.seconds:.2f} s; "
            f"base vs ground truth: {run.discrepancies.summary()}"
        )
    if report.ours_eager is not None:
        console.print(
            f"naive / ours = {report.ratio:.1f}×; even flushing every chunk the library "
            f"makes {report.naive.total / max(1, report.ours_eager.total):.1f}× fewer requests."
        )


def open_at_once(clients: int, intervals: int) -> tuple[int, list[int], int]:
    """K runs open at once through ``intervals`` flush intervals: (requests, requests of each
    interval, budget).  Interval boundaries are the drains the group commit's thread makes
    (called here explicitly, so the count does not depend on timing)."""
    srv = start_server()
    try:
        tracker = make_tracker(srv.url, flush_interval=3600.0)
        per_interval: list[int] = []
        with tracker.job() as job:
            runs = job.open_clients([f"Client-{i:03d}" for i in range(clients)])
            for _ in range(intervals):
                mark = srv.request_log.total
                for i, run in enumerate(runs):
                    run.add(profiles_examined=10 + i % 7, profiles_scored=5, profile_tokens=900)
                tracker.flush()
                per_interval.append(srv.request_log.total - mark)
            for run in runs:
                run.close()
        total = srv.request_log.total
        tracker.close()
        rows = srv.store.snapshot(None, "Client Run Results")[1]
        assert len(rows) == clients, "a client row is missing or duplicated"
        budget = 2 + intervals * math.ceil(clients / 10) + math.ceil(clients / 10)
        budget += math.ceil(clients / 100) + 2
        return total, per_interval, budget
    finally:
        srv.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; exit 1 if a budget is exceeded or the ratio is below 3."""
    parser = argparse.ArgumentParser(
        description="Requests per operation of the library vs the SPEC §4 budgets and a "
        "naive pyairtable baseline, on a fixed workload against the local server."
    )
    parser.add_argument("--clients", type=int, default=50, help="clients in the job (50)")
    parser.add_argument("--chunks", type=int, default=20, help="chunks per client (20)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the workload (7)")
    parser.add_argument(
        "--no-eager", action="store_true", help="skip the flush-every-chunk run of the library"
    )
    parser.add_argument(
        "--open-at-once", type=int, default=50, help="clients of the open-at-once workload (50)"
    )
    parser.add_argument(
        "--intervals", type=int, default=20, help="flush intervals of that workload (20)"
    )
    parser.add_argument("--hours", type=float, default=24.0, help="busy-worker hours (24)")
    parser.add_argument("--big-job", type=int, default=5000, help="clients of the big job (5000)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show log lines")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    report = measure_request_cost(
        args.clients, args.chunks, seed=args.seed, eager=not args.no_eager
    )
    render(report, make_console())
    budget = sum(report.budget.values())
    over = [p for p, n in report.ours.phases.items() if n > report.budget.get(p, 0)]
    ok = not over and report.ours.total <= budget and report.ratio >= 3
    print(
        f"ours={report.ours.total} budget={budget} baseline={report.naive.total} "
        f"ratio={report.ratio:.1f}"
    )
    total, per_interval, at_once_budget = open_at_once(args.open_at_once, args.intervals)
    print(
        f"open_at_once clients={args.open_at_once} intervals={args.intervals} ours={total} "
        f"per_interval={max(per_interval)} budget={at_once_budget}"
    )
    ok = ok and total <= at_once_budget
    ok = cadence_lines(args.hours, args.big_job) and ok
    return 0 if ok else 1


def cadence_lines(hours: float, clients: int) -> bool:
    """Print the busy-worker and big-job lines; whether both meet their goals."""
    srv = start_server()
    try:
        busy = busy_worker(srv, hours=hours)
    finally:
        srv.stop()
    per_day_budget = 10_000 / 30
    print(
        f"busy_worker hours={hours:g} requests={busy.requests} per_day={busy.per_day:.0f} "
        f"budget_per_day={per_day_budget:.0f} slowest_visible={busy.slowest_visible:g}"
    )
    floor = big_job_floor(clients)
    completion_budget = -(-clients // 100) + 2
    within = True
    for exclusive in (True, False):
        srv = start_server()
        try:
            big, completion = big_job(srv, clients=clients, exclusive=exclusive)
        finally:
            srv.stop()
        print(
            f"big_job clients={clients} exclusive={'yes' if exclusive else 'no'} "
            f"requests={big.requests} floor={floor} ratio={big.requests / floor:.3f} "
            f"limit={1.1 * floor:.0f} completion={completion} "
            f"completion_budget={completion_budget} total={big.requests + completion}"
        )
        within = within and big.requests <= 1.1 * floor and completion <= completion_budget
    return busy.per_day <= per_day_budget and busy.slowest_visible <= 60 and within


if __name__ == "__main__":
    sys.exit(main())
