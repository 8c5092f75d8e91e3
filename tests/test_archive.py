"""Retention as a planned change (jobtrack_airtable.admin.archive), through the local server.

Every row deleted from the base must be in the archive, byte for byte; a plan whose rows
changed is refused with nothing written; an interrupted apply is finished by running it again.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from jobtrack_airtable.admin.archive import (
    apply_archive,
    archived_records,
    archived_runs,
    load_archive_plan,
    parse_age,
    plan_archive,
    save_archive_plan,
)
from jobtrack_airtable.errors import (
    ArchivePlanFormatError,
    InvalidInputError,
    JobtrackError,
    StaleArchivePlanError,
)
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.transport.repository import Repository

from .helpers import (  # noqa: F401  (archive_base is the base fixture)
    ARCHIVE_NOW,
    CRR_TABLE,
    JOB_TABLE,
    archive_base,
    archive_conn,
    record_job,
    stored_by_id,
)


def test_plan_picks_old_finished_jobs_with_all_their_clients(base, tmp_path: Path) -> None:
    srv, keys, repo = base["srv"], base["keys"], base["repo"]
    srv.request_log.clear()
    plan = plan_archive(
        repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=tmp_path / "a.db"
    )
    # ⌈J/100⌉ + ⌈C/100⌉: one page of each table, nothing written.
    assert srv.request_log.count() == 2
    assert [j.job.key for j in plan.jobs] == [keys["old_a"], keys["old_b"]]
    assert [len(j.clients) for j in plan.jobs] == [3, 12]
    assert plan.row_count == 2 + 15
    assert [s.key for s in plan.skipped] == [keys["old_running"]]
    assert "Running" in plan.skipped[0].reason
    assert plan.cutoff == "2026-09-02T12:00:00.000Z"  # 90 days before ARCHIVE_NOW


def test_apply_archives_then_deletes_exactly_the_planned_rows(base, tmp_path: Path) -> None:
    srv, keys, repo = base["srv"], base["keys"], base["repo"]
    before_jobs, before_crr = stored_by_id(srv, JOB_TABLE), stored_by_id(srv, CRR_TABLE)
    plan = plan_archive(
        repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=tmp_path / "a.db"
    )
    srv.request_log.clear()
    result = apply_archive(repo, plan)

    # Re-read ⌈K/100⌉ per table (2 + 15 rows → 1 + 1), deletes ⌈K/10⌉ (15 → 2, 2 → 1).
    assert srv.request_log.count(method="GET") == 2
    assert srv.request_log.count(method="DELETE") == 3
    assert result.deleted_count == 17
    planned_ids = {j.job.record_id for j in plan.jobs} | {
        c.record_id for j in plan.jobs for c in j.clients
    }
    left = set(stored_by_id(srv, JOB_TABLE)) | set(stored_by_id(srv, CRR_TABLE))
    assert not planned_ids & left
    assert {keys["old_running"], keys["recent"]} <= {
        f["fields"]["Run ID"] for f in stored_by_id(srv, JOB_TABLE).values()
    }
    # Every deleted row is in the archive as it was in the base: every stored value (the
    # archive also holds the computed fields, as the API returned them).
    for table, before in (("jobs", before_jobs), ("client_runs", before_crr)):
        for record in archived_records(tmp_path / "a.db", table):
            stored = before[record["id"]]["fields"]
            assert {k: record["fields"].get(k) for k in stored} == stored
            assert "Duration" in record["fields"]
    assert len(archived_records(tmp_path / "a.db", "client_runs")) == 15


def test_applying_twice_is_harmless_and_says_already_archived(base, tmp_path: Path) -> None:
    srv, repo = base["srv"], base["repo"]
    plan = plan_archive(
        repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=tmp_path / "a.db"
    )
    apply_archive(repo, plan)
    srv.request_log.clear()
    again = apply_archive(repo, plan)
    assert again.deleted_count == 0
    assert len(again.already_archived) == 17
    assert srv.request_log.count(method="DELETE") == 0


def test_a_changed_row_refuses_the_whole_plan(base, tmp_path: Path) -> None:
    srv, keys, repo = base["srv"], base["keys"], base["repo"]
    plan = plan_archive(
        repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=tmp_path / "a.db"
    )
    repo.upsert("client_runs", [{"run_id": f"{keys['old_b']}-Client-4", "system_notes": "late"}])
    before = len(stored_by_id(srv, CRR_TABLE))
    srv.request_log.clear()
    with pytest.raises(StaleArchivePlanError, match=f"{keys['old_b']}-Client-4"):
        apply_archive(repo, plan)
    assert srv.request_log.count(method="DELETE") == 0
    assert len(stored_by_id(srv, CRR_TABLE)) == before
    assert archived_records(tmp_path / "a.db", "jobs") == []


def test_a_row_gone_but_not_archived_refuses(base, tmp_path: Path) -> None:
    repo = base["repo"]
    plan = plan_archive(
        repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=tmp_path / "a.db"
    )
    repo.delete("client_runs", [plan.jobs[0].clients[0].record_id])
    with pytest.raises(StaleArchivePlanError, match="gone and not in the archive"):
        apply_archive(repo, plan)


def test_an_interrupted_apply_is_finished_by_running_it_again(base, tmp_path: Path) -> None:
    srv, repo = base["srv"], base["repo"]
    plan = plan_archive(
        repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=tmp_path / "a.db"
    )
    # The job rows' delete (the last writes) fails beyond the retry policy: the client rows
    # are gone from the base (and in the archive), the job rows still there.
    srv.faults.add("500", method="DELETE", path=JOB_TABLE.replace(" ", "%20"), times=50)
    with pytest.raises(JobtrackError):
        apply_archive(repo, plan)
    assert len(stored_by_id(srv, CRR_TABLE)) == 4
    srv.faults.clear()
    result = apply_archive(repo, plan)
    assert len(result.already_archived) == 15
    assert sorted(result.deleted["jobs"]) == sorted(j.job.record_id for j in plan.jobs)
    assert len(stored_by_id(srv, JOB_TABLE)) == 2


def test_json_lines_archive_and_reading_runs_back(base, tmp_path: Path) -> None:
    repo, keys = base["repo"], base["keys"]
    path = tmp_path / "archive.jsonl"
    plan = plan_archive(repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=path)
    assert plan.archive_format == "jsonl"
    apply_archive(repo, plan)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"meta": "base", "base_id": repo.conn.base_id}
    assert len(lines) == 1 + 17
    jobs, clients = archived_runs(path, repo.schema)
    assert [j.run_id for j in jobs] == [keys["old_b"], keys["old_a"]]
    assert all(j.status is Status.COMPLETED for j in jobs)
    assert sum(c.metrics.profiles_examined or 0 for c in clients) == (1 + 2 + 3) + sum(range(1, 13))


def test_plan_file_round_trip_and_refusals(base, tmp_path: Path) -> None:
    repo = base["repo"]
    plan = plan_archive(
        repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=tmp_path / "a.db"
    )
    path = save_archive_plan(plan, tmp_path / "plan.json")
    assert load_archive_plan(path) == plan
    assert "test-token" not in path.read_text()
    data = json.loads(path.read_text())
    data["format_version"] = 99
    (tmp_path / "v99.json").write_text(json.dumps(data))
    with pytest.raises(ArchivePlanFormatError, match="format_version 99"):
        load_archive_plan(tmp_path / "v99.json")
    (tmp_path / "sync.json").write_text(json.dumps({"format_version": 1, "records": []}))
    with pytest.raises(ArchivePlanFormatError, match="not an archive plan"):
        load_archive_plan(tmp_path / "sync.json")


def test_an_archive_of_another_base_is_refused(base, tmp_path: Path) -> None:
    repo = base["repo"]
    path = tmp_path / "a.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('base_id', 'appOTHEROTHEROTHE')")
    plan = plan_archive(repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=path)
    with pytest.raises(InvalidInputError, match="appOTHEROTHEROTHE"):
        apply_archive(repo, plan)


@pytest.mark.parametrize("bad", ["", "90", "d", "-5d", "0d", "90y", None])
def test_bad_ages_are_refused_naming_the_value(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="invalid age"):
        parse_age(bad)  # type: ignore[arg-type]


def test_ages() -> None:
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("2w") == timedelta(days=14)
    assert parse_age("36h") == timedelta(hours=36)
    # One grammar with check's durations (issue 25): minutes and fractions too.
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age("1.5d") == timedelta(hours=36)


def test_bad_plan_options_before_any_request(local_airtable: LocalAirtable, tmp_path) -> None:
    repo = Repository(archive_conn(local_airtable))
    with pytest.raises(InvalidInputError, match="positive duration"):
        plan_archive(repo, older_than=timedelta(0))
    with pytest.raises(InvalidInputError, match="does not exist"):
        plan_archive(repo, older_than=timedelta(days=1), archive_path=tmp_path / "no" / "a.db")
    assert local_airtable.request_log.count() == 0


def test_nothing_is_deleted_unless_the_archive_reads_back_identical(
    base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy damaged on its way into the archive (a bad disk, a bug) is caught by the read
    back: that row, and every row after it, stays in the base."""
    from jobtrack_airtable.admin import archive

    srv, repo = base["srv"], base["repo"]
    real_add = archive.ArchiveStore.add

    def damaging_add(self, table, records):
        records = [dict(r) for r in records]
        if table == "client_runs":
            records[0] = {**records[0], "fields": {**records[0]["fields"], "Client ID": "x"}}
        return real_add(self, table, records)

    monkeypatch.setattr(archive.ArchiveStore, "add", damaging_add)
    plan = plan_archive(
        repo, older_than=timedelta(days=90), now=ARCHIVE_NOW, archive_path=tmp_path / "a.db"
    )
    before = len(stored_by_id(srv, CRR_TABLE)) + len(stored_by_id(srv, JOB_TABLE))
    srv.request_log.clear()
    with pytest.raises(JobtrackError, match="exact copy of 1 row"):
        apply_archive(repo, plan)
    assert srv.request_log.count(method="DELETE") == 0
    assert len(stored_by_id(srv, CRR_TABLE)) + len(stored_by_id(srv, JOB_TABLE)) == before
