"""The worker API end to end: pyairtable → HTTP → the local server.

Request budgets (SPEC §4) are asserted exactly from the server's request log.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobtrack_airtable.errors import (
    InvalidClientIdError,
    InvalidMetricError,
    InvalidRunIdError,
    NotFoundError,
    RunClosedError,
    StatusTransitionError,
    UnknownMetricError,
)
from jobtrack_airtable.limiter import NullLimiter
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.run_ids import BaseRunId, ClientRunId
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.worker.tracker import Tracker

from .conftest import TEST_TOKEN
from .helpers import CRR_TABLE, JOB_TABLE, by_key, make_conn, rows


@pytest.fixture
def tracker(local_airtable: LocalAirtable) -> Tracker:
    return Tracker(make_conn(local_airtable))


# ------------------------------------------------------------------ budgets (SPEC §4)


def test_start_job_costs_two_requests(tracker: Tracker, local_airtable: LocalAirtable) -> None:
    local_airtable.request_log.clear()
    job = tracker.job(stream=3)
    assert local_airtable.request_log.total == 2
    [row] = rows(local_airtable, JOB_TABLE)
    assert row["fields"]["Run ID"] == str(job.run_id)
    assert row["fields"]["Status"] == "Running"
    assert row["fields"]["Stream"] == 3
    assert isinstance(job.run_id, BaseRunId)


def test_open_update_close_cost_one_record_each(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    job = tracker.job()
    log = local_airtable.request_log
    log.clear()
    run = job.client("Guy-Wilson", name="Guy Wilson")
    assert log.total == 0  # group-committed: on the wire with the next drain
    tracker.flush()
    assert log.total == 1
    assert rows(local_airtable, CRR_TABLE)[0]["fields"]["Status"] == "Running"
    run.add(profiles_examined=10, profile_tokens=900)
    assert run.flush() is True
    assert log.total == 2
    assert run.flush() is False  # nothing pending: no request
    closed = run.close(wait=True)
    assert log.total == 3
    assert closed is not None and closed.status is Status.COMPLETED
    assert all(e.method == "PATCH" for e in log.entries)  # every write is an upsert
    [row] = rows(local_airtable, CRR_TABLE)
    assert row["fields"]["Status"] == "Completed"
    assert row["fields"]["Profiles Examined for Scoring"] == 10
    assert isinstance(run.run_id, ClientRunId)


@pytest.mark.parametrize("n", [1, 10, 11, 25])
def test_open_n_client_runs_costs_ceil_n_over_10(
    tracker: Tracker, local_airtable: LocalAirtable, n: int
) -> None:
    job = tracker.job()
    local_airtable.request_log.clear()
    runs = job.open_clients([f"Client-{i}" for i in range(n)])
    tracker.flush()
    assert local_airtable.request_log.total == math.ceil(n / 10)
    assert len(runs) == n
    assert {r["fields"]["Status"] for r in rows(local_airtable, CRR_TABLE)} == {"Running"}
    assert len(rows(local_airtable, CRR_TABLE)) == n


@pytest.mark.parametrize("n", [1, 10, 11, 25])
def test_open_n_client_runs_of_a_propagated_job_costs_ceil_n_over_10(
    tracker: Tracker, local_airtable: LocalAirtable, n: int
) -> None:
    job = tracker.job()
    other = Tracker(make_conn(local_airtable))  # another process: it cannot know the rows
    local_airtable.request_log.clear()
    runs = other.open_clients(str(job.run_id), [f"Client-{i}" for i in range(n)])
    assert local_airtable.request_log.total == math.ceil(n / 10)
    assert len(runs) == n
    assert len(rows(local_airtable, CRR_TABLE)) == n


@pytest.mark.parametrize("n", [1, 9, 10, 11, 35])
def test_clients_opened_run_and_closed_one_after_another_cost_ceil_n_over_10(
    tracker: Tracker, local_airtable: LocalAirtable, n: int
) -> None:
    """Issue 11: N clients one after another cost ⌈N/10⌉ + a constant, not 2N.  Within one
    flush interval a run's open, flushes and close coalesce into one record, so here the
    client writes cost ⌈N/10⌉ (the issue's bound is ⌈N/10⌉ opens + ⌈N/10⌉ closes)."""
    local_airtable.request_log.clear()
    with tracker.job() as job:
        for i in range(n):
            with job.client(f"Client-{i}") as run:
                run.add(profiles_examined=i + 1, profiles_scored=1)
    start, completion = 2, 1 + 1 + 1  # job read, client rows read, job write
    assert local_airtable.request_log.total == start + math.ceil(n / 10) + completion
    stored = by_key(local_airtable, CRR_TABLE)
    assert len(stored) == n
    assert {v[0]["Status"] for v in stored.values()} == {"Completed"}
    assert (
        rows(local_airtable, JOB_TABLE)[0]["fields"]["Total Profiles Examined"] == n * (n + 1) // 2
    )


@pytest.mark.parametrize("k", [3, 10, 25])
def test_runs_open_at_once_cost_ceil_k_over_10_per_flush_interval(
    tracker: Tracker, local_airtable: LocalAirtable, k: int
) -> None:
    job = tracker.job()
    runs = job.open_clients([f"Client-{i}" for i in range(k)])
    tracker.flush()
    log = local_airtable.request_log
    for _interval in range(3):
        log.clear()
        for r in runs:
            for _ in range(5):
                r.add(posts_examined=1)
        tracker.flush()  # what the background thread does once per flush interval
        assert log.total == math.ceil(k / 10)
    log.clear()
    for r in runs:
        r.close()
    tracker.flush()
    assert log.total == math.ceil(k / 10)
    assert {
        v[0]["Posts Examined for Scoring"] for v in by_key(local_airtable, CRR_TABLE).values()
    } == {15}


def test_thousand_increments_cost_open_close_plus_one_per_flush(
    local_airtable: LocalAirtable,
) -> None:
    now = [datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)]
    tracker = Tracker(make_conn(local_airtable), clock=lambda: now[0], flush_interval=3600.0)
    job = tracker.job()
    local_airtable.request_log.clear()
    with job.client("Guy-Wilson") as run:
        for _ in range(1000):
            run.add(profiles_examined=1, profile_tokens=7)
    tracker.flush()
    assert local_airtable.request_log.total == 1  # open and close coalesced: no interval elapsed
    [row] = rows(local_airtable, CRR_TABLE)
    assert row["fields"]["Profiles Examined for Scoring"] == 1000
    assert row["fields"]["Profile Scoring Tokens"] == 7000


