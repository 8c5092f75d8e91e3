"""Attack: the archive after a crash mid-append, and malformed archive targets."""

from __future__ import annotations

import json
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


def test_a_jsonl_archive_cut_short_by_a_crash_takes_the_next_apply(
    base: dict, tmp_path: Path
) -> None:
    """A SIGKILL in the middle of appending leaves a partial last line.  The reader skips
    it, but the next append wrote after it without a newline: the partial line and the
    first new record became one corrupt line, and every later apply failed."""
    srv, keys, repo = base["srv"], base["keys"], base["repo"]
    path = tmp_path / "archive.jsonl"
    # A first apply killed mid-append: the file ends in half a record, nothing was deleted.
    meta = json.dumps({"meta": "base", "base_id": srv.base_id})
    path.write_text(f'{meta}\n{{"table": "client_runs", "record": {{"id": "rec', encoding="utf-8")
    before = {t: stored_by_id(srv, t) for t in (JOB_TABLE, CRR_TABLE)}
    plan = plan_archive(repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=path)
    result = apply_archive(repo, plan)
    assert result.deleted_count == plan.row_count == 17
    archived = {r["id"] for t in ("jobs", "client_runs") for r in archived_records(path, t)}
    gone = {rid for t in (JOB_TABLE, CRR_TABLE) for rid in before[t]} - {
        rid for t in (JOB_TABLE, CRR_TABLE) for rid in stored_by_id(srv, t)
    }
    assert gone and gone <= archived
    assert keys


def test_a_jsonl_archive_whose_first_line_was_cut_gets_its_base_line(
    base: dict, tmp_path: Path
) -> None:
    srv, repo = base["srv"], base["repo"]
    path = tmp_path / "archive.jsonl"
    path.write_text('{"meta": "base", "ba', encoding="utf-8")  # killed at the first write
    plan = plan_archive(repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=path)
    assert apply_archive(repo, plan).deleted_count == 17
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert json.loads(first) == {"meta": "base", "base_id": srv.base_id}
    assert len(archived_records(path, "client_runs")) == 15
