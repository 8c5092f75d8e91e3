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

Ends with one line: ``ours=N budget=N baseline=N ratio=R``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from benchmarks._harness import (
    CostReport,
    fmt,
    make_console,
    measure_request_cost,
    phase_rows,
    setup_logging,
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
