"""Every command that reads whole tables gives the same answer from the refreshed mirror as
from a full read (issue 23): ``usage``'s record counts, ``archive`` plans, ``runs list`` --
with fewer requests, counted from the local server's log -- and ``archive --apply`` still
re-reads the base, never the mirror."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobtrack_airtable.admin import views
from jobtrack_airtable.admin.archive import plan_archive
from jobtrack_airtable.admin.mirror import Mirror
from jobtrack_airtable.admin.mirror.reads import MirroredRepository
from jobtrack_airtable.admin.ops.quota import usage_report
from jobtrack_airtable.timeutil import to_airtable
from tests.helpers import CRR, JOBS, SyncBase, base_fixture  # noqa: F401
from tests.test_mirror import _seed

NOW = datetime(2025, 12, 1, tzinfo=UTC)


@pytest.fixture
def mirrored(base: SyncBase, tmp_path: Path) -> Iterator[MirroredRepository]:
    _seed(base)
    # Finished long ago: archive material.
    base.add(
        JOBS,
        {
            "Run ID": "250101-100000",
            "Status": "Completed",
            "End Time": to_airtable(datetime(2025, 1, 1, 11, tzinfo=UTC)),
        },
    )
    mirror = Mirror(tmp_path / "m.sqlite", base.srv.base_id)
    mirror.refresh(base.repo)
    mirror.refresh(base.repo)  # an incremental one: answers come from what it keeps
    yield MirroredRepository(base.conn, mirror)
    mirror.close()


def _reads(base: SyncBase) -> int:
    return base.log.count(method="GET")


def test_usage_record_counts(base: SyncBase, mirrored: MirroredRepository) -> None:
    settings = base.conn.settings
    base.log.clear()
    from_mirror = usage_report(mirrored, settings, now=NOW, uncounted="test").records
    assert _reads(base) == 0
    full = usage_report(base.repo, settings, now=NOW, uncounted="test").records
    assert _reads(base) == 1 + 3  # one page of jobs, three of client rows
    assert from_mirror == full
    assert from_mirror.by_table == {"Job Tracking": 6, "Client Run Results": 250}


def test_archive_plans(base: SyncBase, mirrored: MirroredRepository, tmp_path: Path) -> None:
    archive = tmp_path / "archive.sqlite"
    age = timedelta(days=30)
    base.log.clear()
    from_mirror = plan_archive(mirrored, older_than=age, archive_path=archive, now=NOW)
    assert _reads(base) == 0
    full = plan_archive(base.repo, older_than=age, archive_path=archive, now=NOW)
    assert from_mirror == full
    assert [j.job.key for j in full.jobs] == ["250101-100000"]


def test_runs_list(base: SyncBase, mirrored: MirroredRepository) -> None:
    base.log.clear()
    for status in (None, "completed", "running"):
        assert views.list_runs(mirrored, status=status, limit=None) == views.list_runs(
            base.repo, status=status, limit=None
        )
    assert _reads(base) == 3  # the full reads only
    # A filter by formula is the base's to answer: the mirror never guesses one.
    since = datetime(2025, 9, 1, tzinfo=UTC)
    base.log.clear()
    assert views.list_runs(mirrored, since=since) == views.list_runs(base.repo, since=since)
    assert _reads(base) == 2
