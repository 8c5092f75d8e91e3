"""``usage``: requests counted exactly (against the local server's request log) and records
projected against the plan's limits (jobtrack_airtable.admin.ops.quota)."""

from __future__ import annotations

import calendar
from datetime import timedelta
from pathlib import Path

import pytest

from jobtrack_airtable.admin.ops.quota import PLANS, usage_report, usage_to_json
from jobtrack_airtable.errors import InvalidInputError
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.timeutil import utcnow
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.worker.tracker import Tracker


@pytest.fixture
def srv(make_local_airtable) -> TrackingServer:
    return make_local_airtable()


def _settings(srv: TrackingServer, tmp_path: Path):
    # A real limiter (fast enough for a test), its counters in a store of this test's own.
    return srv.settings(rate_limit=50, limiter_url=f"sqlite:///{tmp_path}/limiter.sqlite")


def _second_day_of_this_month():
    # The counters are kept per UTC month of the request: a "now" in the same month, one day
    # into it, makes the projection exactly count × days-in-month.
    now = utcnow()
    return now.replace(day=2, hour=0, minute=0, second=0, microsecond=0)


def test_requests_are_counted_exactly_and_projected(srv, tmp_path: Path) -> None:
    settings = _settings(srv, tmp_path)
    with Tracker.from_settings(settings, flush_interval=3600.0) as tracker, tracker.job() as job:
        for cid in ("Guy-Wilson", "Ana-Lopez", "O'Brien"):
            with job.client(cid) as run:
                run.add(profiles_examined=3)
    sent = srv.request_log.count()
    assert sent >= 3

    now = _second_day_of_this_month()
    with Connection.from_settings(settings) as conn:
        report = usage_report(Repository(conn), settings, plan="free", now=now)
    days = calendar.monthrange(now.year, now.month)[1]
    assert report.requests.counted == sent
    assert report.requests.projected == sent * days
    assert report.requests.limit == 1_000
    assert report.requests.counts["worker_writes"] + report.requests.counts["worker_reads"] == sent

    # The report's own reads (one page per table) are counted too, as admin reads.
    with Connection.from_settings(settings) as conn:
        again = usage_report(Repository(conn), settings, plan="free", now=now)
    assert again.requests.counted == sent + 2
    assert again.requests.counts["admin_reads"] == 2
    assert srv.request_log.count() == sent + 4


def test_records_against_the_cap_and_days_until_full(srv, tmp_path: Path) -> None:
    settings = _settings(srv, tmp_path)
    old = utcnow() - timedelta(days=60)
    srv.store.create_records(
        srv.base_id,
        "Job Tracking",
        [{"Run ID": f"2509{i:02d}-000000"} for i in range(1, 29)],
        created_time=old,
        limit=None,
    )
    srv.store.create_records(
        srv.base_id,
        "Client Run Results",
        [{"Run ID": f"261101-000000-C{i}"} for i in range(60)],
        limit=None,
    )
    with Connection.from_settings(settings) as conn:
        report = usage_report(Repository(conn), settings, plan="free")
    records = report.records
    assert records.total == 88
    assert records.by_table == {"Job Tracking": 28, "Client Run Results": 60}
    assert records.per_day == pytest.approx(60 / 30)  # only the recent rows are growth
    assert records.days_until_full == pytest.approx((1_000 - 88) / 2)
    assert not report.over_limit
    doc = usage_to_json(report)
    assert doc["records"]["limit"] == 1_000 and doc["plan"] == "Free"


def test_a_projection_past_the_cap_is_over_the_limit(srv, tmp_path: Path) -> None:
    settings = _settings(srv, tmp_path)
    srv.store.create_records(
        srv.base_id,
        "Client Run Results",
        [{"Run ID": f"261101-000000-C{i}"} for i in range(990)],
        limit=None,
    )
    with Connection.from_settings(settings) as conn:
        free = usage_report(Repository(conn), settings, plan="free")
        team = usage_report(Repository(conn), settings, plan="team")
    assert free.records.over_limit and free.over_limit
    assert not team.over_limit
    assert team.requests.limit == PLANS["team"].monthly_requests == 100_000
    assert PLANS["business"].monthly_requests is None


def test_the_limiter_off_means_not_counted_with_the_reason(srv, tmp_path: Path) -> None:
    settings = srv.settings(rate_limit=0)
    with Connection.from_settings(settings) as conn:
        report = usage_report(Repository(conn), settings)
    assert report.requests.counted is None
    assert "JOBTRACK_RATE_LIMIT=0" in (report.requests.note or "")
    assert not report.requests.over_limit


# -- the workspace's quota (issue 25) ----------------------------------------------------------


def _one_job(settings) -> None:
    with (
        Tracker.from_settings(settings, flush_interval=3600.0) as tracker,
        tracker.job() as job,
        job.client("Guy-Wilson") as run,
    ):
        run.add(profiles_examined=3)


def _after_one_job(srv, tmp_path: Path, plan: str, **workspace):
    """The usage report a day into the month, after one job: (report, requests sent, days
    in the month)."""
    settings = _settings(srv, tmp_path)
    _one_job(settings)
    sent = srv.request_log.count()
    now = _second_day_of_this_month()
    with Connection.from_settings(settings) as conn:
        report = usage_report(Repository(conn), settings, plan=plan, now=now, **workspace)
    return report, sent, calendar.monthrange(now.year, now.month)[1]


def test_the_workspace_from_this_tools_share(srv, tmp_path: Path) -> None:
    report, sent, days = _after_one_job(srv, tmp_path, "free", tool_share=0.25)
    workspace = report.workspace
    assert workspace is not None and workspace.basis == "share"
    # This tool makes a quarter of the workspace's calls: the workspace made four times as many.
    assert (workspace.counted, workspace.projected) == (sent * 4, sent * days * 4)
    assert workspace.limit == 1_000 and workspace.tool_share == 0.25
    assert workspace.over_limit == (sent * days * 4 > 1_000)
    assert report.over_limit == (report.requests.over_limit or workspace.over_limit)
    doc = usage_to_json(report)["workspace"]
    assert doc["basis"] == "share" and doc["projected"] == sent * days * 4


def test_the_workspace_from_an_observed_total(srv, tmp_path: Path) -> None:
    report, sent, days = _after_one_job(srv, tmp_path, "team", workspace_calls=900)
    workspace = report.workspace
    assert workspace is not None and workspace.basis == "observed"
    assert (workspace.counted, workspace.projected) == (900, 900 * days)
    assert workspace.tool_share == pytest.approx(sent / 900)
    assert workspace.over_limit == (900 * days > 100_000)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"tool_share": 0.0}, "0.0"),
        ({"tool_share": 1.5}, "1.5"),
        ({"workspace_calls": -1}, "-1"),
        ({"tool_share": 0.5, "workspace_calls": 10}, "not both"),
    ],
)
def test_bad_workspace_figures_are_refused_before_any_request(
    srv, tmp_path: Path, kw, needle
) -> None:
    settings = _settings(srv, tmp_path)
    with Connection.from_settings(settings) as conn, pytest.raises(InvalidInputError, match=needle):
        usage_report(Repository(conn), settings, **kw)
    assert srv.request_log.count() == 0
