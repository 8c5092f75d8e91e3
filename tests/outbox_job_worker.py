"""A worker process for tests/test_outbox_jobs.py: a job whose completion the parent kills.

    python tests/outbox_job_worker.py MODE _      (settings from the environment)

Starts a job, opens clients A and B, adds 10 and 5 profiles and closes them (pending: the
flush interval is an hour), prints the job's run ID, then waits for a line on stdin and
calls ``job.complete()``.  MODE ``returned``: prints ``completed`` once ``complete()``
returned, and waits to be killed.  MODE ``inflight``: the parent kills it while the
completion is still being sent.  MODE ``warn``: like ``returned``, with
``JOBTRACK_ON_TRACKING_ERROR=warn`` (the parent revokes the token first: ``complete()``
returns with everything refused).
"""

from __future__ import annotations

import os
import sys
import time

from jobtrack_airtable.worker.tracker import Tracker


def main(mode: str) -> None:
    if mode == "warn":
        os.environ["JOBTRACK_ON_TRACKING_ERROR"] = "warn"
    tracker = Tracker.from_env(flush_interval=3600.0)
    job = tracker.job()
    for client, examined in (("A", 10), ("B", 5)):
        run = job.client(client)
        run.add(profiles_examined=examined)
        run.close()
    print("ready", flush=True)
    print(job.run_id, flush=True)
    sys.stdin.readline()
    job.complete()
    if mode in ("returned", "warn"):
        print("completed", flush=True)
    time.sleep(120)


if __name__ == "__main__":
    main(sys.argv[1])
