"""The outbox's costs (issue 19): ``add()`` CPU and replay throughput at Airtable's 5 req/s.

    .venv/bin/python benchmarks/outbox.py [--adds 20000] [--entries 500]

* **add() CPU** -- one client run, ``--adds`` calls of ``run.add(...)`` with nothing written
  meanwhile (flush interval of an hour): CPU seconds of the process (``time.process_time``)
  per call, with the outbox's ``synchronous=NORMAL`` (default) and ``FULL``.  Budget: 100 µs.
* **replay throughput** -- ``--entries`` closed client runs left in the outbox by a tracker
  whose token was revoked, then replayed by a fresh tracker (``Tracker.replay``) against a
  local server enforcing 5 requests/s with the client-side limiter on: records per second
  and requests.

Ends with one line: ``add_cpu_us=… add_cpu_us_full=… replay_records_per_s=… replay_requests=…``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobtrack_airtable.errors import AuthenticationError
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.worker.tracker import Tracker


def add_cpu(adds: int, sync: str) -> float:
    """CPU microseconds per ``run.add()``."""
    with TrackingServer(rate_limit=None) as srv, tempfile.TemporaryDirectory() as tmp:
        settings = srv.settings(
            flush_interval=3600.0, outbox_url=f"sqlite:///{tmp}/o.sqlite", outbox_sync=sync
        )
        tracker = Tracker(Connection.from_settings(settings))
        job = tracker.job()
        run = job.client("Guy-Wilson")
        for _ in range(100):  # warm up
            run.add(profiles_examined=1, profile_tokens=900)
        started = time.process_time()
        for _ in range(adds):
            run.add(profiles_examined=1, profile_tokens=900)
        cpu = time.process_time() - started
        run.close()
        job.complete()
        tracker.close()
    return cpu / adds * 1e6


def replay_throughput(entries: int) -> tuple[float, int]:
    """Records per second and requests of replaying ``entries`` closed runs at 5 req/s."""
    with TrackingServer(rate_limit=5) as srv:
        tracker = Tracker(Connection.from_settings(srv.settings(flush_interval=3600.0)))
        job = tracker.job()
        runs = job.open_clients([f"C{i:05d}" for i in range(entries)])
        tracker.flush()
        token = srv.token
        srv.set_token("revoked")
        for run in runs:
            run.add(profiles_examined=3)
            run.close()
        with contextlib.suppress(AuthenticationError):  # kept in the outbox, as intended
            tracker.close()
        srv.set_token(token)
        mark = srv.request_log.total
        started = time.monotonic()
        with Tracker(Connection.from_settings(srv.settings()), replay=False) as later:
            replayed = later.replay()
        seconds = time.monotonic() - started
        assert len(replayed) == entries, len(replayed)
        return entries / seconds, srv.request_log.total - mark


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adds", type=int, default=20_000)
    parser.add_argument("--entries", type=int, default=500)
    args = parser.parse_args(argv)
    # The replay run's refusals are intended: keep their log lines off the report.
    logging.getLogger("jobtrack_airtable").setLevel(logging.CRITICAL)
    normal = add_cpu(args.adds, "normal")
    full = add_cpu(args.adds, "full")
    print(f"add() CPU: {normal:.1f} µs (synchronous=NORMAL), {full:.1f} µs (FULL); budget 100")
    rate, requests = replay_throughput(args.entries)
    print(f"replay of {args.entries} entries at 5 req/s: {rate:.1f} records/s, {requests} requests")
    print(
        f"add_cpu_us={normal:.1f} add_cpu_us_full={full:.1f} "
        f"replay_records_per_s={rate:.1f} replay_requests={requests}"
    )
    return 0 if normal <= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
