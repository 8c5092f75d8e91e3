"""Attack: ``archive`` apply under lost responses, and a rerun of the applied plan."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from jobtrack_airtable.admin.archive import apply_archive, archived_records, plan_archive

from .helpers import (
    ARCHIVE_NOW,
    CRR_TABLE,
    JOB_TABLE,
    archive_base,  # noqa: F401  (the base fixture: two old jobs of 3 and 12 clients)
    stored_by_id,
)


def test_lost_responses_never_delete_a_row_the_archive_lacks(base: dict, tmp_path: Path) -> None:
    srv, repo = base["srv"], base["repo"]
    path = tmp_path / "archive.sqlite"
    before = {t: stored_by_id(srv, t) for t in (JOB_TABLE, CRR_TABLE)}
    plan = plan_archive(repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=path)
    srv.faults.add("lost_response", probability=0.4)
    try:
        apply_archive(repo, plan)
        first_error = None
    except Exception as exc:  # the retry policy may give up: then the rerun finishes it
        first_error = exc
    srv.faults.clear()
    result = apply_archive(repo, plan)  # a rerun is harmless and finishes the move
    after = {t: stored_by_id(srv, t) for t in (JOB_TABLE, CRR_TABLE)}
    gone = {rid for t in (JOB_TABLE, CRR_TABLE) for rid in set(before[t]) - set(after[t])}
    archived = {r["id"]: r for t in ("jobs", "client_runs") for r in archived_records(path, t)}
    assert len(gone) == plan.row_count == 17, first_error
    for table in (JOB_TABLE, CRR_TABLE):
        for rid in set(before[table]) - set(after[table]):
            stored = before[table][rid]["fields"]  # stored values (the archive adds formulas)
            assert {k: archived[rid]["fields"].get(k) for k in stored} == stored
    assert result.deleted_count + len(result.already_archived) == 17
    assert srv.faults.counts.get("lost_response", 0) > 0 or first_error is None
