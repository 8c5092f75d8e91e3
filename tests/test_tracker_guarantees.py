"""Guarantees of the worker API under concurrency, re-opens and other writers (issue 10,
items 1-3): pyairtable → HTTP → the local server, many trackers at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pyairtable
import pytest

from jobtrack_airtable.errors import TerminalRunError
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.worker.tracker import Tracker

from .conftest import TEST_BASE_ID
from .helpers import CRR_TABLE, JOB_TABLE, by_key, make_conn, rows

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
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in trackers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    keys = by_key(local_airtable, JOB_TABLE)
    assert sorted(keys) == sorted(done)
    assert len(done) == 3 * STARTERS
    assert {k: len(v) for k, v in keys.items() if len(v) != 1} == {}
    assert {
        k: v[0]["Status"] for k, v in keys.items() if v[0]["Status"] != "No Leads To Score"
    } == {}


# ------------------------------------------------------------------ re-opening a client run


def _job(local_airtable: LocalAirtable) -> tuple[Tracker, str]:
    tracker = Tracker(make_conn(local_airtable))
    return tracker, str(tracker.job().run_id)


def _crr(srv: LocalAirtable) -> dict:
    [row] = rows(srv, CRR_TABLE)
    return row["fields"]


def test_reopening_a_running_client_run_continues_from_its_stored_totals(
    local_airtable: LocalAirtable,
) -> None:
    _, base = _job(local_airtable)
    first = Tracker(make_conn(local_airtable))
    run = first.client(base, "Guy-Wilson")
    run.add(profiles_examined=10, profile_tokens=100)
    run.flush()  # ... and the worker dies here
    restarted = Tracker(make_conn(local_airtable))
    local_airtable.request_log.clear()
    again = restarted.client(base, "Guy-Wilson")
    assert local_airtable.request_log.total == 1  # the open, no read
    assert again.totals.profiles_examined == 10  # where the stored row stands
    again.add(profiles_examined=2, profile_tokens=20)
    again.close(wait=True)
    fields = _crr(local_airtable)
    assert fields["Profiles Examined for Scoring"] == 12
    assert fields["Profile Scoring Tokens"] == 120
    assert fields["Status"] == "Completed"


def test_reopening_an_ended_client_run_is_refused_and_changes_nothing(
    local_airtable: LocalAirtable,
) -> None:
    tracker, base = _job(local_airtable)
    with tracker.client(base, "Guy-Wilson") as run:
        run.add(profiles_examined=10)
    tracker.flush()
    before = _crr(local_airtable)
    restarted = Tracker(make_conn(local_airtable))
    with pytest.raises(TerminalRunError, match="Completed"):
        restarted.client(base, "Guy-Wilson")
    with pytest.raises(TerminalRunError):
        restarted.attach_job(base).client("Guy-Wilson")
    with pytest.raises(TerminalRunError) as caught:
        restarted.open_clients(base, ["Ana-Jones", "Guy-Wilson"])
    assert [r.client_id for r in caught.value.runs] == ["Ana-Jones"]  # type: ignore[attr-defined]
    restarted.flush()
    after = by_key(local_airtable, CRR_TABLE)[f"{base}-Guy-Wilson"]
    assert len(after) == 1
    assert after[0]["Status"] == "Completed"
    assert after[0]["Profiles Examined for Scoring"] == 10
    assert after[0].get("System Notes") == before.get("System Notes")


def test_reopening_an_ended_client_run_with_force_continues_and_says_so(
    local_airtable: LocalAirtable,
) -> None:
    tracker, base = _job(local_airtable)
    with tracker.client(base, "Guy-Wilson") as run:
        run.add(profiles_examined=10)
    tracker.flush()
    restarted = Tracker(make_conn(local_airtable))
    with restarted.client(base, "Guy-Wilson", force=True) as again:
        assert again.totals.profiles_examined == 10
        again.add(profiles_examined=2)
    restarted.flush()
    fields = _crr(local_airtable)
    assert fields["Profiles Examined for Scoring"] == 12
    assert fields["Status"] == "Completed"
    assert "reopened by" in fields["System Notes"] and "was 'Completed'" in fields["System Notes"]


def test_the_same_job_opening_a_client_twice_never_loses_the_first_totals(
    local_airtable: LocalAirtable,
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    with job.client("Guy-Wilson") as run:
        run.add(profiles_examined=10)
    with pytest.raises(TerminalRunError):
        job.client("Guy-Wilson")
    tracker.flush()
    assert _crr(local_airtable)["Profiles Examined for Scoring"] == 10
    assert _crr(local_airtable)["Status"] == "Completed"


# ------------------------------------------------------------------ other writers


def _append_note(api: pyairtable.Api, table: str, record_id: str, line: str) -> None:
    """What sync does: read the row's notes, append a line, write them back (over HTTP)."""
    t = api.table(TEST_BASE_ID, table)
    notes = t.get(record_id)["fields"].get("System Notes", "")
    t.update(record_id, {"System Notes": f"{notes}\n{line}" if notes else line})


