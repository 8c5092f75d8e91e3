"""Attack: a worker killed between its client-run open (the probe, which writes no Status)
and its first write leaves a row with an empty Status.  ``sync`` must resolve it in one pass
once it is past the stale threshold (issue 10 item 5: one apply after a killed worker
converges); it used to flag it for attention on every pass, forever."""

from __future__ import annotations

from datetime import timedelta

from jobtrack_airtable.admin.sync import Action, plan_sync
from jobtrack_airtable.local import LocalAirtable

from .helpers import NOW, STALE, SyncBase, at


def test_an_unclaimed_client_row_of_a_killed_worker_is_resolved_in_one_pass(
    local_airtable: LocalAirtable,
) -> None:
    b = SyncBase(local_airtable)
    base = "251001-080000"
    b.add(
        "jobs",
        {
            "Run ID": base,
            "Status": "Completed",
            "Start Time": at(hours=4),
            "End Time": at(hours=3, minutes=50),
            "Last Updated": at(hours=3, minutes=50),
        },
        created=NOW - timedelta(hours=4),
    )
    b.add(
        "client_runs",
        {"Run ID": f"{base}-Killed", "Client ID": "Killed", "Last Updated": at(hours=4)},
        created=NOW - timedelta(hours=4),
    )
    plan = plan_sync(b.repo, now=NOW, stale_after=STALE)
    [record] = [r for r in plan.records if r.key == f"{base}-Killed"]
    assert record.action is Action.UPDATE
    assert any(c.field == "status" and c.new == "Failed" for c in record.changes)
    assert any("Status is empty" in r for r in record.reasons)


def test_a_fresh_unclaimed_row_is_left_to_its_worker(local_airtable: LocalAirtable) -> None:
    b = SyncBase(local_airtable)
    b.add(
        "client_runs",
        {"Run ID": "251001-115900-Fresh", "Client ID": "Fresh", "Last Updated": at(minutes=1)},
        created=NOW - timedelta(minutes=1),
    )
    plan = plan_sync(b.repo, now=NOW, stale_after=STALE)
    assert not [r for r in plan.records if r.key == "251001-115900-Fresh"]