def test_flush_interval_bounds_requests(local_airtable: LocalAirtable) -> None:
    tracker = Tracker(make_conn(local_airtable), flush_interval=0.05)
    job = tracker.job()
    local_airtable.request_log.clear()
    import time

    started = time.monotonic()
    with job.client("Guy-Wilson") as run:
        for _ in range(1000):
            run.add(posts_examined=1)
            time.sleep(0.0002)
    tracker.flush()
    elapsed = time.monotonic() - started
    intervals = math.ceil(elapsed / 0.05)
    total = local_airtable.request_log.total
    assert total <= 1 + intervals
    assert rows(local_airtable, CRR_TABLE)[0]["fields"]["Posts Examined for Scoring"] == 1000
    tracker.close()


@pytest.mark.parametrize("n", [0, 3, 100, 150])
def test_complete_job_costs_pages_plus_two(
    tracker: Tracker, local_airtable: LocalAirtable, n: int
) -> None:
    job = tracker.job()
    # Client rows written straight through the repository, to keep the test fast.
    tracker.repo.client_runs.upsert(
        [
            {
                "run_id": f"{job.run_id}-C{i}",
                "client_id": f"C{i}",
                "status": "Completed",
                "profiles_examined": 2,
                "profiles_scored": 1,
            }
            for i in range(n)
        ]
    )
    local_airtable.request_log.clear()
    row = job.complete()
    pages = max(1, math.ceil(n / 100))
    assert local_airtable.request_log.total == pages + 2  # + the job row read, + its write
    assert row.status == (Status.COMPLETED if n else Status.NO_LEADS)
    fields = rows(local_airtable, JOB_TABLE)[0]["fields"]
    assert fields.get("Clients Processed", 0) == n
    assert fields.get("Total Profiles Examined", 0) == 2 * n


# ------------------------------------------------------------------ behaviour