def test_job_notes_never_erase_lines_another_process_appended(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    with tracker.job() as job:
        job.note("worker line 1")
        assert job.record_id is not None
        _append_note(api, JOB_TABLE, job.record_id, "sync: other writer's line")
        job.note("worker line 2")
    notes = rows(local_airtable, JOB_TABLE)[0]["fields"]["System Notes"]
    for line in ("started on", "worker line 1", "other writer's line", "worker line 2"):
        assert line in notes
    assert notes.index("worker line 1") < notes.index("other writer") < notes.index("line 2")


def test_client_run_notes_never_erase_lines_another_process_appended(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    run = job.client("Guy-Wilson")
    run.note("worker line 1")
    run.add(profiles_examined=1)
    run.flush()
    assert run.record_id is not None
    _append_note(api, CRR_TABLE, run.record_id, "sync: other writer's line")
    run.add(profiles_examined=1)
    run.flush()  # a metric flush does not touch the notes
    run.note("worker line 2")
    run.close(wait=True)
    notes = _crr(local_airtable)["System Notes"]
    assert "worker line 1" in notes and "other writer's line" in notes
    assert "worker line 2" in notes


def test_finishing_a_job_another_writer_failed_keeps_its_status_and_says_so(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    with job.client("Guy-Wilson") as run:
        run.add(profiles_examined=3)
    assert job.record_id is not None
    api.table(TEST_BASE_ID, JOB_TABLE).update(job.record_id, {"Status": "Failed"})
    _append_note(api, JOB_TABLE, job.record_id, "sync: stale for 3 h; marked Failed")
    row = job.complete()
    fields = rows(local_airtable, JOB_TABLE)[0]["fields"]
    assert fields["Status"] == "Failed" and row.status is Status.FAILED
    assert fields["Total Profiles Examined"] == 3  # the facts are recorded
    assert "marked Failed" in fields["System Notes"]
    assert "finished the job as 'Completed'" in fields["System Notes"]
    assert "status left 'Failed'" in fields["System Notes"]


def test_finishing_a_job_another_writer_failed_with_force_overrides_with_a_note(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    assert job.record_id is not None
    api.table(TEST_BASE_ID, JOB_TABLE).update(job.record_id, {"Status": "Failed"})
    job.complete(force=True)
    fields = rows(local_airtable, JOB_TABLE)[0]["fields"]
    assert fields["Status"] == "No Leads To Score"
    assert "forced from 'Failed', set by another writer" in fields["System Notes"]


def test_closing_a_client_run_another_writer_failed_keeps_its_status_and_says_so(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    # A run silent for half the stale threshold is read before its close (~0 here).
    tracker = Tracker(make_conn(local_airtable, stale_after_minutes=1e-6))
    run = tracker.job().client("Guy-Wilson")
    run.add(profiles_examined=3)
    run.flush()
    assert run.record_id is not None
    api.table(TEST_BASE_ID, CRR_TABLE).update(run.record_id, {"Status": "Failed"})
    _append_note(api, CRR_TABLE, run.record_id, "sync: stale; marked Failed")
    run.add(profiles_examined=1)
    run.close(wait=True)
    fields = _crr(local_airtable)
    assert fields["Status"] == "Failed"
    assert fields["Profiles Examined for Scoring"] == 4
    assert "marked Failed" in fields["System Notes"]
    assert "closed the run as 'Completed'" in fields["System Notes"]
    assert run.status is Status.FAILED


def test_writes_by_record_id_land_on_the_survivor_when_sync_merged_the_row_away(
    local_airtable: LocalAirtable,
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    run = job.client("Guy-Wilson")
    run.add(profiles_examined=2)
    run.flush()
    assert job.record_id is not None and run.record_id is not None
    store = local_airtable.store
    # sync merged duplicates: the rows this process wrote are gone, a survivor holds the key
    [job_survivor] = store.create_records(
        None, JOB_TABLE, [{"Run ID": str(job.run_id), "Status": "Running"}]
    )
    [run_survivor] = store.create_records(
        None,
        CRR_TABLE,
        [{"Run ID": str(run.run_id), "Client ID": "Guy-Wilson", "Status": "Running"}],
    )
    store.delete_records(None, JOB_TABLE, [job.record_id])
    store.delete_records(None, CRR_TABLE, [run.record_id])
    run.add(profiles_examined=1)
    run.close(wait=True)
    job.complete()
    [crr] = rows(local_airtable, CRR_TABLE)
    [jobs] = rows(local_airtable, JOB_TABLE)
    assert crr["id"] == run_survivor.id and jobs["id"] == job_survivor.id
    assert crr["fields"]["Status"] == "Completed"
    assert crr["fields"]["Profiles Examined for Scoring"] == 3
    assert jobs["fields"]["Status"] == "Completed"
    assert jobs["fields"]["Total Profiles Examined"] == 3
