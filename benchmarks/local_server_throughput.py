"""Throughput of the local Airtable server (not a test; run it by hand).

    .venv/bin/python benchmarks/local_server_throughput.py [--seconds 5] [--threads 4]

Starts ``python -m jobtrack_airtable.local serve`` in a subprocess with the rate limit off (so
client threads and server do not share one GIL), then measures with keep-alive sessions:

* plain GET of one record, several client threads (target ≥ 500 requests/s on 2 cores);
* PATCH of one record (a simple write), several client threads;
* POST of 10-record batches;
* the time to filter 10,000 records with a formula (one listing, few matches), and to page
  through a 10,000-row filtered, sorted result.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import requests

BASE = "appBenchmarkBase1"
TOKEN = "benchmark-token"
TABLE = "Client%20Run%20Results"


def start_server() -> tuple[subprocess.Popen[str], str]:
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
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"at (http://[\d.]+:\d+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, match.group(1)


def session() -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    return s


def hammer(
    name: str,
    threads: int,
    seconds: float,
    make_call: Callable[[requests.Session], Callable[[], int]],
) -> float:
    """Run ``make_call`` in ``threads`` threads for ``seconds``; print and return requests/s."""
    counts = [0] * threads
    failures = [0] * threads
    stop = threading.Event()

    def worker(i: int) -> None:
        call = make_call(session())
        while not stop.is_set():
            if call() == 200:
                counts[i] += 1
            else:
                failures[i] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    rate = sum(counts) / elapsed
    print(f"{name:<42} {rate:8.0f} requests/s  ({sum(counts)} ok, {sum(failures)} failed)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()

    proc, url = start_server()
    records = f"{url}/v0/{BASE}/{TABLE}"
    try:
        s = session()
        rec = s.post(records, json={"fields": {"Run ID": "bench", "Client ID": "c"}}).json()
        one = f"{records}/{rec['id']}"
        print(f"local server at {url}, {args.threads} client threads, {args.seconds:.0f} s each")

        hammer(
            "GET one record", args.threads, args.seconds, lambda c: lambda: c.get(one).status_code
        )
        counter = iter(range(10**9))
        hammer(
            "PATCH one record",
            args.threads,
            args.seconds,
            lambda c: (
                lambda: (
                    c.patch(
                        one, json={"fields": {"Profiles Examined for Scoring": next(counter)}}
                    ).status_code
                )
            ),
        )
        batch = [{"fields": {"Run ID": "w", "Client ID": "w"}} for _ in range(10)]
        hammer(
            "POST 10-record batch",
            args.threads,
            min(args.seconds, 2.0),
            lambda c: lambda: c.post(records, json={"records": batch}).status_code,
        )

        # Seed the filter table: args.rows rows in batches of 10 (the API limit).
        filt = f"{url}/v0/{BASE}/Job%20Tracking"
        t0 = time.perf_counter()
        for start in range(0, args.rows, 10):
            body = {
                "records": [
                    {"fields": {"Run ID": f"r{i:06d}", "Stream": i % 13, "Status": "Running"}}
                    for i in range(start, min(start + 10, args.rows))
                ]
            }
            s.post(filt, json=body).raise_for_status()
        print(f"seeded {args.rows} rows in {time.perf_counter() - t0:.2f} s")

        formula = "AND({Stream} = 7, FIND('99', {Run ID}) > 0, {Status} != 'Failed')"
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            resp = s.get(filt, params={"filterByFormula": formula})
            timings.append(time.perf_counter() - t0)
            resp.raise_for_status()
        matched = len(resp.json()["records"])
        print(
            f"filter {args.rows} records with a formula: best {min(timings) * 1000:.0f} ms, "
            f"median {sorted(timings)[2] * 1000:.0f} ms ({matched} matched)"
        )

        t0 = time.perf_counter()
        pages = rows = 0
        params: dict[str, str] = {
            "filterByFormula": "{Stream} >= 0",
            "sort[0][field]": "Run ID",
            "sort[0][direction]": "desc",
        }
        while True:
            body = s.get(filt, params=params).json()
            pages += 1
            rows += len(body["records"])
            if "offset" not in body:
                break
            params["offset"] = body["offset"]
        print(
            f"page through {rows} filtered+sorted rows: {pages} pages in "
            f"{time.perf_counter() - t0:.2f} s"
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
