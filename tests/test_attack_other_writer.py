"""Attack: an orchestrator completes its job while a worker process is still on one of its
clients.  ``sync`` must not end that fresh client run (only silence past the threshold ends a
worker's run), so the worker's close lands as written and status and notes never contradict
each other (issue 10 item 3); the next sync brings the job's aggregates up to date."""

from __future__ import annotations

from datetime import timedelta

from jobtrack_airtable.admin.sync import apply_plan, plan_sync
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import CRR_TABLE, JOB_TABLE, make_conn, rows


def test_a_worker_still_on_a_client_of_a_completed_job_is_left_to_finish(
    local_airtable: LocalAirtable,
) -> None:
    orchestrator = Tracker(make_conn(local_airtable))
    job = orchestrator.job()
    worker = Tracker(make_conn(local_airtable))
    run = worker.client(str(job.run_id), "Guy-Wilson")
    run.add(profiles_examined=3)
    run.flush()
    job.complete()  # the orchestrator does not wait for its worker
    repo = Repository(make_conn(local_airtable))
    plan = plan_sync(repo, stale_after=timedelta(hours=2))
    assert not [r for r in plan.records if r.table == "client_runs"]
    apply_plan(repo, plan)
    [row] = rows(local_airtable, CRR_TABLE)
    assert row["fields"]["Status"] == "Running"

    run.add(profiles_examined=2)
    run.close(wait=True)
    [row] = rows(local_airtable, CRR_TABLE)
    assert row["fields"]["Status"] == "Completed"
    assert row["fields"]["Profiles Examined for Scoring"] == 5
    assert "marked Failed" not in row["fields"].get("System Notes", "")

    # The job was aggregated before this client closed: the next sync recomputes it.
    plan = plan_sync(repo, stale_after=timedelta(hours=2))
    apply_plan(repo, plan)
    [job_row] = rows(local_airtable, JOB_TABLE)
    assert job_row["fields"]["Total Profiles Examined"] == 5
    assert not plan_sync(repo, stale_after=timedelta(hours=2)).has_changes
