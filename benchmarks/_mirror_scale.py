"""``sync_scale.py --mirror``: what ``sync`` costs with the local mirror (issue 23), from the
server's request log, at each size:

* first sync (the mirror is new: a full read, and the webhook that watches for deletions);
* an unchanged re-sync (goal ≤ 4 requests);
* a re-sync after K = 10 and K = 1,000 client rows changed (goal ≤ 3 + 2⌈K/100⌉);
* a re-sync after 50 client rows deleted outside the library (5 write requests of 10);
* full planning CPU per row (``time.process_time`` of planning over the mirror's rows, read
  beforehand: the reads excluded, and printed apart; in a spawned process, like the CLI's;
  goal ≤ 50 µs);
* incremental planning CPU (issue 23: only the groups a change or the clock touched are
  planned again): ``time.thread_time`` of :meth:`Mirror.plan` in each step above (the
  server's objects frozen out of the garbage collector's way), per row of the base, with the
  rows it examined.  The plan clock moves 15 minutes per step, as a cron's would, so groups
  whose plans hold the plan's time (pending notes, stale runs' ages) are planned again at
  every step; then the base is healed (the plan applied) and K = 10 / 1,000 measured again:
  a ``sync --apply`` cron's steady state;
* the projected calls per month of a 15-minute ``sync`` cron on the unchanged base: 2,880 runs
  × the unchanged re-sync, plus the webhook's refreshes (one per 4 days) -- goal ≤ 15,000.

The rows are written into the store an hour before the first sync (the last-modified filter
must leave them out), and each step's changes are made more than the filter's overlap after
the previous refresh, as a cron 15 minutes apart would see them: the mirror here uses a 2 s
overlap and the script waits 3 s between steps (60 s by default; the figures do not depend on
it, only on the changes being older than the previous refresh).  Every plan made from the
mirror is checked against a full read's (byte-for-byte, JSON).
"""

from __future__ import annotations

import gc
import itertools
import math
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks._harness import BENCH_BASE_ID, fmt, make_console, make_tracker, start_server

CRON_RUNS_PER_MONTH = 4 * 24 * 30
WEBHOOK_REFRESHES_PER_MONTH = math.ceil(30 / 4)
OVERLAP = timedelta(seconds=2)
#: How far the plan's clock moves between two steps: a 15-minute cron's.
CRON_STEP = timedelta(minutes=15)


def _goal_changed(k: int) -> int:
    return 3 + 2 * math.ceil(k / 100)


def _planning_cpu(path: str) -> tuple[float, float, int]:
    """CPU seconds to plan over the mirror's rows (its reads excluded), CPU seconds of those
    reads (SQLite and JSON decoding), and the rows.  Run in a spawned process, as an admin's
    CLI plans: in this one the server's store would make every garbage collection longer.
    The schema is the default one, as fill_store's and the tracker's."""
    from jobtrack_airtable.admin.mirror import Mirror
    from jobtrack_airtable.admin.sync.detect import StreamingPlanner
    from jobtrack_airtable.schema import load_schema

    schema = load_schema()
    mirror = Mirror(path, BENCH_BASE_ID, overlap=OVERLAP)
    try:
        rows = sum(mirror.status().rows.values())
        started = time.process_time()
        pages = list(mirror.pages())
        read = time.process_time() - started
    finally:
        mirror.close()
    planner = StreamingPlanner(schema)
    started = time.process_time()
    for page in pages:
        planner.add(page.table, page.records)
    planner.finish(now=datetime.now(UTC), stale_after=timedelta(hours=2), base_id=BENCH_BASE_ID)
    return time.process_time() - started, read, rows


def _planning_cpu_apart(path: str) -> tuple[float, float, int]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: tuple[float, float, int] = pool.apply(_planning_cpu, (path,))
    return result


def _slug(label: str) -> str:
    return label.replace(",", "").replace(" ", "_").lower()


def _timed(mirror: Any) -> list[float]:
    """Have ``mirror.plan`` note its CPU (this thread's) in the list returned."""
    spent = [0.0]
    plan = type(mirror).plan

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return plan(mirror, *args, **kwargs)
        finally:
            spent[0] = time.thread_time() - started

    mirror.plan = timed
    return spent


