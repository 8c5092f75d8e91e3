"""Cost of the local Airtable server's operations as its base grows (not a test; run by hand).

    .venv/bin/python benchmarks/local_server_throughput.py [--rows 10000 100000] [--repeat 50]

For each size: a base file with that many ``Job Tracking`` rows is written directly (one
transaction, no HTTP), then ``python -m jobtrack_airtable.local serve --data FILE`` runs in a
subprocess (durable writes: every write is fsynced before its answer; rate limit off) and one
pyairtable client (one keep-alive session, as a worker has) times, per request:

* **list page**: ``GET`` of the first page (100 records) of the table;
* **filter**: ``{Run ID}='x'`` (pyairtable's ``EQ``) matching one row of the whole table;
* **upsert 10**: a 10-record ``PATCH`` with ``performUpsert`` on ``Run ID`` (5 updates, 5 creates);
* **PATCH by ID**: a 1-record update by record ID (the cheapest write);

and counts the TCP connections pyairtable's session opened per 100 requests (urllib3's pool
counter).  Prints the median and the 95th percentile of each, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyairtable
import urllib3
from pyairtable import formulas as F

from jobtrack_airtable.local.storage import Store
from jobtrack_airtable.testing import tracking_tables

BASE = "appBenchmarkBase1"
TOKEN = "benchmark-token"
JOBS = "Job Tracking"


def write_base(path: Path, rows: int) -> None:
    """A base file holding the tracking tables and ``rows`` job rows, in one transaction."""
    with Store(path) as store:
        store.ensure_tables(BASE, tracking_tables())
        store.create_records(
            BASE,
            JOBS,
            [{"Run ID": f"r{i:07d}", "Stream": i % 13, "Status": "Running"} for i in range(rows)],
            limit=None,
        )


def start_server(data: Path, tables: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobtrack_airtable.local",
            "serve",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--base-id",
            BASE,
            "--rate-limit",
            "off",
            "--data",
            str(data),
            "--tables",
            str(tables),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r'"url": "(http://[\d.]+:\d+)"', line)  # the JSON line serve prints
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, match.group(1)


def timed(repeat: int, call: Callable[[int], Any]) -> tuple[float, float]:
    """Median and 95th percentile of ``call(i)`` in milliseconds (after one warm-up call)."""
    call(-1)
    samples = []
    for i in range(repeat):
        t0 = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


class ConnectCounter:
    """Counts TCP connects made by urllib3 (requests, so pyairtable), the server closing a
    connection included: urllib3's own ``num_connections`` misses reconnects of a pooled
    connection object, which is what a ``Connection: close`` server causes."""

    def __init__(self) -> None:
        self.count = 0
        self._real = urllib3.util.connection.create_connection

    def __enter__(self) -> ConnectCounter:
        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return self._real(*args, **kwargs)

        urllib3.util.connection.create_connection = counting  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        urllib3.util.connection.create_connection = self._real  # type: ignore[assignment]


def requests_sent(api: pyairtable.Api, url: str) -> int:
    pools = api.session.get_adapter(url).poolmanager.pools
    return sum(pools[key].num_requests for key in pools.keys())  # noqa: SIM118


def measure(rows: int, repeat: int, workdir: Path, tables: Path) -> dict[str, Any]:
    data = workdir / f"base-{rows}.db"
    t0 = time.perf_counter()
    write_base(data, rows)
    seeded = time.perf_counter() - t0
    proc, url = start_server(data, tables)
    try:
        api = pyairtable.Api(TOKEN, endpoint_url=url, retry_strategy=None, timeout=(5, 60))
        table = api.table(BASE, JOBS)
        with ConnectCounter() as counter:
            first = table.first(formula=F.EQ(F.Field("Run ID"), "r0000000"))
            assert first is not None
            rid = first["id"]
            results: dict[str, Any] = {
                "rows": rows,
                "seed_s": seeded,
                "list page": timed(repeat, lambda i: next(table.iterate(page_size=100))),
                "filter {Run ID}=": timed(
                    repeat,
                    lambda i: table.all(
                        formula=F.EQ(F.Field("Run ID"), f"r{(i * 7919) % rows:07d}")
                    ),
                ),
                "upsert 10": timed(
                    repeat,
                    lambda i: table.batch_upsert(
                        [
                            {"fields": {"Run ID": f"r{(i * 10 + k) % rows:07d}", "Stream": k}}
                            for k in range(5)
                        ]
                        + [{"fields": {"Run ID": f"new-{i}-{k}", "Stream": k}} for k in range(5)],
                        key_fields=["Run ID"],
                    ),
                ),
                "PATCH by ID": timed(repeat, lambda i: table.update(rid, {"Stream": i % 13})),
            }
        opened, sent = counter.count, requests_sent(api, url)
        results["connections per 100 requests"] = 100 * opened / sent
        results["connections"] = (opened, sent)
        return results
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def store_level(rows: int, repeat: int, workdir: Path) -> dict[str, float]:
    """Per-write cost without HTTP, on a base file (fsync included) and in memory: what is
    left of a write once the network and the JSON are taken away (milliseconds)."""
    out: dict[str, float] = {}
    for where, path in (("file", workdir / f"store-{rows}.db"), ("memory", None)):
        with Store(path) as store:
            store.ensure_tables(BASE, tracking_tables())
            recs = store.create_records(
                BASE, JOBS, [{"Run ID": f"r{i:07d}"} for i in range(rows)], limit=None
            )
            rid = recs[0].id
            store.table(BASE, JOBS).index("Run ID")  # built once, as loading a base file does
            t0 = time.perf_counter()
            for i in range(repeat):
                store.update_records(BASE, JOBS, [(rid, {"Stream": i % 13})])
            out[f"PATCH ({where})"] = (time.perf_counter() - t0) * 1000 / repeat
            t0 = time.perf_counter()
            for i in range(repeat):
                items = [
                    {"fields": {"Run ID": f"r{(i * 10 + k) % rows:07d}", "Stream": k}}
                    for k in range(10)
                ]
                store.upsert_records(BASE, JOBS, items, ["Run ID"])
            out[f"upsert 10 ({where})"] = (time.perf_counter() - t0) * 1000 / repeat
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="local-bench-") as tmp:
        workdir = Path(tmp)
        tables = workdir / "tables.json"
        tables.write_text(json.dumps(tracking_tables()), encoding="utf-8")
        all_results = [measure(rows, args.repeat, workdir, tables) for rows in args.rows]
    ops = ["list page", "filter {Run ID}=", "upsert 10", "PATCH by ID"]
    header = f"{'rows':>8}  " + "  ".join(f"{op + ' ms (p50/p95)':>28}" for op in ops)
    print(header + "  conns/100 req")
    for r in all_results:
        cells = "  ".join(f"{r[op][0]:>16.1f} / {r[op][1]:>9.1f}" for op in ops)
        print(f"{r['rows']:>8}  {cells}  {r['connections per 100 requests']:>13.1f}")
    print("\nwithout HTTP (the store alone), mean ms per write:")
    with tempfile.TemporaryDirectory(prefix="local-bench-") as tmp:
        for rows in args.rows:
            costs = store_level(rows, args.repeat, Path(tmp))
            print(f"{rows:>8}  " + "  ".join(f"{k} {v:.3f}" for k, v in costs.items()))
    for r in all_results:
        opened, sent = r["connections"]
        print(
            f"{r['rows']} rows: base written in {r['seed_s']:.1f} s; the session opened "
            f"{opened} connection(s) for {sent} requests"
        )


if __name__ == "__main__":
    main()
