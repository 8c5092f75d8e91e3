"""System Notes at Airtable's 100,000-character cap (issue 19, item 3): another writer leaves a
row's notes within 25 characters of the cap, and the worker's writes of that row (totals,
notes, close, failure) still land, the oldest lines cut behind a marker, every character
counted.  Real path: pyairtable → HTTP → the local server."""

from __future__ import annotations

import pyairtable
import pytest

from jobtrack_airtable.airtable import MAX_LONG_TEXT
from jobtrack_airtable.errors import InvalidInputError
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.worker.client_run import ClientRun
from jobtrack_airtable.worker.runs import CUT_MARKER
from jobtrack_airtable.worker.tracker import Tracker

from .conftest import TEST_BASE_ID
from .helpers import CRR_TABLE, JOB_TABLE, make_conn, rows


def _fill(api: pyairtable.Api, table: str, record_id: str, left: int = 20) -> None:
    """Another writer's System Notes: whole lines, ``left`` characters short of the cap."""
    line = "other writer's line " * 4
    text = "\n".join([line] * (MAX_LONG_TEXT // (len(line) + 1) + 1))[: MAX_LONG_TEXT - left]
    api.table(TEST_BASE_ID, table).update(record_id, {"System Notes": text})


def _notes(srv: LocalAirtable, table: str, record_id: str) -> str:
    [row] = [r for r in rows(srv, table) if r["id"] == record_id]
    notes = row["fields"]["System Notes"]
    assert len(notes) <= MAX_LONG_TEXT
    return notes


def _written_run(srv: LocalAirtable, examined: int) -> tuple[Tracker, ClientRun, str]:
    """A tracker and a client run whose first ``examined`` profiles are written."""
    tracker = Tracker(make_conn(srv))
    run = tracker.job().client("Guy-Wilson")
    run.add(profiles_examined=examined)
    run.flush()
    assert run.record_id is not None
    return tracker, run, run.record_id


def test_a_client_run_whose_notes_another_writer_filled_still_closes_with_its_totals(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    tracker, run, record_id = _written_run(local_airtable, 10)
    run.note("chunk 1 scored")  # accepted while the notes were short
    _fill(api, CRR_TABLE, record_id)
    run.add(profiles_examined=20)
    run.close()
    tracker.flush()
    [row] = rows(local_airtable, CRR_TABLE)
    assert row["fields"]["Status"] == "Completed"
    assert row["fields"]["Profiles Examined for Scoring"] == 30
    notes = _notes(local_airtable, CRR_TABLE, record_id)
    assert notes.startswith(CUT_MARKER + "\nother writer's line")  # whole lines cut
    assert notes.endswith("] chunk 1 scored")
    assert len(notes) > MAX_LONG_TEXT - 200  # only what had to go went


def test_a_client_run_whose_notes_are_full_still_fails(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    tracker, run, record_id = _written_run(local_airtable, 4)
    _fill(api, CRR_TABLE, record_id, left=25)
    with pytest.raises(RuntimeError), run:
        run.note("scoring chunk 2")
        raise RuntimeError("scorer crashed")
    tracker.flush()
    [row] = rows(local_airtable, CRR_TABLE)
    assert row["fields"]["Status"] == "Failed"
    assert "scorer crashed" in row["fields"]["Error Details"]
    assert _notes(local_airtable, CRR_TABLE, record_id).endswith("] scoring chunk 2")


@pytest.mark.parametrize("ending", ["complete", "fail"])
def test_a_job_whose_notes_another_writer_filled_can_still_end(
    local_airtable: LocalAirtable, api: pyairtable.Api, ending: str
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    with job.client("Guy-Wilson") as run:
        run.add(profiles_examined=3)
    assert job.record_id is not None
    _fill(api, JOB_TABLE, job.record_id, left=25)
    if ending == "complete":
        job.complete(note="all clients scored")
        expected, last = "Completed", "] all clients scored"
    else:
        job.fail(RuntimeError("the scorer ran out of credit"))
        expected, last = "Failed", "] failed: RuntimeError: the scorer ran out of credit"
    [row] = rows(local_airtable, JOB_TABLE)
    assert row["fields"]["Status"] == expected and job.status is Status(expected)
    assert row["fields"]["Total Profiles Examined"] == 3
    notes = _notes(local_airtable, JOB_TABLE, job.record_id)
    assert notes.startswith(CUT_MARKER + "\n") and notes.endswith(last)


def test_a_job_note_fits_after_older_lines_are_cut_and_a_line_that_never_fits_is_refused(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    assert job.record_id is not None
    _fill(api, JOB_TABLE, job.record_id, left=5)
    job.note("x" * 500)
    assert _notes(local_airtable, JOB_TABLE, job.record_id).endswith("] " + "x" * 500)
    before = local_airtable.request_log.count()
    with pytest.raises(InvalidInputError, match="time stamp"):
        job.note("y" * (MAX_LONG_TEXT - 50))
    assert local_airtable.request_log.count() == before  # refused before any request
