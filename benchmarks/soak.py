"""Soak: many workers, jobs and clients under injected faults; then the base vs ground truth.

    .venv/bin/python benchmarks/soak.py [--workers 4] [--jobs 3] [--clients 20] [--chunks 10]

W worker processes each run J jobs of the example worker (``examples/lead_scoring_worker.py``)
over C clients of K chunks, against one local server injecting, on every request at random:

* ``--p429`` (10%) rate-limit responses -- the server's own rate limit is off, so an injected
  429 carries no real penalty; the retry policy is ``DEFAULT_POLICY.scaled(--penalty-scale)``
  (0.01: waits 0.3 s + up to 0.05 s jitter after a 429 instead of 30 s + 5 s, and every other
  duration of the policy scaled alike; attempts unchanged);
* ``--p5xx`` (5%) server errors, split evenly over 500, 502 and 503 (``Retry-After`` scaled);
* ``--p-drop`` (3%) connections dropped before the request is processed;
* ``--p-lost`` (3%) requests applied, then the connection dropped before the response (the
  case that makes naive retries duplicate rows and double increments).

Metric flushes happen on every ``run.add`` (``--flush-interval 0``) so every increment is a
write exposed to the faults.  Afterwards the base (read from the server's storage, no HTTP)
is compared with what the workers meant to record:

* ``lost`` -- client metric values that did not land exactly once (missing, short or doubled);
* ``duplicates`` -- extra rows for a Run ID, or rows no worker meant to write;
* ``wrong_aggregates`` -- job aggregate fields or job statuses that differ from the truth;
* ``stuck_running`` -- rows still ``Running`` after every worker finished.

Ends with exactly one line: ``lost=N duplicates=N wrong_aggregates=N stuck_running=N``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.table import Table

from benchmarks._harness import (
    SoakConfig,
    SoakReport,
    fmt,
    make_console,
    run_soak,
    setup_logging,
)


def render(report: SoakReport) -> list[Table | str]:
    """The configuration, what was injected, and the comparison with the ground truth."""
    c = report.config
    d = report.discrepancies
    policy = c.policy
    setup = Table(title="Soak", show_header=False)
    setup.add_column("")
    setup.add_column("")
    setup.add_row(
        "workload",
        f"{c.workers} {'processes' if c.processes else 'threads'} × {c.jobs} jobs × "
        f"{c.clients} clients × {c.chunks} chunks (flush interval {c.flush_interval:g} s)",
    )
    setup.add_row(
        "faults injected (probability per request)",
        f"429 {c.p429:.0%}, 5xx {c.p5xx:.0%}, dropped {c.p_drop:.0%}, "
        f"applied-but-response-lost {c.p_lost:.0%}",
    )
    setup.add_row(
        "retry policy",
        f"DEFAULT_POLICY.scaled({c.penalty_scale:g}): 429 wait {policy.rate_limit_wait:g} s "
        f"+ ≤{policy.rate_limit_jitter:g} s (Airtable: 30 s), max {policy.max_attempts} "
        f"attempts within {policy.max_total_seconds:g} s",
    )
    setup.add_row("requests received", fmt(report.requests))
    setup.add_row(
        "faults fired",
        ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items()))
        + f" (total {sum(report.faults.values())})",
    )
    setup.add_row(
        "recorded by the workers",
        f"{len(report.truths)} jobs, {sum(len(t.clients) for t in report.truths)} client "
        f"runs, {report.increments} metric increments",
    )
    setup.add_row("wall time", f"{report.seconds:.1f} s")

    result = Table(title="Base vs ground truth")
    result.add_column("check")
    result.add_column("count", justify="right")
    result.add_column("meaning")
    result.add_row(
        "lost",
        fmt(d.lost),
        f"metric values not landed exactly once (short {d.short}, "
        f"doubled {d.over}, in missing rows {d.missing_rows})",
    )
    result.add_row(
        "duplicates", fmt(d.duplicates), f"extra rows per Run ID (of which stray {d.stray})"
    )
    result.add_row("wrong_aggregates", fmt(d.wrong_aggregates), "job fields/statuses off")
    result.add_row("stuck_running", fmt(d.stuck_running), "rows left Running")
    result.add_row("wrong_status", fmt(d.wrong_status), "client runs closed with another status")
    result.add_row(
        "tracking errors", fmt(d.tracking_errors), "library gave up retrying (seen by worker)"
    )
    result.add_row("worker crashes", fmt(len(report.worker_crashes)), "")
    out: list[Table | str] = [setup, result]
    out += [f"  {line}" for line in d.details[:20]]
    out += [f"  crash: {line}" for line in report.worker_crashes]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; exit 1 unless every check is zero."""
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(
        description="Workers × jobs × clients of the example worker under injected faults, "
        "then the base compared with the ground truth."
    )
    parser.add_argument("--workers", type=int, default=defaults.workers, help="workers (4)")
    parser.add_argument("--jobs", type=int, default=defaults.jobs, help="jobs per worker (3)")
    parser.add_argument("--clients", type=int, default=defaults.clients, help="per job (20)")
    parser.add_argument("--chunks", type=int, default=defaults.chunks, help="per client (10)")
    parser.add_argument("--p429", type=float, default=defaults.p429, help="429 rate (0.10)")
    parser.add_argument("--p5xx", type=float, default=defaults.p5xx, help="5xx rate (0.05)")
    parser.add_argument(
        "--p-drop", type=float, default=defaults.p_drop, help="dropped connections (0.03)"
    )
    parser.add_argument(
        "--p-lost", type=float, default=defaults.p_lost, help="applied, response lost (0.03)"
    )
    parser.add_argument(
        "--penalty-scale",
        type=float,
        default=defaults.penalty_scale,
        help="retry policy = DEFAULT_POLICY.scaled(this) (0.01: 0.3 s instead of 30 s)",
    )
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=defaults.flush_interval,
        help="seconds between metric flushes (0: every add is a write)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=None,
        help="attempts per request (default: the library default, 6)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="workload/fault seed")
    parser.add_argument(
        "--threads", action="store_true", help="workers as threads instead of processes"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show log lines")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    config = SoakConfig(
        workers=args.workers,
        jobs=args.jobs,
        clients=args.clients,
        chunks=args.chunks,
        p429=args.p429,
        p5xx=args.p5xx,
        p_drop=args.p_drop,
        p_lost=args.p_lost,
        penalty_scale=args.penalty_scale,
        flush_interval=args.flush_interval,
        seed=args.seed,
        processes=not args.threads,
        max_attempts=args.max_attempts,
    )
    report = run_soak(config)
    console = make_console()
    for item in render(report):
        console.print(item)
    d = report.discrepancies
    print(d.summary())
    clean = d.ok and not report.worker_crashes and not d.tracking_errors
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
