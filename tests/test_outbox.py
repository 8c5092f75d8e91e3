"""The durable outbox (issue 19): refusals keep the data, late writes are repaired, SIGKILL
loses nothing ``add()`` returned for, and increments follow the request budget.

Every test goes through the real path (pyairtable → HTTP → the local server); processes are
real where they matter (SIGKILL)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from benchmarks._cadence import big_job, big_job_floor, busy_worker
from jobtrack_airtable.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RunHeldError,
    UnknownFieldError,
)
from jobtrack_airtable.outbox import SqliteOutbox
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import (
    CRR_TABLE,
    EXAMINED,
    JT,
    by_key,
    client_rows,
    held_requests_applied,
    job_row,
    left_refused,
    make_conn,
    mid_run,
    outbox_cli,
    rename_field,
    spawn_worker,
)

WORKER = Path(__file__).with_name("outbox_worker.py")


def _complete_and_check(srv: TrackingServer, tracker: Tracker, job: Any) -> None:
    """The cause is gone: the job completes with every client's 15 and the job's 60."""
    job.complete()
    tracker.close()
    rows = client_rows(srv, str(job.run_id))
    assert {k: r[EXAMINED] for k, r in rows.items()} == {"A": 15, "B": 15, "C": 15, "D": 15}
    assert job_row(srv, str(job.run_id))["Total Profiles Examined"] == 60


def test_a_revoked_token_keeps_every_change_and_raises_until_it_is_back(
    local_airtable: TrackingServer, caplog: pytest.LogCaptureFixture
) -> None:
    tracker, job, runs = mid_run(local_airtable)
    token = local_airtable.token
    local_airtable.set_token("revoked-token")
    with pytest.raises(AuthenticationError):
        tracker.flush()
    with pytest.raises(AuthenticationError):
        runs[0].close(wait=True)  # still refused: raised again, still kept
    refusals = [r for r in caplog.records if "refused its write" in r.getMessage()]
    assert len({r.getMessage() for r in refusals}) == len(runs)  # logged once per run
    assert len(SqliteOutbox(local_airtable.outbox_path).entries()) == 4
    local_airtable.set_token(token)
    tracker.flush()
    _complete_and_check(local_airtable, tracker, job)
    assert client_rows(local_airtable, str(job.run_id))["A"]["Status"] == "Completed"
    assert SqliteOutbox(local_airtable.outbox_path).entries() == []


def test_a_permission_removed_keeps_every_change_until_it_is_back(
    local_airtable: TrackingServer,
) -> None:
    tracker, job, _runs = mid_run(local_airtable)
    local_airtable.faults.add("403", method="PATCH", path="Client", times=1000)
    with pytest.raises(PermissionDeniedError):
        tracker.flush()
    local_airtable.faults.clear()
    _complete_and_check(local_airtable, tracker, job)


def test_a_field_renamed_without_pin_keeps_the_data_until_it_is_renamed_back(
    local_airtable: TrackingServer,
) -> None:
    tracker, job, _runs = mid_run(local_airtable)
    api, base_id = local_airtable.api(), local_airtable.base_id
    rename_field(api, base_id, CRR_TABLE, EXAMINED, "Profiles Looked At")
    with pytest.raises(UnknownFieldError):
        tracker.flush()
    with pytest.raises(UnknownFieldError):
        job.complete()
    rename_field(api, base_id, CRR_TABLE, "Profiles Looked At", EXAMINED)
    _complete_and_check(local_airtable, tracker, job)


def test_a_refused_write_is_replayed_by_the_next_tracker_of_the_machine(
    local_airtable: TrackingServer,
) -> None:
    base = left_refused(local_airtable)
    with Tracker(make_conn(local_airtable)) as later:
        replayed = later.replay()
    assert sorted(r.client_id for r in replayed) == ["A", "B", "C", "D"]
    rows = client_rows(local_airtable, base)
    assert {(r[EXAMINED], r["Status"]) for r in rows.values()} == {(15, "Completed")}


def test_a_write_applied_late_over_a_newer_one_is_repaired_before_completion(
    local_airtable: TrackingServer,
) -> None:
    # The server holds the flush 4 s and then applies it; the client gave up after 1 s and
    # its retry landed at once, then the close landed: the held write would overwrite it.
    conn = make_conn(local_airtable, timeout=1.0, outbox_settle=5.0)
    tracker = Tracker(conn)
    job = tracker.job()
    run = job.client("A")
    tracker.flush()
    run.add(profiles_examined=20)
    local_airtable.faults.add("delay", delay=4.0, method="PATCH", path="Client", times=1)
    tracker.flush()
    run.add(profiles_examined=10)
    run.close(wait=True)
    job.complete()
    held_requests_applied(local_airtable)
    row = client_rows(local_airtable, str(job.run_id))["A"]
    assert (row[EXAMINED], row["Status"]) == (30, "Completed")
    assert job_row(local_airtable, str(job.run_id))["Total Profiles Examined"] == 30
    assert local_airtable.faults.counts == {"delay": 1}
    tracker.close()
    assert SqliteOutbox(local_airtable.outbox_path).entries() == []


def _spawn(
    srv: TrackingServer, mode: str, base: str, *, stdin: bool = False, **env: str
) -> subprocess.Popen[str]:
    env = {"JOBTRACK_OUTBOX_URL": f"sqlite:///{srv.outbox_path}", **env}
    return spawn_worker(srv, mode, base, worker=WORKER, env=env, stdin=stdin)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("first", {"A": (7, "Running")}),
        ("later", {"A": (8, "Completed"), "B": (2, "Running")}),
    ],
)
def test_sigkill_loses_nothing_add_returned_for(
    local_airtable: TrackingServer, mode: str, expected: dict[str, tuple[int, str]]
) -> None:
    base = str(Tracker(make_conn(local_airtable)).job().run_id)
    _kill(_spawn(local_airtable, mode, base))
    with Tracker(make_conn(local_airtable)) as later:
        later.flush()
    rows = client_rows(local_airtable, base)
    assert {k: (r.get(EXAMINED), r.get("Status")) for k, r in rows.items()} == expected


def test_sigkill_at_a_random_point_loses_no_increment_and_counts_none_twice(
    local_airtable: TrackingServer,
) -> None:
    base = str(Tracker(make_conn(local_airtable)).job().run_id)
    proc = _spawn(local_airtable, "loop", base)
    assert proc.stdout is not None
    stop = random.randint(1, 200)
    last = 0
    while last < stop:
        last = int(proc.stdout.readline())
    _kill(proc)
    # What it printed before it died is still in the pipe: the last total it printed.
    last = max([last, *(int(line) for line in proc.stdout.read().split())])
    # Every total the worker printed was stored before it was printed; one more add() may
    # have been stored but not printed when the signal came.
    with Tracker(make_conn(local_airtable)) as later:
        later.flush()
    row = client_rows(local_airtable, base)["A"]
    assert row[EXAMINED] in (last, last + 1)
    assert row["Status"] == "Running"


def test_a_run_reopened_on_a_clock_that_went_back_keeps_its_changes(
    local_airtable: TrackingServer,
) -> None:
    """A worker whose clock is an hour behind (an NTP step back, another host's skew)
    re-opens a run whose entry a killed process left at a newer clock (a live one holds the
    run's lease: see test_a_run_held_by_a_live_process_*): its change is the last one made
    to the row, is stored, and is what a replay writes after both die."""
    base = str(Tracker(make_conn(local_airtable)).job().run_id)
    holder = _spawn(local_airtable, "hold", base)  # A: 3 written, 8 pending
    _kill(holder)
    reopened = _spawn(
        local_airtable,
        "reopen",
        base,
        OUTBOX_WORKER_CLOCK_BACK="3600",
        OUTBOX_WORKER_NO_REPLAY="1",  # the holder's entry stays, at its newer version
    )
    _kill(reopened)
    with Tracker(make_conn(local_airtable)) as later:
        later.flush()
    # The re-open read 3 from the row and added 4; before the fix its changes were ignored
    # by the store (a lower version) and the replay wrote the holder's older 8.
    assert client_rows(local_airtable, base)["A"][EXAMINED] == 7
    assert SqliteOutbox(local_airtable.outbox_path).entries() == []


def test_a_run_held_by_a_live_process_of_the_machine_is_refused(
    local_airtable: TrackingServer,
) -> None:
    """Two processes of one machine holding one client run would each write their own
    absolute totals, the later erasing the other's increments: the second open is refused
    before any request, by a typed error naming the run and the holder.  Once the holder
    has closed the run, it opens (with force: it ended) and the totals add up."""
    base = str(Tracker(make_conn(local_airtable)).job().run_id)
    holder = _spawn(local_airtable, "hold_then_close", base, stdin=True)  # A: 3 + 5 pending
    tracker = Tracker(make_conn(local_airtable))
    mark = local_airtable.request_log.total
    with pytest.raises(RunHeldError) as info:
        tracker.client(base, "A")
    assert local_airtable.request_log.total == mark
    assert info.value.run_id == f"{base}-A"
    assert f"pid {holder.pid}" in str(info.value)
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("close\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "closed"
    assert holder.wait(timeout=60) == 0
    run = tracker.client(base, "A", force=True)
    run.add(profiles_examined=4)
    run.close(wait=True)
    tracker.close()
    row = client_rows(local_airtable, base)["A"]
    assert (row[EXAMINED], row["Status"]) == (12, "Completed")
    assert SqliteOutbox(local_airtable.outbox_path).entries() == []


def test_a_run_held_by_a_killed_process_opens_from_what_it_left(
    local_airtable: TrackingServer,
) -> None:
    base = str(Tracker(make_conn(local_airtable)).job().run_id)
    _kill(_spawn(local_airtable, "hold", base))  # A: 3 written, 5 pending in the outbox
    with Tracker(make_conn(local_airtable)) as tracker:
        # The dead holder's lease is void; its pending 5 were replayed by this tracker.
        run = tracker.client(base, "A")
        run.add(profiles_examined=4)
        run.close()
    row = client_rows(local_airtable, base)["A"]
    assert (row[EXAMINED], row["Status"]) == (12, "Completed")


def test_two_replays_racing_write_each_entry_once(local_airtable: TrackingServer) -> None:
    base = left_refused(local_airtable)
    local_airtable.request_log.clear()
    replayed: list[list[Any]] = []
    start = threading.Barrier(2)

    def replay() -> None:
        with Tracker(make_conn(local_airtable), replay=False) as t:
            start.wait()
            replayed.append(t.replay())

    threads = [threading.Thread(target=replay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in replayed) in ([0, 4], [1, 3], [2, 2])  # disjoint claims
    rows = client_rows(local_airtable, base)
    assert {(r[EXAMINED], r["Status"]) for r in rows.values()} == {(15, "Completed")}


def test_a_busy_worker_stays_within_its_monthly_budget(local_airtable: TrackingServer) -> None:
    report = busy_worker(local_airtable, hours=6, budget=10_000)
    assert report.clients == 36
    # 10,000 a month is 333 a day, 83 in a quarter of a day.
    assert report.requests <= 83
    assert report.slowest_visible <= 60


def test_a_big_job_costs_close_to_one_write_per_client(local_airtable: TrackingServer) -> None:
    report, completion = big_job(local_airtable, clients=300)
    assert report.requests <= 1.1 * big_job_floor(300)
    assert completion == 3 + 2


def test_outbox_status_replay_and_drop_from_the_cli(
    local_airtable: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = left_refused(local_airtable)
    status = outbox_cli(local_airtable, monkeypatch, "outbox", "status", "--json")
    assert status.exit_code == 2, status.output
    pending = json.loads(status.stdout)["pending"]
    assert sorted(p["run_id"] for p in pending) == [f"{base}-{c}" for c in "ABCD"]
    assert {(p["status"], p["totals"]["profiles_examined"]) for p in pending} == {("Completed", 15)}
    assert all("AuthenticationError" in p["error"] for p in pending)
    plan = outbox_cli(local_airtable, monkeypatch, "outbox", "drop", f"{base}-D")
    assert plan.exit_code == 2 and "Would drop 1 entry" in plan.stdout
    assert len(SqliteOutbox(local_airtable.outbox_path).entries()) == 4  # a plan drops nothing
    applied = outbox_cli(local_airtable, monkeypatch, "outbox", "drop", f"{base}-D", "--apply")
    assert applied.exit_code == 0 and "Dropped 1 entry" in applied.stdout
    replayed = outbox_cli(local_airtable, monkeypatch, "outbox", "replay", "--json")
    assert replayed.exit_code == 0, replayed.output
    assert sorted(json.loads(replayed.stdout)["replayed"]) == [f"{base}-{c}" for c in "ABC"]
    rows = client_rows(local_airtable, base)
    assert {k: (r[EXAMINED], r["Status"]) for k, r in rows.items()} == {
        "A": (15, "Completed"),
        "B": (15, "Completed"),
        "C": (15, "Completed"),
        "D": (10, "Running"),  # dropped: what it still held is gone, as the plan said
    }
    assert outbox_cli(local_airtable, monkeypatch, "outbox", "status").exit_code == 0


def test_outbox_drop_of_an_unknown_run_id_is_refused(
    local_airtable: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = outbox_cli(local_airtable, monkeypatch, "outbox", "drop", "250930-141522-Nobody")
    assert result.exit_code == 1
    assert "250930-141522-Nobody" in result.output


def test_a_job_note_applied_late_does_not_erase_the_completion(
    local_airtable: TrackingServer,
) -> None:
    tracker = Tracker(make_conn(local_airtable, timeout=1.0, outbox_settle=5.0))
    job = tracker.job()
    local_airtable.faults.add("delay", delay=4.0, method="PATCH", path="Job", times=1)
    job.note("halfway")
    job.complete(note="all done")
    tracker.close()
    held_requests_applied(local_airtable)
    [row] = by_key(local_airtable, JT)[str(job.run_id)]
    assert row["Status"] == "No Leads To Score"
    assert "halfway" in row["System Notes"] and "all done" in row["System Notes"]
    assert local_airtable.faults.counts == {"delay": 1}


def test_a_job_start_created_late_leaves_one_row(local_airtable: TrackingServer) -> None:
    tracker = Tracker(make_conn(local_airtable, timeout=1.0, outbox_settle=5.0))
    local_airtable.faults.add("delay", delay=4.0, method="POST", path="Job", times=1)
    with tracker.job() as job:
        pass
    tracker.close()
    held_requests_applied(local_airtable)
    rows = by_key(local_airtable, JT)[str(job.run_id)]
    assert [r["Status"] for r in rows] == ["No Leads To Score"]
    assert local_airtable.faults.counts == {"delay": 1}
