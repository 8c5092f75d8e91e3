"""A worker process for tests/test_group_commit.py: records client runs through the group
commit, then waits to be signalled (or exits) with changes still pending.

    python tests/group_commit_worker.py MODE BASE_RUN_ID      (settings from the environment)

MODE ``pending``: opens A and B, adds to both, closes A, prints ``ready`` and waits (the
parent sends SIGTERM or SIGKILL).  MODE ``exit``: the same, then returns without closing the
tracker (the interpreter's exit drains).  MODE ``flushed``: A gets 5, is flushed, then gets
3 more and is closed; prints ``ready`` and waits (for a SIGKILL between the close and its
batch).
"""

from __future__ import annotations

import sys
import time

from jobtrack_airtable.worker.tracker import Tracker


def main(mode: str, base: str) -> None:
    tracker = Tracker.from_env(flush_interval=3600.0)
    if mode == "flushed":
        run = tracker.client(base, "A")
        run.add(profiles_examined=5)
        run.flush()
        run.add(profiles_examined=3)
        run.close()
    else:
        a, b = tracker.open_clients(base, ["A", "B"])
        a.add(profiles_examined=7)
        b.add(profiles_examined=4)
        a.close()
    print("ready", flush=True)
    if mode == "exit":
        return
    time.sleep(120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
