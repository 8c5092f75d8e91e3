"""Attack: a row whose System Notes are (nearly) full.  Workers may fill notes up to
Airtable's 100,000 characters; sync's line then made the text too long, the apply was
refused wholesale before its first request, and no stale run anywhere was ever fixed."""

from __future__ import annotations

from datetime import timedelta

from jobtrack_airtable.admin.sync import apply_plan, plan_sync
from jobtrack_airtable.admin.sync.passes.diff import CUT_MARKER
from jobtrack_airtable.airtable import MAX_LONG_TEXT
from jobtrack_airtable.local import LocalAirtable

from .helpers import NOW, STALE, SyncBase, at


def _running(b: SyncBase, key: str, notes: str | None) -> None:
    fields = {"Run ID": key, "Status": "Running", "Start Time": at(hours=4)}
    fields["Last Updated"] = at(hours=4)
    if notes is not None:
        fields["System Notes"] = notes
    b.add("jobs", fields, created=NOW - timedelta(hours=4))


def test_one_row_with_full_notes_does_not_block_sync(local_airtable: LocalAirtable) -> None:
    b = SyncBase(local_airtable)
    full = "\n".join(f"[2025-10-01 07:00:00Z] line {i:06d} " + "x" * 70 for i in range(1_200))
    full = full[: MAX_LONG_TEXT - 10]
    _running(b, "251001-080000", full)
    _running(b, "251001-090000", None)
    plan = plan_sync(b.repo, now=NOW, stale_after=STALE)
    apply_plan(b.repo, plan)
    _, records = local_airtable.store.snapshot(None, "Job Tracking")
    stored = {r.fields["Run ID"]: r.fields for r in records}
    assert {k: f["Status"] for k, f in stored.items()} == {
        "251001-080000": "Failed",
        "251001-090000": "Failed",
    }
    notes = stored["251001-080000"]["System Notes"]
    assert len(notes) <= MAX_LONG_TEXT
    assert notes.startswith(CUT_MARKER + "\n[2025-10-01 07:00:00Z] line ")  # whole lines
    assert notes.splitlines()[-1].endswith("marked Failed")  # sync's line is kept
    assert full.splitlines()[-1] in notes  # the newest old lines are kept
    assert len(notes) > MAX_LONG_TEXT - 2_000