def run(sizes: list[int], clients_per_job: int, seed: int) -> int:
    from benchmarks.sync_scale import fill_store
    from jobtrack_airtable.admin.mirror import Mirror
    from jobtrack_airtable.admin.sync import apply_plan, plan_sync, plan_to_json

    console = make_console()
    table = Table(title="sync with the local mirror (requests from the server's log)")
    for name in (
        "client rows",
        "first sync",
        "unchanged",
        "K=10",
        "K=1,000",
        "50 deleted",
        "plan CPU/row",
        "15-min cron/month",
    ):
        table.add_column(name, justify="right")
    steps = [
        "first sync",
        "unchanged",
        "K=10",
        "K=1000",
        "50 deleted",
        "healed, unchanged",
        "healed, K=10",
        "healed, K=1000",
    ]
    cpu_table = Table(
        title="planning CPU per row of the base (rows examined): full, then incremental"
    )
    cpu_table.add_column("client rows", justify="right")
    cpu_table.add_column("full plan", justify="right")
    for name in steps:
        cpu_table.add_column(name, justify="right")
    lines: list[str] = []
    cpu_lines: list[str] = []
    ok = True
    for size in sizes:
        srv = start_server()
        srv.app.cpu_budget_seconds = None  # the filter's scan at 100,000 rows, on a loaded box
        folder = Path(tempfile.mkdtemp(prefix="mirror-bench-"))
        try:
            console.print(f"filling the store with {size:,} client rows …")
            srv.store.clock = lambda: datetime.now(UTC) - timedelta(hours=1)
            fill_store(srv, size, clients_per_job=clients_per_job, seed=seed)
            srv.store.clock = lambda: datetime.now(UTC)
            # The server's store lives as long as the run: out of the collector's way, so that
            # this process's planning CPU is the planner's (as in a CLI process).
            gc.collect()
            gc.freeze()
            tracker = make_tracker(srv.url, timeout=300.0, rate_limit=0)
            repo = tracker.repo
            mirror = Mirror(folder / "m.sqlite", BENCH_BASE_ID, overlap=OVERLAP)
            clock = [datetime.now(UTC)]
            cpu_at: dict[str, str] = {}

            def resync(
                label: str,
                srv: Any = srv,
                repo: Any = repo,
                mirror: Any = mirror,
                clock: list[datetime] = clock,
                cpu_at: dict[str, str] = cpu_at,
            ) -> tuple[int, Any]:
                time.sleep(OVERLAP.total_seconds() + 1)
                now = clock[0] = clock[0] + CRON_STEP
                srv.request_log.clear()
                plan_cpu = _timed(mirror)
                plan = plan_sync(repo, now=now, mirror=mirror)
                made: int = srv.request_log.total
                assert plan_to_json(plan) == plan_to_json(plan_sync(repo, now=now)), label
                ran = mirror.plans.last
                per_row = plan_cpu[0] / sum(mirror.status().rows.values()) * 1e6
                cpu_at[label] = f"{per_row:.1f} µs ({fmt(ran.rows_examined)})"
                console.print(
                    f"  {label}: {made} requests ({mirror.last}); planning {ran.kind}: "
                    f"{plan_cpu[0]:.3f} s CPU, {per_row:.1f} µs/row of the base, "
                    f"{ran.rows_examined:,} rows examined in {ran.groups_planned:,} of "
                    f"{ran.groups:,} groups"
                )
                return made, plan

            values = itertools.count(7)

            def change(
                k: int, ids: list[str], srv: Any = srv, values: Iterator[int] = values
            ) -> None:
                # A value no row held before: every one of the K rows really changes.
                value = next(values)
                picked = ids[:k]
                for s in range(0, k, 10):
                    srv.store.update_records(
                        BENCH_BASE_ID,
                        "Client Run Results",
                        [(rid, {"Profile Scoring Tokens": value}) for rid in picked[s : s + 10]],
                    )

            first, _ = resync("first sync")
            unchanged, _ = resync("unchanged")
            _, client_records = srv.store.snapshot(BENCH_BASE_ID, "Client Run Results")
            ids = [r.id for r in client_records]
            changed = {}
            for k in (10, 1_000):
                change(k, ids)
                changed[k], _ = resync(f"K={k}")
            gone = ids[-50:]
            for s in range(0, 50, 10):
                srv.store.delete_records(BENCH_BASE_ID, "Client Run Results", gone[s : s + 10])
            deleted, plan = resync("50 deleted")
            # Healed, as a `sync --apply` cron keeps it: then only changes are planned again.
            apply_plan(repo, plan)
            resync("healed")
            resync("healed, unchanged")
            _, client_records = srv.store.snapshot(BENCH_BASE_ID, "Client Run Results")
            ids = [r.id for r in client_records][100:]
            for k in (10, 1_000):
                change(k, ids)
                resync(f"healed, K={k}")
            cpu, read_cpu, rows = _planning_cpu_apart(str(folder / "m.sqlite"))
            per_row_us = cpu / rows * 1e6
            console.print(
                f"  planning CPU {per_row_us:.0f} µs/row; reading the mirror's rows "
                f"{read_cpu / rows * 1e6:.0f} µs/row more"
            )
            cron = unchanged * CRON_RUNS_PER_MONTH + WEBHOOK_REFRESHES_PER_MONTH
            mirror.close()
            tracker.close()
        finally:
            srv.stop()
        ok = ok and unchanged <= 4 and cron <= 15_000
        ok = ok and all(changed[k] <= _goal_changed(k) for k in changed)
        table.add_row(
            fmt(size),
            fmt(first),
            fmt(unchanged),
            f"{changed[10]} (≤ {_goal_changed(10)})",
            f"{changed[1_000]} (≤ {_goal_changed(1_000)})",
            fmt(deleted),
            f"{per_row_us:.0f} µs",
            fmt(cron),
        )
        lines.append(
            f"rows={size} first={first} unchanged={unchanged} k10={changed[10]} "
            f"k1000={changed[1_000]} deleted50={deleted} plan_us_per_row={per_row_us:.0f} "
            f"cron_calls_per_month={cron}"
        )
        cpu_table.add_row(fmt(size), f"{per_row_us:.1f} µs", *(cpu_at.get(k, "") for k in steps))
        figures = " ".join(f"{_slug(k)}={cpu_at.get(k, '?').split()[0]}" for k in steps)
        cpu_lines.append(f"rows={size} full_us_per_row={per_row_us:.1f} {figures}")
    console.print(table)
    console.print(cpu_table)
    print(" | ".join(lines))
    print(" | ".join(cpu_lines))
    return 0 if ok else 1