def test_job_context_manager_aggregates_and_completes(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    with tracker.job(stream=2) as job:
        with job.client("Guy-Wilson", name="Guy Wilson") as run:
            run.add(profiles_examined=10, profiles_scored=8, profile_tokens=100)
            run.add(profiles_examined=5, profiles_scored=5, profile_tokens=50)
            run.set(apify_run_id="8MSTBAfqMzuXPvgB3", apify_costs=1.255)
        with job.client("Empty-Co"):
            pass
        with pytest.raises(RuntimeError), job.client("Broken-Co") as bad:
            bad.add(posts_examined=4)
            raise RuntimeError("scoring API down")
    crr = {k: v[0] for k, v in by_key(local_airtable, CRR_TABLE).items()}
    base = str(job.run_id)
    guy = crr[f"{base}-Guy-Wilson"]
    assert guy["Status"] == "Completed"
    assert guy["Profiles Examined for Scoring"] == 15
    assert guy["Apify API Costs"] == 1.26
    assert guy["Apify Run ID"] == "8MSTBAfqMzuXPvgB3"
    assert crr[f"{base}-Empty-Co"]["Status"] == "No Leads To Score"
    broken = crr[f"{base}-Broken-Co"]
    assert broken["Status"] == "Failed"
    assert broken["Error Details"] == "RuntimeError: scoring API down"
    assert broken["Posts Examined for Scoring"] == 4
    jobrow = rows(local_airtable, JOB_TABLE)[0]["fields"]
    assert jobrow["Status"] == "Completed"
    assert jobrow["Clients Processed"] == 3
    assert jobrow["Clients With Errors"] == 1
    assert jobrow["Total Profiles Examined"] == 15
    assert jobrow["Posts Examined for Scoring"] == 4
    assert "End Time" in jobrow


def test_exception_in_job_marks_it_failed_with_a_note(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    with pytest.raises(KeyError), tracker.job() as job:
        raise KeyError("config missing")
    fields = rows(local_airtable, JOB_TABLE)[0]["fields"]
    assert fields["Status"] == "Failed"
    assert "failed: KeyError: 'config missing'" in fields["System Notes"]
    assert "started on" in fields["System Notes"]  # appended, not overwritten
    assert job.status is Status.FAILED


def test_all_clients_failed_fails_the_job(tracker: Tracker, local_airtable: LocalAirtable) -> None:
    with tracker.job() as job:
        for cid in ("A-1", "B-2"):
            with pytest.raises(ValueError, match="bad"), job.client(cid):
                raise ValueError("bad")
    assert rows(local_airtable, JOB_TABLE)[0]["fields"]["Status"] == "Failed"


def test_two_jobs_in_the_same_second_get_different_ids(local_airtable: LocalAirtable) -> None:
    fixed = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    # Two trackers = two orchestrators (no shared in-process state), one frozen clock.
    t1 = Tracker(make_conn(local_airtable), clock=lambda: fixed)
    t2 = Tracker(make_conn(local_airtable), clock=lambda: fixed)
    j1 = t1.job()
    j2 = t2.job()
    assert str(j1.run_id) == "250930-141522"
    assert str(j2.run_id) == "250930-141523"
    assert sorted(by_key(local_airtable, JOB_TABLE)) == ["250930-141522", "250930-141523"]
    assert all(len(v) == 1 for v in by_key(local_airtable, JOB_TABLE).values())


def test_concurrent_starts_on_many_hosts_never_share_an_id(local_airtable: LocalAirtable) -> None:
    fixed = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    trackers = [Tracker(make_conn(local_airtable), clock=lambda: fixed) for _ in range(4)]
    ids: list[str] = []
    barrier = threading.Barrier(4)

    def start(t: Tracker) -> None:
        barrier.wait()
        ids.append(str(t.job().run_id))

    threads = [threading.Thread(target=start, args=(t,)) for t in trackers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(set(ids)) == 4
    keys = by_key(local_airtable, JOB_TABLE)
    assert sorted(keys) == sorted(ids)
    assert all(len(v) == 1 for v in keys.values())


def test_same_process_never_reissues_an_id(local_airtable: LocalAirtable) -> None:
    fixed = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    t = Tracker(make_conn(local_airtable), clock=lambda: fixed)
    local_airtable.request_log.clear()
    ids = [str(t.job().run_id) for _ in range(3)]
    assert ids == ["250930-141522", "250930-141523", "250930-141524"]
    assert local_airtable.request_log.total == 6  # 2 each: no collision round-trips


def test_run_id_time_zone_is_configurable(local_airtable: LocalAirtable) -> None:
    fixed = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    t = Tracker(make_conn(local_airtable, run_id_timezone="Asia/Tokyo"), clock=lambda: fixed)
    assert str(t.job().run_id) == "250930-231522"


def test_attach_job_and_client_run_from_another_process(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    job = tracker.job()
    propagated = str(job.run_id)
    other = Tracker(make_conn(local_airtable))  # "another process"
    local_airtable.request_log.clear()
    with other.client(propagated, "Guy-Wilson") as run:
        run.add(profiles_examined=4)
    other.flush()
    assert local_airtable.request_log.total == 2  # open + close, no read
    attached = other.attach_job(propagated)
    assert attached.run_id == job.run_id
    resumed = other.attach_client_run(f"{propagated}-Guy-Wilson")
    assert resumed.totals.profiles_examined == 4
    assert resumed.status is Status.COMPLETED
    with pytest.raises(StatusTransitionError):
        resumed.close(Status.RUNNING)
    with pytest.raises(RunClosedError, match="closed \\(Completed\\); add"):
        resumed.add(profiles_examined=1)  # an ended row's totals are final
    resumed.close(Status.FAILED, force=True, wait=True)
    row = rows(local_airtable, CRR_TABLE)[0]["fields"]
    assert row["Profiles Examined for Scoring"] == 4
    assert row["Status"] == "Failed"
    assert "forced from 'Completed' to 'Failed'" in row["System Notes"]


def test_attach_unknown_job_is_not_found(tracker: Tracker) -> None:
    with pytest.raises(NotFoundError):
        tracker.attach_job("250930-141522")


def test_terminal_status_is_protected(tracker: Tracker, local_airtable: LocalAirtable) -> None:
    job = tracker.job()
    job.complete(Status.COMPLETED)
    local_airtable.request_log.clear()
    with pytest.raises(StatusTransitionError):
        job.complete(Status.RUNNING)
    assert local_airtable.request_log.total == 0
    job.complete(Status.FAILED, force=True)
    fields = rows(local_airtable, JOB_TABLE)[0]["fields"]
    assert fields["Status"] == "Failed"
    assert "Completed" in fields["System Notes"]


def test_notes_are_appended(tracker: Tracker, local_airtable: LocalAirtable) -> None:
    job = tracker.job()
    job.note("first")
    job.note("second")
    notes = rows(local_airtable, JOB_TABLE)[0]["fields"]["System Notes"].splitlines()
    assert len(notes) == 3
    assert notes[1].endswith("first") and notes[2].endswith("second")


def test_every_write_refreshes_last_updated(local_airtable: LocalAirtable) -> None:
    t0 = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    clock = [t0]
    tracker = Tracker(make_conn(local_airtable), clock=lambda: clock[0])
    job = tracker.job()
    run = job.client("Guy-Wilson")
    clock[0] = t0 + timedelta(minutes=5)
    run.add(profiles_examined=1)
    run.flush()
    assert (
        rows(local_airtable, CRR_TABLE)[0]["fields"]["Last Updated"] == "2025-09-30T14:20:22.000Z"
    )
    clock[0] = t0 + timedelta(minutes=9)
    job.note("still going")
    assert (
        rows(local_airtable, JOB_TABLE)[0]["fields"]["Last Updated"] == "2025-09-30T14:24:22.000Z"
    )


# ------------------------------------------------------------------ bad input, before any request


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda t, j: t.client("250930-141522-Guy-Wilson", "X"), InvalidRunIdError),
        (lambda t, j: t.client({"id": 1}, "X"), InvalidRunIdError),
        (lambda t, j: t.client("[object Object]", "X"), InvalidRunIdError),
        (lambda t, j: t.attach_client_run("250930-141522"), InvalidRunIdError),
        (lambda t, j: t.attach_job(None), InvalidRunIdError),
        (lambda t, j: j.client("bad\nid"), InvalidClientIdError),
        (lambda t, j: j.client(" padded"), InvalidClientIdError),
        (lambda t, j: j.client(""), InvalidClientIdError),
        (lambda t, j: j.open_clients(["ok", "[object Object]"]), InvalidClientIdError),
        (lambda t, j: t.job(stream=0), ValueError),
        (lambda t, j: t.job(stream=True), ValueError),
    ],
)
def test_bad_input_is_refused_before_any_request(
    tracker: Tracker, local_airtable: LocalAirtable, call, error: type[Exception]
) -> None:
    job = tracker.job()
    local_airtable.request_log.clear()
    with pytest.raises(error):
        call(tracker, job)
    assert local_airtable.request_log.total == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"profiles_examined": -1}, InvalidMetricError, "profiles_examined"),
        ({"profiles_examined": 1.5}, InvalidMetricError, "1.5"),
        ({"profile_tokens": float("nan")}, InvalidMetricError, "nan"),
        ({"posts_scored": True}, InvalidMetricError, "True"),
        ({"posts_scored": "abc"}, InvalidMetricError, "'abc'"),
        ({"success_rate": 1}, UnknownMetricError, "profiles_examined"),
    ],
)
def test_bad_metrics_are_refused_and_lose_nothing(
    tracker: Tracker, local_airtable: LocalAirtable, kwargs, error, fragment: str
) -> None:
    run = tracker.job().client("Guy-Wilson")
    run.add(profiles_examined=3)
    local_airtable.request_log.clear()
    with pytest.raises(error, match=fragment):
        run.add(**kwargs)
    assert local_airtable.request_log.total == 0
    assert run.totals.profiles_examined == 3  # what was recorded is intact
    run.close(wait=True)
    assert rows(local_airtable, CRR_TABLE)[0]["fields"]["Profiles Examined for Scoring"] == 3


