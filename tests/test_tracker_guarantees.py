"""Guarantees of the worker API under concurrency, re-opens and other writers (issue 10,
items 1-3): pyairtable → HTTP → the local server, many trackers at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.tracker import Tracker

from .test_tracker import JOBS, by_key, make_conn

STARTERS = 14


def test_concurrent_starters_complete_every_job_with_one_row_each(
    local_airtable: LocalAirtable,
) -> None:
    """14 orchestrators start and at once complete jobs in the same seconds: a completion
    must never meet another host's short-lived claim row (422 on the natural key)."""
    fixed = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    trackers = [Tracker(make_conn(local_airtable), clock=lambda: fixed) for _ in range(STARTERS)]
    barrier = threading.Barrier(STARTERS)
    done: list[str] = []
    errors: list[BaseException] = []

    def work(t: Tracker) -> None:
        barrier.wait()
        try:
            for _ in range(3):
                with t.job() as job:
                    job.heartbeat()
                    job.note("scoring")
                done.append(str(job.run_id))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in trackers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    keys = by_key(local_airtable, JOBS)
    assert sorted(keys) == sorted(done)
    assert len(done) == 3 * STARTERS
    assert {k: len(v) for k, v in keys.items() if len(v) != 1} == {}
    assert {k: v[0]["Status"] for k, v in keys.items() if v[0]["Status"] != "No Leads To Score"} == {}
