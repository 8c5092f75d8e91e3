"""Attack: re-opening client runs that already have a row (a restarted worker)."""

from __future__ import annotations

import pytest

from jobtrack_airtable.errors import TerminalRunError
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import CRR_TABLE, make_conn, rows


def _completed_run(srv: LocalAirtable) -> tuple[str, dict]:
    tracker = Tracker(make_conn(srv))
    job = tracker.job()
    with job.client("Guy-Wilson", name="Guy Wilson") as run:
        run.add(profiles_examined=10)
    tracker.flush()
    [row] = rows(srv, CRR_TABLE)
    return str(job.run_id), dict(row["fields"])


def test_a_refused_reopen_leaves_the_ended_row_untouched(local_airtable: LocalAirtable) -> None:
    """README: "an ended row ... is left untouched and the open raises TerminalRunError";
    the open wrote the client ID over the stored Client Name."""
    base, before = _completed_run(local_airtable)
    restarted = Tracker(make_conn(local_airtable))
    with pytest.raises(TerminalRunError):
        restarted.client(base, "Guy-Wilson")  # no name: the worker does not know it
    [after] = rows(local_airtable, CRR_TABLE)
    # The probe refreshes Last Updated (it cannot know the row ended); nothing else moves,
    # the name the first worker gave included.
    after["fields"].pop("Last Updated")
    before.pop("Last Updated")
    assert after["fields"] == before


def test_a_continued_reopen_keeps_the_stored_client_name(local_airtable: LocalAirtable) -> None:
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    run = job.client("Guy-Wilson", name="Guy Wilson")
    run.add(profiles_examined=10)
    tracker.flush()
    restarted = Tracker(make_conn(local_airtable))
    again = restarted.client(str(job.run_id), "Guy-Wilson")
    assert again.totals.values()["profiles_examined"] == 10
    [row] = rows(local_airtable, CRR_TABLE)
    assert row["fields"]["Client Name"] == "Guy Wilson"
