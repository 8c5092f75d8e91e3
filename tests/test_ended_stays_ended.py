"""What ``sync`` ended stays ended (issue 19, item 5): an admin's ``sync --stale-after`` far
shorter than the workers' ``JOBTRACK_STALE_AFTER_MINUTES`` marks a quiet run ``Failed``; the
worker, resumed, closes it and must not turn it back to ``Completed``.  The row keeps
``Failed`` and its notes say what the worker found.  Real processes: the CLI's ``sync`` runs as
a subprocess against the local server the worker writes to."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import CRR_TABLE, JOB_TABLE, make_conn, rows


def _sync(srv: LocalAirtable, tmp_path: Path, stale_after_minutes: float) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
        "AIRTABLE_API_KEY": srv.token,
        "AIRTABLE_BASE_ID": srv.base_id,
        "JOBTRACK_ENDPOINT_URL": srv.url,
        "JOBTRACK_RATE_LIMIT": "0",
    }
    result = subprocess.run(
        [
            *(sys.executable, "-m", "jobtrack_airtable.cli", "sync"),
            *("--stale-after", str(stale_after_minutes), "--apply", "--yes"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 2), result.stdout + result.stderr
    return result.stdout


def _status(srv: LocalAirtable, table: str) -> str | None:
    [row] = rows(srv, table)
    return row["fields"].get("Status")


def test_a_resumed_worker_never_turns_what_sync_failed_back_to_completed(
    local_airtable: LocalAirtable, tmp_path: Path
) -> None:
    # The workers think a run is stale after 2 hours (the default); the admin's sync, after
    # 12 seconds of silence (a busy run is written every flush interval; one silent for
    # 10 s is read before its close, whatever the thresholds).
    conn = make_conn(local_airtable, stale_after_minutes=120.0, flush_interval=0.2)
    tracker = Tracker(conn)
    job = tracker.job()
    run = job.client("Guy-Wilson")
    run.add(profiles_examined=10, profile_tokens=900)
    run.flush()
    # The worker goes quiet (a long AI call, a paused container); sync runs meanwhile, as
    # often as an impatient admin would, until it finds the run stale.
    deadline = time.monotonic() + 60
    while _status(local_airtable, CRR_TABLE) == "Running":
        assert time.monotonic() < deadline, "sync never marked the quiet run stale"
        _sync(local_airtable, tmp_path, stale_after_minutes=0.2)
    assert _status(local_airtable, CRR_TABLE) == "Failed"
    # The worker resumes: more work, then its close.
    run.add(profiles_examined=20)
    run.close()
    tracker.flush()
    [row] = rows(local_airtable, CRR_TABLE)
    fields = row["fields"]
    assert fields["Status"] == "Failed"
    assert fields["Profiles Examined for Scoring"] == 30  # the facts are recorded
    notes = fields["System Notes"]
    assert "marked Failed" in notes  # sync's line
    assert (
        "closed the run as 'Completed' (totals: profiles_examined=30, profile_tokens=900), "
        "but another writer had already marked it 'Failed'; status left 'Failed'"
    ) in notes
    assert run.status is Status.FAILED
    # The job: what sync ended stays ended there too, and its totals are the client's.
    job.complete()
    [job_row] = rows(local_airtable, JOB_TABLE)
    assert job_row["fields"]["Status"] == "Failed"
    assert job_row["fields"]["Total Profiles Examined"] == 30
    tracker.close()
