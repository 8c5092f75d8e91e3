"""The monthly API quota (issue 19, item 6): the local server answers a spent quota exactly as
Airtable does, the library calls it :class:`QuotaExhaustedError` (never a rate limit: no retry,
no 30-second hold), workers keep their writes pending until the reset, and ``usage`` and
``check`` say so.  All through pyairtable → HTTP → the local server."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pyairtable
import pytest
import requests

from jobtrack_airtable.admin.ops.config import CheckConfig
from jobtrack_airtable.admin.ops.health import ProblemKind, run_check
from jobtrack_airtable.admin.ops.quota import usage_report, usage_to_json
from jobtrack_airtable.admin.ops.state import CheckState
from jobtrack_airtable.errors import QuotaExhaustedError, RateLimitedError
from jobtrack_airtable.limiter import NullLimiter, Slot
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.worker.tracker import Tracker

from .conftest import TEST_BASE_ID, MakeLocalAirtable

CRR = "Client Run Results"
DEFAULT_STALE = timedelta(hours=2)
QUOTA_BODY = {
    "error": {
        "type": "PUBLIC_API_BILLING_LIMIT_EXCEEDED",
        "message": "API billing plan limit exceeded. You've reached the maximum number of "
        "requests allowed for this month.",
    }
}


class RecordingLimiter(NullLimiter):
    """Every release with its penalty and usage counters (the hold a 429 would start)."""

    def __init__(self) -> None:
        self.released: list[tuple[float, tuple[str, ...]]] = []

    def release(self, slot: Slot, *, penalty: float = 0.0, usage: Sequence[str] = ()) -> None:
        self.released.append((penalty, tuple(usage)))


def _status_and_body(call: object) -> tuple[int, object]:
    with pytest.raises(requests.HTTPError) as info:
        call()  # type: ignore[operator]
    response = info.value.response
    assert response is not None
    return response.status_code, response.json()


def test_a_spent_quota_answers_every_data_request_as_airtable_does(
    make_local_airtable: MakeLocalAirtable,
) -> None:
    srv = make_local_airtable(monthly_quota=2)
    api = pyairtable.Api(srv.token, endpoint_url=srv.url, retry_strategy=None, timeout=(5, 30))
    table = api.table(TEST_BASE_ID, CRR)
    table.create({"Run ID": "250930-141522-a"})
    assert len(table.all()) == 1
    # The month's two requests are spent: reads and writes alike get the billing 429.
    assert _status_and_body(table.all) == (429, QUOTA_BODY)
    assert _status_and_body(lambda: table.create({"Run ID": "x"})) == (429, QUOTA_BODY)
    # The meta API still answers.
    assert [t.name for t in api.base(TEST_BASE_ID).schema(force=True).tables] == [
        "Job Tracking",
        CRR,
    ]
    assert srv.quota.refused == 2 and srv.quota.used == 2
    srv.quota.reset()  # a new month
    assert len(table.all()) == 1
    srv.quota.spend()  # another integration of the workspace spent it
    assert _status_and_body(table.all) == (429, QUOTA_BODY)
    srv.quota.reset()
    # The fault injector can answer it for one request too.
    srv.faults.add("quota", method="GET")
    assert _status_and_body(table.all) == (429, QUOTA_BODY)
    assert len(table.all()) == 1


def test_quota_exhausted_is_its_own_error_never_retried_and_holds_nothing(
    local_airtable: TrackingServer,
) -> None:
    sleeps: list[float] = []
    limiter = RecordingLimiter()
    conn = Connection.from_settings(
        local_airtable.settings(),
        limiter=limiter,
        policy=DEFAULT_POLICY.scaled(0.01).with_sleep(sleeps.append),
    )
    repo = Repository(conn)
    local_airtable.quota.spend()
    with pytest.raises(QuotaExhaustedError) as info:
        repo.jobs.find("250930-141522")
    assert not isinstance(info.value, RateLimitedError)
    assert info.value.status == 429
    assert info.value.error_type == "PUBLIC_API_BILLING_LIMIT_EXCEEDED"
    # One request, no wait, no hold of the base, counted apart from rate limits.
    assert local_airtable.request_log.count() == 1
    assert sleeps == []
    assert limiter.released == [(0.0, ("worker_reads", "quota_exhausted"))]
    # A real rate limit still is one: retried after a wait, and the base held.
    local_airtable.quota.reset()
    local_airtable.faults.add("429", method="GET")
    assert repo.jobs.find("250930-141522") is None
    assert len(sleeps) == 1
    assert limiter.released[1][0] > 0 and "rate_limited" in limiter.released[1][1]


def test_a_worker_keeps_its_writes_pending_until_the_quota_resets(
    local_airtable: TrackingServer,
) -> None:
    sleeps: list[float] = []
    conn = Connection.from_settings(
        local_airtable.settings(flush_interval=3600.0),
        policy=DEFAULT_POLICY.scaled(0.01).with_sleep(sleeps.append),
    )
    tracker = Tracker(conn)
    job = tracker.job()
    run = job.client("Guy-Wilson")
    run.add(profiles_examined=7)
    local_airtable.quota.spend()
    run.close()
    before = local_airtable.request_log.count()
    with pytest.raises(QuotaExhaustedError):
        tracker.flush()
    assert local_airtable.request_log.count() == before + 1  # one try, no retries
    assert sleeps == []
    local_airtable.quota.reset()
    tracker.flush()
    [row] = tracker.client_runs(job.run_id)
    assert row.status is not None and row.status.value == "Completed"
    assert row.metrics.values()["profiles_examined"] == 7
    assert job.complete().aggregates["profiles_examined"] == 7
    tracker.close()


def test_usage_reports_the_exhausted_quota(local_airtable: TrackingServer, tmp_path: Path) -> None:
    from jobtrack_airtable.cli._usage import _lines

    settings = local_airtable.settings(
        rate_limit=50, limiter_url=f"sqlite:///{tmp_path}/limiter.sqlite"
    )
    with Connection.from_settings(settings, policy=DEFAULT_POLICY.scaled(0.01)) as conn:
        repo = Repository(conn)
        assert repo.jobs.find("250930-141522") is None
        local_airtable.quota.spend()
        with pytest.raises(QuotaExhaustedError):
            repo.jobs.find("250930-141522")
        report = usage_report(repo, settings, plan="team")
    assert report.quota_exhausted and report.over_limit
    assert report.records is None
    counts = report.requests.counts
    # The worker's refused read (the report's own refused page comes after the count).
    assert counts["quota_exhausted"] == 1 and "rate_limited" not in counts
    document = usage_to_json(report)
    assert document["quota_exhausted"] is True and document["records"] is None
    assert any("QUOTA EXHAUSTED" in line for line in _lines(report))


def test_check_reports_the_exhausted_quota_while_it_lasts(local_airtable: TrackingServer) -> None:
    repo = Repository(Connection.from_settings(local_airtable.settings()))
    state = CheckState(base_id=local_airtable.base_id)
    local_airtable.quota.spend()
    report = run_check(repo, CheckConfig(), state, stuck_after=DEFAULT_STALE)
    [problem] = report.problems
    assert problem.kind is ProblemKind.QUOTA_EXHAUSTED and problem.new
    assert "monthly API quota is spent" in problem.message
    assert report.exit_code == 2
    again = run_check(repo, CheckConfig(), state, stuck_after=DEFAULT_STALE)
    assert [p.new for p in again.problems] == [False]  # a condition: reported, not new
    local_airtable.quota.reset()
    healthy = run_check(repo, CheckConfig(), state, stuck_after=DEFAULT_STALE)
    assert healthy.problems == [] and healthy.exit_code == 0
    assert "quota_exhausted" not in state.problems