def test_set_rejects_unknown_names_listing_extras(tracker: Tracker) -> None:
    run = tracker.job().client("Guy-Wilson")
    with pytest.raises(UnknownMetricError, match="apify_run_id"):
        run.set(Duration=4)


# ------------------------------------------------------------------ hostile client IDs


HOSTILE_CLIENTS = [
    "O'Brien",
    'Dean "Deano" Hobbs',
    "back\\slash",
    "{braces}",
    "curly}close",
    "Ana María López",
    "Zoë-Ørsted",
    "x') , TRUE(), ('",
    "Guy-Wilson",
    "Guy",
]


def test_hostile_client_ids_read_and_write_their_own_rows(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    job = tracker.job()
    runs = job.open_clients(HOSTILE_CLIENTS)
    for i, run in enumerate(runs):
        run.add(profiles_examined=i + 1)
        run.close()
    other = tracker.job()
    other.client("Guy").close(wait=True)  # same client in another job must not leak in
    for i, cid in enumerate(HOSTILE_CLIENTS):
        row = tracker.repo.client_runs.find(f"{job.run_id}-{cid}")
        assert row is not None
        assert row.client_id == cid
        assert row.metrics.profiles_examined == i + 1
    of_job = tracker.repo.client_runs.of_job(job.run_id)
    assert sorted(r.client_id for r in of_job) == sorted(HOSTILE_CLIENTS)
    assert len(tracker.repo.client_runs.of_job(other.run_id)) == 1


# ------------------------------------------------------------------ logging


def test_log_records_carry_run_and_client_ids(
    tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobtrack_airtable")
    with tracker.job() as job, job.client("Guy-Wilson") as run:
        run.add(profiles_examined=1)
    closed = [r for r in caplog.records if "closed as" in r.getMessage()]
    assert closed and closed[0].run_id == f"{job.run_id}-Guy-Wilson"
    assert closed[0].client_id == "Guy-Wilson"
    started = [r for r in caplog.records if r.getMessage().startswith("started job")]
    assert started[0].run_id == str(job.run_id)
    assert TEST_TOKEN not in caplog.text


def test_library_does_not_configure_logging() -> None:
    root = logging.getLogger()
    lib = logging.getLogger("jobtrack_airtable")
    assert not any(
        type(h).__module__.startswith("jobtrack_airtable") for h in root.handlers + lib.handlers
    )


def test_job_error_details_where_the_base_has_the_field(
    make_local_airtable, tmp_path: Path
) -> None:
    from jobtrack_airtable.schema import default_schema_path, load_schema

    text = (
        default_schema_path()
        .read_text()
        .replace(
            'name = "Error Details"\ntype = "multilineText"\noptional = true\nenabled = false',
            'name = "Error Details"\ntype = "multilineText"\noptional = true',
        )
    )
    path = tmp_path / "schema.toml"
    path.write_text(text)
    schema = load_schema(path)
    assert schema.jobs.has("error_details")
    srv = make_local_airtable(schema=schema)
    conn = make_conn(srv, schema_file=path)
    tracker = Tracker(conn)
    with pytest.raises(RuntimeError), tracker.job():
        raise RuntimeError("lead source unreachable")
    fields = rows(srv, JOB_TABLE)[0]["fields"]
    assert fields["Status"] == "Failed"
    assert fields["Error Details"] == "RuntimeError: lead source unreachable"
    assert "failed: RuntimeError: lead source unreachable" in fields["System Notes"]


def test_heartbeats_refresh_last_updated_in_one_request(local_airtable: LocalAirtable) -> None:
    t0 = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    clock = [t0]
    tracker = Tracker(make_conn(local_airtable), clock=lambda: clock[0])
    job = tracker.job()
    run = job.client("Guy-Wilson")
    tracker.flush()
    clock[0] = t0 + timedelta(hours=3)
    local_airtable.request_log.clear()
    assert run.flush() is False  # nothing pending: no request
    assert run.flush(heartbeat=True) is True
    job.heartbeat()
    assert local_airtable.request_log.total == 2
    stamp = "2025-09-30T17:15:22.000Z"
    assert rows(local_airtable, CRR_TABLE)[0]["fields"]["Last Updated"] == stamp
    assert rows(local_airtable, JOB_TABLE)[0]["fields"]["Last Updated"] == stamp
    assert rows(local_airtable, JOB_TABLE)[0]["fields"]["Status"] == "Running"


# ------------------------------------------------------------------ lifecycle (issue 13)


class _CountingLimiter(NullLimiter):
    """A limiter that never blocks and counts its close()."""

    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_tracker_as_a_context_manager_writes_pending_changes_and_closes_its_resources(
    local_airtable: LocalAirtable,
) -> None:
    limiter = _CountingLimiter()
    conn = Connection.from_settings(
        local_airtable.settings(flush_interval=3600.0),
        limiter=limiter,
    )
    closed_sessions: list[bool] = []
    original = conn.api.session.close
    conn.api.session.close = lambda: (closed_sessions.append(True), original())[1]  # type: ignore[method-assign]
    with Tracker(conn) as tracker:
        run = tracker.job().client("Guy-Wilson")
        run.add(profiles_examined=4)
        run.close()
        assert rows(local_airtable, CRR_TABLE) == []  # still pending
    assert rows(local_airtable, CRR_TABLE)[0]["fields"]["Profiles Examined for Scoring"] == 4
    assert limiter.closed == 1 and closed_sessions == [True]
    tracker.close()  # twice is harmless
    assert limiter.closed == 1


def test_find_job_and_refresh_read_the_row_as_stored(
    tracker: Tracker, local_airtable: LocalAirtable
) -> None:
    with tracker.job() as job, job.client("Guy-Wilson") as run:
        run.add(profiles_examined=3)
    local_airtable.request_log.clear()
    found = tracker.find_job(job.run_id)
    refreshed = job.refresh()
    assert local_airtable.request_log.total == 2
    assert found is not None and found.record_id == refreshed.record_id == job.record_id
    assert refreshed.status is Status.COMPLETED
    assert refreshed.aggregates["profiles_examined"] == 3
    assert [r.client_id for r in tracker.client_runs(job.run_id)] == ["Guy-Wilson"]
    assert tracker.find_job("250930-000000") is None


def test_two_objects_for_one_client_row_never_share_a_request(
    local_airtable: LocalAirtable,
) -> None:
    """Opening a client run that is already open in this process gives a second object for
    the same row; their writes go in separate requests (one upsert naming a row twice is
    answered with one record), in order, so the flush neither crashes nor loses the row."""
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    first = job.client("A")
    second = job.client("A")
    first.add(profiles_examined=1)
    second.add(profiles_examined=2)
    tracker.flush()
    second.close(wait=True)
    [row] = [r["fields"] for r in rows(local_airtable, CRR_TABLE)]
    assert (row["Client ID"], row["Status"]) == ("A", "Completed")
    tracker.close()


def test_a_client_listed_twice_is_refused_before_any_request(
    local_airtable: LocalAirtable,
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    before = len(local_airtable.request_log.entries)
    with pytest.raises(InvalidClientIdError, match="'B': listed twice"):
        job.open_clients(["B", ("B", "Bee")])
    assert len(local_airtable.request_log.entries) == before
    tracker.close()
