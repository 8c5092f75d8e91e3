"""Attack: the first job of a worker whose clock is hours off.

Rows are stamped on the server's clock, learnt from responses' ``Date`` headers, but a job's
start is stamped *before* its first request: on a fresh connection that is the raw local
clock.  A worker 3 h behind recorded its first job's Start Time 3 h early, so the job's
Duration read 3 h for a job of a second (3 h ahead: a negative Duration).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.timeutil import parse_airtable, utcnow
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.transport.server_clock import ServerClock
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import JOB_TABLE, rows


@pytest.mark.parametrize("skew", [timedelta(hours=-3), timedelta(hours=3)], ids=["behind", "ahead"])
def test_the_first_job_of_a_skewed_worker_has_a_true_start_and_duration(
    local_airtable: LocalAirtable, skew: timedelta
) -> None:
    def local() -> datetime:
        return utcnow() + skew

    conn = Connection.from_settings(
        local_airtable.settings(rate_limit=0, flush_interval=3600.0),
        policy=DEFAULT_POLICY.scaled(0.01),
        clock=ServerClock(local=local),
    )
    before = utcnow()
    with Tracker(conn) as tracker:
        job = tracker.job()  # the first request of this connection
        job.complete()
    after = utcnow()
    [row] = rows(local_airtable, JOB_TABLE)
    created = parse_airtable(row["createdTime"])
    start = parse_airtable(row["fields"]["Start Time"])
    end = parse_airtable(row["fields"]["End Time"])
    # True times: within what the calls took (however long a loaded machine made that), give
    # or take the Date header's 1 s grain -- never the 3 h skew.
    grain = timedelta(seconds=2)
    assert before - grain <= start <= end + grain
    assert end <= after + grain
    assert abs(start - created) <= (after - before) + grain
