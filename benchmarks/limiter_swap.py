"""The limiter file lost under live workers, newcomers first: 429s and penalties per attack.

    .venv/bin/python benchmarks/limiter_swap.py                      # every attack, 3 trials
    .venv/bin/python benchmarks/limiter_swap.py --attacks moved_in --trials 5 --busy 4

Each trial: a fresh local server enforcing Airtable's 5 requests/s (penalty ``--penalty`` s,
recorded), ``--old`` worker processes sending GETs back to back through one SQLite limiter
file, and ``--newcomers`` processes started beforehand (interpreter, ``Api`` and limiter
built; the limiter file not opened yet) that are released the instant the file is attacked,
so a newcomer -- never having seen the old file -- is the first to open the new one.  Every
process is a spawned interpreter; a 429 is not retried (the server's log counts it).

Attacks: ``deleted`` (the database and its journal), ``blank`` (a blank SQLite database put
in its place), ``moved_in`` (a valid limiter file made elsewhere), ``backup`` (a consistent
copy of this very store, taken a second earlier, moved in), ``backup_in_place`` (the same
copy written over the live file's inode), ``moved_back`` (the file moved aside, the workers
go on in a new one, then it is moved back).

Per trial it prints ``requests``, ``429s`` and ``penalties`` (penalties the server started:
each is one shared hold once its first 429 reaches the limiter), then the worst case per
attack.  Figures only: the exit code is 0 whatever they are (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import RecordingRateLimiter, start_server

JOBS = "Job Tracking"
CTX: Any = multiprocessing.get_context("spawn")


def _worker(
    url: str,
    token: str,
    base: str,
    limiter_url: str,
    penalty: float,
    ready: Any,
    go: Any,
    stop: Any,
) -> None:
    """GETs back to back through the limiter from ``go`` until ``stop``; 429s not retried."""
    import logging

    import requests
    from pydantic import SecretStr

    from jobtrack_airtable.settings import Settings
    from jobtrack_airtable.transport.client import build_api
    from jobtrack_airtable.transport.recovery import RetryPolicy

    logging.getLogger("jobtrack_airtable").setLevel(logging.CRITICAL)
    settings = Settings(
        _env_file=None,
        api_key=SecretStr(token),
        base_id=base,
        endpoint_url=url,
        limiter_url=limiter_url,
        rate_limit=5,
    )
    api = build_api(settings, policy=RetryPolicy(max_attempts=1), penalty_seconds=penalty)
    table = api.table(base, JOBS)
    ready.release()
    go.wait(timeout=300)
    while not stop.is_set():
        # A 429: the server's log counts it, the limiter holds the base.
        with contextlib.suppress(requests.HTTPError):
            table.first()
    ready.release()  # idle now: its last request and its release are done


def _blank(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE unrelated (x INTEGER)")
    conn.commit()
    conn.close()


def _snapshot(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite file (SQLite's backup API, not a torn ``cp``)."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    src.backup(dst)
    dst.close()
    src.close()


def _job_requests(srv: Any) -> int:
    return sum(1 for e in srv.request_log.entries if JOBS in e.decoded_path)


def _wait_requests(srv: Any, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while _job_requests(srv) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def _attack(
    attack: str, path: Path, spare: Path, backup: Path, srv: Any, quiesce: Callable[[], None]
) -> None:
    """Do ``attack`` to the file at ``path``; ``quiesce()`` just before its last step."""
    if attack != "moved_back":
        quiesce()
    if attack == "deleted":
        for suffix in ("", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    elif attack in ("blank", "moved_in"):
        os.replace(spare, path)
    elif attack == "backup":
        shutil.copyfile(backup, spare)
        os.replace(spare, path)
    elif attack == "backup_in_place":
        shutil.copyfile(backup, path)
    else:  # moved_back
        aside = path.with_name("aside.sqlite")
        os.rename(path, aside)
        # The old workers go on in a new file (held), then fill its window.
        _wait_requests(srv, _job_requests(srv) + 8)
        quiesce()
        os.replace(aside, path)


def trial(attack: str, args: argparse.Namespace) -> tuple[int, int, int]:
    """One trial of ``attack``: ``(requests, 429s, penalties)`` at the server."""
    srv = start_server(rate_limit=5, penalty_seconds=args.penalty)
    assert isinstance(srv.rate_limiter, RecordingRateLimiter)
    procs: list[Any] = []
    busy: list[Any] = []
    stop, old_stop = CTX.Event(), CTX.Event()
    with tempfile.TemporaryDirectory(prefix="jobtrack-swap-") as tmp:
        path = Path(tmp) / "rl.sqlite"
        url = f"sqlite:///{path}"
        spare = Path(tmp) / "elsewhere.sqlite"
        _blank(spare)  # made into a valid limiter file below when the attack needs one
        ready = CTX.Semaphore(0)
        old_go, new_go = CTX.Event(), CTX.Event()

        def start(n: int, go: Any, until: Any) -> None:
            for _ in range(n):
                p = CTX.Process(
                    target=_worker,
                    args=(srv.url, srv.token, srv.base_id, url, args.penalty, ready, go, until),
                )
                p.start()
                procs.append(p)

        try:
            import subprocess

            busy = [
                subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(args.busy)
            ]
            if attack == "moved_in":
                from jobtrack_airtable.limiter import LocalLimiter

                spare.unlink()
                LocalLimiter(5, spare).acquire("appSpareSpareSpar")
            start(args.old, old_go, old_stop)
            start(args.newcomers, new_go, stop)
            for _ in range(args.old + args.newcomers):
                ready.acquire(timeout=300)
            old_go.set()
            _wait_requests(srv, 10)  # the old file holds a full window of grants
            backup = Path(tmp) / "backup.sqlite"
            if attack in ("backup", "backup_in_place"):
                _snapshot(path, backup)
                _wait_requests(srv, _job_requests(srv) + 5)  # the backup falls behind

            def quiesce() -> None:
                if args.old_stop:
                    old_stop.set()  # the old fleet's burst is over: none of it notices
                    for _ in range(args.old):
                        ready.acquire(timeout=300)

            _attack(attack, path, spare, backup, srv, quiesce)
            new_go.set()
            time.sleep(args.seconds)
        finally:
            stop.set()
            old_stop.set()
            old_go.set()
            new_go.set()
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
                    p.join()
            for b in busy:
                b.kill()
                b.wait(timeout=10)
            srv.stop()
    entries = [e for e in srv.request_log.entries if JOBS in e.decoded_path]
    return len(entries), sum(1 for e in entries if e.status == 429), len(srv.rate_limiter.penalties)


ATTACKS = ("deleted", "blank", "moved_in", "backup", "backup_in_place", "moved_back")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's options (``--help``); the defaults for ``[]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", nargs="+", choices=ATTACKS, default=list(ATTACKS))
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--old", type=int, default=3, help="workers on the old file")
    parser.add_argument("--newcomers", type=int, default=5, help="released at the attack")
    parser.add_argument("--seconds", type=float, default=4.0, help="run after the attack")
    parser.add_argument("--penalty", type=float, default=5.0, help="server's 429 penalty, s")
    parser.add_argument(
        "--old-stop",
        action="store_true",
        help="the old workers stop at the attack (the worst case: none of them notices it)",
    )
    parser.add_argument("--busy", type=int, default=0, help="CPU busy loops beside it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    print(
        f"limiter_swap: {args.old} old workers, {args.newcomers} newcomers, "
        f"{args.seconds:g} s after each attack, penalty {args.penalty:g} s, "
        f"{args.busy} busy loops, {os.cpu_count()} CPUs"
        f"{', old workers stop at the attack' if args.old_stop else ''}",
        flush=True,
    )
    worst: dict[str, tuple[int, int]] = {}
    for attack in args.attacks:
        for i in range(args.trials):
            n, rate_limited, penalties = trial(attack, args)
            print(
                f"{attack} trial={i + 1} requests={n} 429s={rate_limited} penalties={penalties}",
                flush=True,
            )
            w = worst.get(attack, (0, 0))
            worst[attack] = (max(w[0], rate_limited), max(w[1], penalties))
    for attack, (rate_limited, penalties) in worst.items():
        print(f"worst {attack}: 429s={rate_limited} penalties={penalties}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
