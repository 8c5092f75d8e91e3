"""Which writes may land late (issue 19): the transport tells a write that waited (for the
limiter, a 429's penalty) from one with an attempt given up on while in flight (a read
timeout).  Only the second is verified after the settle window; a write that merely waited
out a penalty longer than the client timeout costs no verification read and no wait.

Real path: pyairtable → HTTP → the local server, its fault injector for the 429 and for
the held request (``delay``)."""

from __future__ import annotations

from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import EXAMINED, client_rows, held_requests_applied, job_row, make_conn

#: A 429's wait (3 s + jitter up to 0.5 s) longer than the client timeout (2 s).
PENALTY_POLICY = DEFAULT_POLICY.scaled(0.1)
TIMEOUT = 2.0


def _penalised_conn(srv: TrackingServer) -> Connection:
    settings = srv.settings(rate_limit=0, flush_interval=3600.0, timeout=TIMEOUT)
    conn = Connection.from_settings(settings, policy=PENALTY_POLICY)
    assert PENALTY_POLICY.rate_limit_wait > conn.settings.timeout
    return conn


def test_a_client_write_that_waited_out_a_429_penalty_is_not_verified_later(
    local_airtable: TrackingServer,
) -> None:
    tracker = Tracker(_penalised_conn(local_airtable))
    job = tracker.job()
    run = job.client("A")
    run.add(profiles_examined=7)
    local_airtable.faults.add("429", method="PATCH", path="Client", times=1)
    run.close(wait=True)
    assert local_airtable.faults.counts == {"429": 1}
    # Answered (late, after the penalty), never in flight when given up on: nothing to
    # wait out, nothing to read again.
    assert tracker._commit._settling == {}
    assert run._settle_until == 0.0
    mark = local_airtable.request_log.total
    job.complete()
    # The job row read, one page of client rows, the job write: no verification read.
    assert local_airtable.request_log.total - mark == 3
    tracker.close()
    assert client_rows(local_airtable, str(job.run_id))["A"][EXAMINED] == 7
    assert job_row(local_airtable, str(job.run_id))["Total Profiles Examined"] == 7


def test_a_job_write_that_waited_out_a_429_penalty_is_not_verified_later(
    local_airtable: TrackingServer,
) -> None:
    tracker = Tracker(_penalised_conn(local_airtable))
    job = tracker.job()
    local_airtable.faults.add("429", method="PATCH", path="Job", times=1)
    job.note("halfway")
    assert local_airtable.faults.counts == {"429": 1}
    assert job._unsettled_until == 0.0
    mark = local_airtable.request_log.total
    job.complete()
    # Job row read, the (empty) page of client rows, the write; no list of the Run ID's
    # rows after a settle window.
    assert local_airtable.request_log.total - mark == 3
    tracker.close()
    assert "halfway" in job_row(local_airtable, str(job.run_id))["System Notes"]


def test_a_client_write_that_timed_out_in_flight_is_verified(
    local_airtable: TrackingServer,
) -> None:
    # The server holds the write 4 s; the client gives up after 1 s and retries: the held
    # attempt may be applied after newer writes, so its run is read again after the window.
    # The window (10 s) outlasts the close on a loaded machine, so the run is still settling
    # when close returns; the verification may then come from the commit's thread or from
    # complete(), which waits for it: counted from the close on, it is there exactly once.
    tracker = Tracker(make_conn(local_airtable, timeout=1.0, outbox_settle=10.0))
    job = tracker.job()
    run = job.client("A")
    run.add(profiles_examined=7)
    local_airtable.faults.add("delay", delay=4.0, method="PATCH", path="Client", times=1)
    run.close(wait=True)
    mark = local_airtable.request_log.total
    assert local_airtable.faults.counts == {"delay": 1}
    assert list(tracker._commit._settling) == [id(run)]
    assert run._settle_until > 0
    held_requests_applied(local_airtable)
    job.complete()
    # The verification read of the row, then the job row read, one page, the job write.
    after = [(e.method, e.path, e.status) for e in local_airtable.request_log.entries[mark:]]
    assert len(after) == 4, after
    assert tracker._commit._settling == {}
    tracker.close()
    assert client_rows(local_airtable, str(job.run_id))["A"][EXAMINED] == 7
    assert job_row(local_airtable, str(job.run_id))["Total Profiles Examined"] == 7


def test_a_read_that_timed_out_is_not_verified_later(local_airtable: TrackingServer) -> None:
    # The start's read of its Run ID (the claim) is held past the timeout and retried: a
    # read applied late changes nothing, so the job has no settle window to wait out.
    tracker = Tracker(make_conn(local_airtable, timeout=1.0, outbox_settle=30.0))
    local_airtable.faults.add("delay", delay=4.0, method="GET", path="Job", times=1)
    job = tracker.job()
    assert local_airtable.faults.counts == {"delay": 1}
    assert job._unsettled_until == 0.0
    held_requests_applied(local_airtable)
    mark = local_airtable.request_log.total
    job.complete()
    # The job row read, the (empty) page of client rows, the write: no list after a window.
    assert local_airtable.request_log.total - mark == 3
    tracker.close()
