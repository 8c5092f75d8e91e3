"""``sync_scale.py --mirror``: what ``sync`` costs with the local mirror (issue 23), from the
server's request log, at each size:

* first sync (the mirror is new: a full read, and the webhook that watches for deletions);
* an unchanged re-sync (goal ≤ 4 requests);
* a re-sync after K = 10 and K = 1,000 client rows changed (goal ≤ 3 + 2⌈K/100⌉);
* a re-sync after 50 client rows deleted outside the library (5 write requests of 10);
* planning CPU per row (``time.process_time`` of planning over the mirror's rows, read
  beforehand: the reads excluded, and printed apart; in a spawned process, like the CLI's;
  goal ≤ 50 µs);
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

import math
import multiprocessing
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks._harness import BENCH_BASE_ID, fmt, make_console, make_tracker, start_server

CRON_RUNS_PER_MONTH = 4 * 24 * 30
WEBHOOK_REFRESHES_PER_MONTH = math.ceil(30 / 4)
OVERLAP = timedelta(seconds=2)


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


def run(sizes: list[int], clients_per_job: int, seed: int) -> int:
    from benchmarks.sync_scale import fill_store
    from jobtrack_airtable.admin.mirror import Mirror
    from jobtrack_airtable.admin.sync import plan_sync, plan_to_json

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
    lines: list[str] = []
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
            tracker = make_tracker(srv.url, timeout=300.0, rate_limit=0)
            repo = tracker.repo
            mirror = Mirror(folder / "m.sqlite", BENCH_BASE_ID, overlap=OVERLAP)
            now = datetime.now(UTC)

            def resync(
                label: str, srv: Any = srv, repo: Any = repo, mirror: Any = mirror, now: Any = now
            ) -> int:
                time.sleep(OVERLAP.total_seconds() + 1)
                srv.request_log.clear()
                plan = plan_sync(repo, now=now, mirror=mirror)
                made: int = srv.request_log.total
                assert plan_to_json(plan) == plan_to_json(plan_sync(repo, now=now)), label
                console.print(f"  {label}: {made} requests ({mirror.last})")
                return made

            first = resync("first sync")
            unchanged = resync("unchanged")
            _, client_records = srv.store.snapshot(BENCH_BASE_ID, "Client Run Results")
            ids = [r.id for r in client_records]
            changed = {}
            for k in (10, 1_000):
                picked = ids[:k]
                for s in range(0, k, 10):
                    srv.store.update_records(
                        BENCH_BASE_ID,
                        "Client Run Results",
                        [(rid, {"Profile Scoring Tokens": 7}) for rid in picked[s : s + 10]],
                    )
                changed[k] = resync(f"K={k}")
            gone = ids[-50:]
            for s in range(0, 50, 10):
                srv.store.delete_records(BENCH_BASE_ID, "Client Run Results", gone[s : s + 10])
            deleted = resync("50 deleted")
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
    console.print(table)
    print(" | ".join(lines))
    return 0 if ok else 1
