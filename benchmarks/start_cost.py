"""Requests per job start when K workers start in the same second (issue 21).

    .venv/bin/python benchmarks/start_cost.py [--ks 1,4,16,32]

K trackers (threads, each with its own connection, as K workers would be) start a job at the
same second of their clocks, against a fresh local server with the rate limit off; requests
are counted from the server's request log.  Two set-ups:

* **shared store** -- the workers share a limiter store (the machine's SQLite file, as
  processes on one host do, or a fleet's Redis): seconds are reserved there first;
* **no shared store** -- every worker on its own host: they meet on Airtable; each loser
  moves its row to the seat the claim's read gives it, with no read after the move.

Then a clock jumped back over a busy minute: 70 consecutive seconds already taken, one start.
One line per case: ``starts k=K store=shared|none requests=N per_start=R ranked=M
verified=V`` (starts that moved to their seat, and that moved and read again), and
``clock_jump taken=70 requests=N``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import BENCH_BASE_ID, BENCH_TOKEN, start_server
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.run_ids import BaseRunId
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.worker.starts import ahead_of
from jobtrack_airtable.worker.tracker import Job, Tracker


def _tracker(srv: LocalAirtable, when: datetime, *, shared: bool, store: Path) -> Tracker:
    settings = Settings(
        _env_file=None,
        api_key=BENCH_TOKEN,
        base_id=BENCH_BASE_ID,
        endpoint_url=srv.url,
        # A limiter at a rate the server never reaches: only its shared store matters here.
        rate_limit=1000 if shared else 0,
        limiter_url=f"sqlite:///{store}" if shared else None,
        # Never the user's own outbox file.
        outbox_url=f"sqlite:///{store.with_name('outbox.sqlite')}",
    )
    return Tracker(Connection.from_settings(settings), clock=lambda: when)


def _moves(srv: LocalAirtable) -> str:
    """How the starts ended, from the stored notes (no request): moved to their seat, moved
    to their tie seat (they saw a row stamped in their millisecond), or verified."""
    _, records = srv.store.snapshot(None, "Job Tracking")
    notes = [str(r.fields.get("System Notes", "")) for r in records]
    ranked = sum("by rank" in n for n in notes)
    verified = sum(bool(re.search(r"claim moved from \S+ to \S+$", n, re.M)) for n in notes)
    return f"ranked={ranked} verified={verified}"


def starts(k: int, *, shared: bool) -> tuple[int, str]:
    srv = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            when = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
            trackers = [
                _tracker(srv, when, shared=shared, store=Path(tmp) / "limiter.sqlite")
                for _ in range(k)
            ]
            barrier = threading.Barrier(k)
            jobs: list[Job] = []

            def start(tracker: Tracker) -> None:
                barrier.wait()
                jobs.append(tracker.job())

            threads = [threading.Thread(target=start, args=(t,)) for t in trackers]
            srv.request_log.clear()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            total = srv.request_log.total
            assert len({str(j.run_id) for j in jobs}) == k, "two starts share a run ID"
            for tracker in trackers:
                tracker.close()
            return total, _moves(srv)
    finally:
        srv.stop()


def clock_jump(taken: int = 70) -> int:
    srv = start_server()
    try:
        first = BaseRunId("250930-141522")
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        for i, key in enumerate([str(first), *ahead_of(first, taken - 1)]):
            srv.store.create_records(
                None,
                "Job Tracking",
                [{"Run ID": key, "Status": "Completed"}],
                created_time=an_hour_ago + timedelta(seconds=i),
            )
        with tempfile.TemporaryDirectory() as tmp:
            when = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
            tracker = _tracker(srv, when, shared=False, store=Path(tmp) / "unused")
            srv.request_log.clear()
            tracker.job()
            tracker.close()
            return srv.request_log.total
    finally:
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,4,16,32", help="comma-separated K values")
    args = parser.parse_args(argv)
    for k in (int(v) for v in args.ks.split(",")):
        for shared in (True, False):
            total, moves = starts(k, shared=shared)
            print(
                f"starts k={k} store={'shared' if shared else 'none'} "
                f"requests={total} per_start={total / k:.2f} {moves}"
            )
    print(f"clock_jump taken=70 requests={clock_jump()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
