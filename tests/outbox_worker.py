"""A worker process for tests/test_outbox.py: records client runs, then waits to be killed.

    python tests/outbox_worker.py MODE BASE_RUN_ID      (settings from the environment)

MODE ``first``: opens client A and adds 7 in the first flush interval (nothing written yet),
prints ``ready`` and waits.  MODE ``later``: A is opened and written (flushed), then gets 5
more and is closed; client B opens and gets 2; prints ``ready`` and waits.  MODE ``loop``:
opens A, prints ``ready``, then adds 1 forever (the parent kills it at a random point) and
prints each total it recorded.  MODE ``hold``: A is opened, gets 3 (flushed) and 5 more
(pending), prints ``ready`` and waits.  MODE ``hold_then_close``: as ``hold``, then, on a line
from stdin, closes A and the tracker and prints ``closed``.  MODE ``reopen``: re-opens A,
adds 4, prints ``ready`` and waits.  ``OUTBOX_WORKER_CLOCK_BACK=SECONDS`` puts the process's
clock that far back (an NTP step back, which a test cannot make to the host's clock);
``OUTBOX_WORKER_NO_REPLAY=1`` builds the tracker without replaying what dead processes left.
"""

from __future__ import annotations

import os
import sys
import time

from jobtrack_airtable.worker.tracker import Tracker


def main(mode: str, base: str) -> None:
    back_ns = int(float(os.environ.get("OUTBOX_WORKER_CLOCK_BACK", "0")) * 1e9)
    if back_ns:
        real_time_ns = time.time_ns
        time.time_ns = lambda: real_time_ns() - back_ns
    replay = os.environ.get("OUTBOX_WORKER_NO_REPLAY") != "1"
    tracker = Tracker.from_env(flush_interval=3600.0, replay=replay)
    if mode == "first":
        run = tracker.client(base, "A")
        run.add(profiles_examined=7)
    elif mode == "later":
        run = tracker.client(base, "A")
        run.add(profiles_examined=3)
        run.flush()
        run.add(profiles_examined=5)
        run.close()
        other = tracker.client(base, "B")
        other.add(profiles_examined=2)
    elif mode in ("hold", "hold_then_close"):
        run = tracker.client(base, "A")
        run.add(profiles_examined=3)
        run.flush()
        run.add(profiles_examined=5)
        if mode == "hold_then_close":
            print("ready", flush=True)
            sys.stdin.readline()
            run.close()
            tracker.close()
            print("closed", flush=True)
            return
    elif mode == "reopen":
        run = tracker.client(base, "A")
        run.add(profiles_examined=4)
    elif mode == "loop":
        tracker.flush_interval = 0.05
        run = tracker.client(base, "A")
        print("ready", flush=True)
        n = 0
        while True:
            run.add(profiles_examined=1)
            n += 1
            print(n, flush=True)
    print("ready", flush=True)
    time.sleep(120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
