"""Staleness is judged on the server's clock (issue 10 item 4, SPEC §2.10): workers and the
admin 3 h off either way neither mark a live run stale nor hide a dead one.

The connection learns the server's clock from every response's ``Date`` header
(:class:`~jobtrack_airtable.transport.server_clock.ServerClock`); workers stamp their rows with
``conn.server_now`` and ``sync`` ages rows with it.  Skew is injected as the *local* clock of
each connection, so everything else runs for real: pyairtable → HTTP → the local server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
import requests

from jobtrack_airtable.admin.sync import Action, Plan, plan_sync
from jobtrack_airtable.admin.sync import apply as sync_apply
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.timeutil import parse_airtable, utcnow
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.transport.server_clock import ServerClock
from jobtrack_airtable.worker.tracker import Tracker

SKEWS = (timedelta(hours=-3), timedelta(hours=3))
#: Minutes, not the hours of production: long beside any scheduling delay on a loaded machine
#: (3 s made a slow start look stale), and far inside the 3 h skews, so a clock mistake shows.
THRESHOLD = timedelta(minutes=2)
#: How long ago the dead workers last wrote, on the server's clock.
DEAD_FOR = THRESHOLD + timedelta(minutes=1)


def _skewed(offset: timedelta) -> Callable[[], datetime]:
    return lambda: utcnow() + offset


def _connect(srv: LocalAirtable, skew: timedelta) -> Connection:
    return Connection.from_settings(
        srv.settings(rate_limit=0), schema=srv.schema, clock=ServerClock(local=_skewed(skew))
    )


def test_the_local_server_sends_a_correct_date_header(local_airtable: LocalAirtable) -> None:
    response = requests.get(
        f"{local_airtable.url}/v0/{local_airtable.base_id}/Job%20Tracking",
        headers={"Authorization": f"Bearer {local_airtable.token}"},
        timeout=10,
    )
    server = parsedate_to_datetime(response.headers["Date"])
    assert abs(server - datetime.now(UTC)) < timedelta(seconds=2)


@pytest.mark.parametrize("skew", SKEWS, ids=["behind", "ahead"])
def test_a_connection_learns_the_server_clock(local_airtable: LocalAirtable, skew: timedelta):
    conn = _connect(local_airtable, skew)
    assert conn.clock.offset is None  # nothing learnt before the first response
    assert abs(conn.server_now() - utcnow() - skew) < timedelta(seconds=1)
    Repository(conn).list_records("jobs")
    assert conn.clock.offset is not None
    assert abs(conn.server_now() - utcnow()) < timedelta(seconds=2)
    assert abs(conn.clock.offset + skew) < timedelta(seconds=2)


def test_unparseable_date_headers_are_ignored() -> None:
    clock = ServerClock()
    clock.learn("not a date", round_trip=timedelta(0))
    clock.learn("Wed, 01 Oct 2025 12:00:00 -0000", round_trip=timedelta(0))  # zone unknown
    assert clock.offset is None


def test_successive_responses_narrow_the_offset() -> None:
    local = [datetime(2025, 10, 1, 15, 0, 0, tzinfo=UTC)]  # 3 h ahead of the server
    clock = ServerClock(local=lambda: local[0])
    clock.learn("Wed, 01 Oct 2025 12:00:00 GMT", round_trip=timedelta(0))
    assert clock.offset == timedelta(hours=-3, milliseconds=500)  # somewhere in that second
    local[0] += timedelta(seconds=1.7)
    clock.learn("Wed, 01 Oct 2025 12:00:01 GMT", round_trip=timedelta(0))
    # The second response rules out offsets above -3 h + 0.3 s: the estimate tightens.
    assert clock.offset == timedelta(hours=-3, milliseconds=150)
    local[0] += timedelta(hours=5)  # the local clock is stepped: start afresh, not stuck
    clock.learn("Wed, 01 Oct 2025 12:00:02 GMT", round_trip=timedelta(0))
    assert clock.offset == timedelta(hours=-8, seconds=-1.7 + 2.5)


def _worker(
    srv: LocalAirtable, skew: timedelta, ago: timedelta = timedelta(0)
) -> tuple[Tracker, str, str]:
    """A worker on a clock ``skew`` off that starts a job and opens one client run, its
    timestamps on the server-corrected clock (the tracker's clock is the connection's), as of
    ``ago`` before now on that clock."""
    conn = _connect(srv, skew)
    tracker = Tracker(conn, clock=lambda: conn.server_now() - ago)
    job = tracker.job()
    client = job.client(f"Skew {int(skew.total_seconds() // 3600):+d}h {id(tracker)}")
    client.flush(heartbeat=True)
    return tracker, str(job.run_id), str(client.run_id)


def _admin_plan(srv: LocalAirtable, skew: timedelta, monkeypatch: pytest.MonkeyPatch) -> Plan:
    """Plan as an admin whose machine clock is ``skew`` off: the connection's local clock
    and sync's own fallback clock both read the skewed time."""
    with monkeypatch.context() as patch:
        patch.setattr(sync_apply, "utcnow", _skewed(skew))
        return plan_sync(Repository(_connect(srv, skew)), stale_after=THRESHOLD)


def test_skewed_workers_and_admins_judge_liveness_on_the_server_clock(
    local_airtable: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = local_airtable
    live = [_worker(srv, skew) for skew in SKEWS]
    # Right after their start, no run of any worker is stale, whatever its clock.
    for admin_skew in SKEWS:
        plan = _admin_plan(srv, admin_skew, monkeypatch)
        assert [r for r in plan.records if r.action is not Action.ATTENTION] == []

    # Workers killed DEAD_FOR ago: their rows were created then (the server's clock) and
    # stamped then (theirs) -- what waiting out the threshold for real would leave, without
    # a wait whose length a busy machine decides.
    with monkeypatch.context() as patch:
        patch.setattr(srv.store, "clock", lambda: datetime.now(UTC) - DEAD_FOR)
        dead = [_worker(srv, skew, ago=DEAD_FOR) for skew in SKEWS]
    # The live workers heartbeat (job and client run); the dead ones stay silent.
    live_keys: set[str] = set()
    for tracker, job_id, client_id in live:
        job = tracker.attach_job(job_id)
        job.heartbeat()
        tracker.attach_client_run(client_id).flush(heartbeat=True)
        live_keys |= {job_id, client_id}
    dead_keys = {key for _, job_id, client_id in dead for key in (job_id, client_id)}

    for admin_skew in SKEWS:
        plan = _admin_plan(srv, admin_skew, monkeypatch)
        # The plan's "now" is the server's, not the admin's 3 h-off clock.
        assert abs(parse_airtable(plan.generated_at) - utcnow()) < timedelta(minutes=1)
        failed = {
            r.key
            for r in plan.records
            if r.action is Action.UPDATE
            and any(c.field == "status" and c.new == Status.FAILED.value for c in r.changes)
        }
        assert failed & live_keys == set(), "a live run was marked stale"
        assert failed == dead_keys, "a dead run was not found stale a minute past the threshold"
