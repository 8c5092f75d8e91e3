"""Every command that reads the tracking tables gives the same answer from the refreshed
mirror as from a full read (issue 23): ``usage``'s record counts, ``archive`` plans, ``runs
list`` and ``runs show``, ``report`` (its data and its HTML page), ``check`` (problems, new
or seen, resolutions and the state it leaves) -- with no request beyond the refresh, counted
from the local server's log -- on the seeded base and again after edits, new rows, duplicate
rows and deletions made outside the library, read by an incremental refresh."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobtrack_airtable.admin import views
from jobtrack_airtable.admin.archive import plan_archive
from jobtrack_airtable.admin.mirror import Mirror
from jobtrack_airtable.admin.mirror.reads import MirroredRepository
from jobtrack_airtable.admin.ops.config import CheckConfig
from jobtrack_airtable.admin.ops.health import health_to_json, run_check
from jobtrack_airtable.admin.ops.quota import usage_report
from jobtrack_airtable.admin.ops.report_data import collect_report, report_to_json
from jobtrack_airtable.admin.ops.report_html import render_html
from jobtrack_airtable.admin.ops.state import CheckState
from jobtrack_airtable.errors import NotFoundError
from jobtrack_airtable.timeutil import to_airtable
from tests.helpers import CRR, JOBS, SyncBase, base_fixture  # noqa: F401

from .helpers import mirror_delete, mirror_seed, mirror_update

NOW = datetime(2025, 12, 1, tzinfo=UTC)
SEEDED = datetime(2025, 10, 1, 12, tzinfo=UTC)  # mirror_seed's rows were created then


def _outside_changes(base: SyncBase) -> None:
    """Edits, new rows, a duplicate row and deletions, straight into the server's store (as
    another integration or a person in the Airtable UI makes them): none through the
    library, each last modified now."""
    clients = sorted(base.rows(CRR))
    mirror_update(
        base, clients[:20], {"Status": "Failed", "Error Details": "TimeoutError: outside"}
    )
    mirror_delete(base, clients[20:30])
    jobs = {fields["Run ID"]: rid for rid, fields in base.rows(JOBS).items()}
    base.srv.store.delete_records(base.srv.base_id, base.table_name(JOBS), [jobs["250930-104000"]])
    base.srv.store.update_records(
        base.srv.base_id,
        base.table_name(JOBS),
        [(jobs["250930-101000"], {"Status": "Failed"})],
    )
    start = SEEDED + timedelta(hours=2)
    base.add(
        JOBS,
        {"Run ID": "251001-140000", "Status": "Running", "Start Time": to_airtable(start)},
        created=start,
    )
    base.add(
        CRR,
        {
            "Run ID": "251001-140000-Late",
            "Client ID": "Late",
            "Status": "Failed",
            "Start Time": to_airtable(start),
            "Error Details": "ValueError: outside",
        },
        created=start,
    )
    # A second row for a run that has one (a retried create): the oldest is the run's.
    base.add(JOBS, {"Run ID": "250930-100000", "Status": "Completed"}, created=start)


@pytest.fixture(params=["seeded", "changed outside"])
def mirrored(
    request: pytest.FixtureRequest, base: SyncBase, tmp_path: Path
) -> Iterator[MirroredRepository]:
    mirror_seed(base)
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
    if request.param == "changed outside":
        _outside_changes(base)
    mirror.refresh(base.repo)  # an incremental one: answers come from what it keeps
    assert mirror.last is not None and mirror.last.kind == "incremental"
    if request.param == "changed outside":
        assert mirror.last.deleted == 11
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
    assert full is not None
    assert full.by_table in (
        {"Job Tracking": 6, "Client Run Results": 250},
        {"Job Tracking": 7, "Client Run Results": 241},  # 2 added, 1 deleted; 1 added, 10
    )


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
    # A window by formula: the base is asked the formula, the mirror answers its meaning.
    for since in (datetime(2025, 9, 1, tzinfo=UTC), SEEDED, SEEDED + timedelta(hours=1)):
        base.log.clear()
        from_mirror = views.list_runs(mirrored, since=since)
        assert _reads(base) == 0
        assert from_mirror == views.list_runs(base.repo, since=since)
    assert [r.run_id for r in from_mirror] in (
        [],
        # The new job, and the second row of a run, made after the seeded rows.
        ["251001-140000", "250930-100000"],
    )


def _queries(base: SyncBase) -> list[str]:
    # A base run ID (duplicated after the outside changes), a client run ID, a legacy-looking
    # form, a job deleted outside (its client rows remain: orphans), one made outside, and
    # runs that exist nowhere.
    return [
        "250930-100000",
        "250930-102000-Client 7",
        " 250930-103000 ",
        "250930-104000",
        "251001-140000",
        "251001-140000-Late",
        "240101-000000",
        "not a run",
    ]


def _shown(repo: Any, run_id: str) -> object:
    try:
        return views.detail_to_json(views.show_run(repo, run_id))
    except NotFoundError as exc:
        return str(exc)


def test_runs_show(base: SyncBase, mirrored: MirroredRepository) -> None:
    answers = []
    for run_id in _queries(base):
        base.log.clear()
        from_mirror = _shown(mirrored, run_id)
        assert _reads(base) == 0
        assert from_mirror == _shown(base.repo, run_id), run_id
        answers.append(from_mirror)
    detail = answers[0]
    assert isinstance(detail, dict) and len(detail["clients"]) > 0
    assert isinstance(answers[-2], str) and "no run '240101-000000'" in answers[-2]


@pytest.mark.parametrize(
    "window",
    [
        (datetime(2025, 9, 1, tzinfo=UTC), NOW),
        (SEEDED, SEEDED),  # both edges on the rows' created time: both kept
        (SEEDED + timedelta(milliseconds=1), NOW),
    ],
)
def test_report_data_and_page(
    base: SyncBase, mirrored: MirroredRepository, window: tuple[datetime, datetime]
) -> None:
    since, until = window
    base.log.clear()
    now = SEEDED + timedelta(hours=6)
    from_mirror = collect_report(mirrored, since=since, until=until, now=now)
    assert _reads(base) == 0
    full = collect_report(base.repo, since=since, until=until, now=now)
    assert from_mirror == full
    assert report_to_json(from_mirror) == report_to_json(full)
    assert render_html(from_mirror) == render_html(full)


def test_check(
    request: pytest.FixtureRequest, base: SyncBase, mirrored: MirroredRepository
) -> None:
    """Two checks a day apart, with notifications' memory: the same problems, new then seen,
    the same resolutions and the same state left, from the mirror as from full reads."""
    config = CheckConfig()
    states = {"mirror": CheckState(base.srv.base_id), "full": CheckState(base.srv.base_id)}
    answers: dict[str, list[Any]] = {"mirror": [], "full": []}
    for now in (SEEDED + timedelta(hours=6), SEEDED + timedelta(days=1, hours=6)):
        for name, repo in (("mirror", mirrored), ("full", base.repo)):
            base.log.clear()
            report = run_check(repo, config, states[name], stuck_after=timedelta(hours=2), now=now)
            assert _reads(base) == (
                0 if name == "mirror" else 1 + 3
            )  # 1 page of jobs, 3 of clients
            answers[name].append(health_to_json(report))
            answers[name].append(copy.deepcopy(states[name].to_json()))
    assert answers["mirror"] == answers["full"]
    if request.node.callspec.params["mirrored"] == "changed outside":
        kinds = {(p["kind"], p["new"]) for p in answers["full"][0]["problems"]}
        assert {("stuck_run", True), ("failed_client", True)} <= kinds
        assert {p["new"] for p in answers["full"][2]["problems"]} == {False}
