"""``check``'s alert rules (issue 25), each against a real local webhook through apprise:
``max_runtime``, ``failures_to_alert``/``successes_to_resolve``, ``min_interval``, per-client
``failure_streak`` and ``zero_leads_streak``, the quota and records alarms, and the one
"resolved" message when a condition clears (never repeated)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobtrack_airtable.admin.ops.config import CheckConfig
from jobtrack_airtable.admin.ops.health import HealthReport, ProblemKind, run_check
from jobtrack_airtable.admin.ops.notify import AppriseTarget, build_targets
from jobtrack_airtable.admin.ops.quota import usage_report
from jobtrack_airtable.admin.ops.state import locked_state
from jobtrack_airtable.admin.outbox import OutboxItem, outbox_status
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.outbox import SqliteOutbox
from jobtrack_airtable.outbox.store import entry_key
from jobtrack_airtable.timeutil import utcnow
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.repository import Repository

from .ops_rows import client, job, put
from .webhook import Webhook, running_webhook

NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with running_webhook() as hook:
        yield hook


class Checker:
    """Runs checks like cron does: one state file, one webhook, a clock the test moves."""

    def __init__(self, repo: Repository, hook: Webhook, path: Path, raw: dict[str, Any]) -> None:
        self.repo, self.hook, self.path = repo, hook, path
        self.config = CheckConfig.parse(raw)
        self.targets: list[AppriseTarget] = build_targets([hook.url()])

    def __call__(self, now: datetime, **kw: Any) -> HealthReport:
        with locked_state(self.path, self.repo.conn.base_id) as state:
            return run_check(
                self.repo,
                self.config,
                state,
                stuck_after=timedelta(hours=48),
                targets=self.targets,
                now=now,
                **kw,
            )

    def new_messages(self, since: int = 0, *, about: str = "") -> list[tuple[str, str]]:
        """(title, message) of the POSTs from the ``since``-th on, titles containing
        ``about``."""
        titles = [t.split(": ", 1)[1] for t in self.hook.titles()]
        pairs = list(zip(titles, self.hook.messages(), strict=True))[since:]
        return [(t, m) for t, m in pairs if about in t]


@pytest.fixture
def make_checker(repo: Repository, webhook: Webhook, tmp_path: Path) -> Any:
    return lambda raw: Checker(repo, webhook, tmp_path / "state.json", raw)


def _keys(report: HealthReport) -> list[str]:
    return [p.key for p in report.problems]


def test_max_runtime_per_schedule_rule_and_for_every_stream(
    repo: Repository, make_checker: Any
) -> None:
    check = make_checker(
        {
            "max_runtime": "3h",
            "schedule": [{"stream": 1, "by": "07:00", "max_runtime": "45m"}],
        }
    )
    # Stream 1 (own limit 45m): running for an hour.  Stream 2 (3h for every stream): one
    # run took 2h (fine), one took 4h (too long).
    put(
        repo,
        [
            job(NOW - HOUR, "Running", minutes=None, stream=1),
            job(NOW - 5 * HOUR, "Completed", minutes=120, stream=2),
            job(NOW - 9 * HOUR, "Completed", minutes=240, stream=2),
        ],
    )
    first = check(NOW)
    long_runs = [p for p in first.problems if p.kind is ProblemKind.LONG_RUN]
    assert [p.key for p in long_runs] == ["long_run:251001-030000", "long_run:251001-110000"]
    assert check.new_messages(about="too long") == [
        (
            "run too long",
            "Run 251001-030000 (stream 2) ran for 4h, over its max_runtime of 3h",
        ),
        (
            "run too long",
            "Run 251001-110000 (stream 1) has been running for 1h, over its max_runtime of 45m",
        ),
    ]
    # An event: announced once, whatever the run does next.
    put(repo, [job(NOW - HOUR, "Completed", minutes=70, stream=1)])
    assert not any(p.kind is ProblemKind.LONG_RUN for p in check(NOW + HOUR).problems)
    assert len(check.new_messages(about="too long")) == 2


def test_failures_to_alert_and_successes_to_resolve(repo: Repository, make_checker: Any) -> None:
    check = make_checker({"failures_to_alert": 3, "successes_to_resolve": 2})
    start = NOW - 10 * HOUR
    runs = [start + i * HOUR for i in range(8)]
    put(repo, [job(runs[0], "Failed", stream=1), job(runs[1], "Failed", stream=1)])
    two = check(runs[1] + 20 * timedelta(minutes=1))
    # Two failures in a row: under the threshold, and single failures are not announced.
    assert two.problems == [] and check.hook.received == []

    put(repo, [job(runs[2], "Failed", stream=1, notes="scoring API down")])
    three = check(runs[2] + 20 * timedelta(minutes=1))
    assert _keys(three) == ["failing_stream:stream1"]
    assert check.new_messages(0) == [
        (
            "stream failing",
            "Stream 1 failed its last 3 run(s) (alert after 3); latest 251001-040000: "
            "scoring API down",
        )
    ]
    # One success: not resolved yet (2 needed), nothing sent.
    put(repo, [job(runs[3], "Completed", stream=1)])
    recovering = check(runs[3] + 20 * timedelta(minutes=1))
    assert [(p.key, p.new) for p in recovering.problems] == [("failing_stream:stream1", False)]
    assert "recovering: 1 of the 2" in recovering.problems[0].message
    assert len(check.hook.received) == 1

    # The second success resolves it: one "resolved" message, then silence.
    put(repo, [job(runs[4], "Completed", stream=1)])
    resolved = check(runs[4] + 20 * timedelta(minutes=1))
    assert resolved.problems == [] and [p.key for p in resolved.resolved] == [
        "failing_stream:stream1"
    ]
    assert resolved.exit_code == 0
    (title, message), *_ = check.new_messages(1)
    assert title == "resolved: stream failing"
    assert message.startswith("Resolved at 2025-10-01 06:20 UTC: Stream 1 is recovering")
    for later in (runs[5], runs[6]):
        assert check(later).resolved == []
    assert len(check.hook.received) == 2
    assert "failing_stream" not in check.path.read_text(encoding="utf-8")


#: Only the streak rule speaks: the error rate is out of reach, single failures stay quiet.
STREAK_ONLY = {"clients": {"failure_streak": 2}, "error_rate": {"min_runs": 1000}}


def _streaks(report: HealthReport) -> list[tuple[str, bool]]:
    return [(p.key, p.new) for p in report.problems if p.kind is ProblemKind.FAILURE_STREAK]


def test_a_condition_that_comes_back_is_new_again(repo: Repository, make_checker: Any) -> None:
    check = make_checker(STREAK_ONLY)
    starts = [NOW - (6 - i) * HOUR for i in range(6)]
    put(
        repo,
        [],
        [client(starts[0], "Guy-Wilson", "Failed"), client(starts[1], "Guy-Wilson", "Failed")],
    )
    assert _streaks(check(starts[1] + HOUR / 2)) == [("failure_streak:Guy-Wilson", True)]
    put(repo, [], [client(starts[2], "Guy-Wilson", "Completed")])
    assert check(starts[2] + HOUR / 2).resolved[0].key == "failure_streak:Guy-Wilson"
    put(
        repo,
        [],
        [client(starts[3], "Guy-Wilson", "Failed"), client(starts[4], "Guy-Wilson", "Failed")],
    )
    back = check(starts[4] + HOUR / 2)
    assert _streaks(back) == [("failure_streak:Guy-Wilson", True)]
    assert [t for t, _ in check.new_messages(about="streak")] == [
        "client failure streak",
        "resolved: client failure streak",
        "client failure streak",
    ]


def test_resolved_message_is_retried_until_delivered_then_never_again(
    repo: Repository, make_checker: Any
) -> None:
    check = make_checker(STREAK_ONLY)
    start = NOW - 5 * HOUR
    put(repo, [], [client(start, "Dana-Li", "Failed"), client(start + HOUR, "Dana-Li", "Failed")])
    check(start + 2 * HOUR)
    put(repo, [], [client(start + 2 * HOUR, "Dana-Li", "Completed")])
    check.hook.status_by_path["/hook"] = 500
    failed = check(start + 3 * HOUR)
    assert failed.notify_failed == 1 and failed.exit_code == 1
    assert failed.pending == ["failure_streak:Dana-Li"]
    check.hook.status_by_path["/hook"] = 200
    tried = len(check.hook.received)
    retried = check(start + 4 * HOUR)
    assert retried.notified == 1 and retried.resolved == []  # resolved earlier, sent now
    assert check.new_messages(tried) == [
        (
            "resolved: client failure streak",
            "Resolved at 2025-10-01 10:00 UTC: Client Dana-Li failed in each of its last 2 "
            "runs since 2025-10-01 07:00 UTC (streak threshold 2)",
        )
    ]
    check(start + 5 * HOUR)
    assert len(check.hook.received) == tried + 1


def test_min_interval_reports_runs_too_close_together(repo: Repository, make_checker: Any) -> None:
    check = make_checker(
        {"min_interval": "30m", "schedule": [{"stream": 1, "by": "07:00", "min_interval": "20h"}]}
    )
    first = NOW - 6 * HOUR
    put(
        repo,
        [
            job(first, "Completed", stream=1),
            job(first + timedelta(minutes=3), "Completed", stream=1),  # a duplicate start
            job(first + timedelta(minutes=1), "Completed", stream=2),
            job(first + HOUR, "Completed", stream=2),  # 59m apart: over stream 2's 30m
        ],
    )
    report = check(NOW)
    assert _keys(report) == ["too_frequent:251001-060300"]
    assert check.new_messages(0) == [
        (
            "runs too frequent",
            "Run 251001-060300 (stream 1) started 3m after run 251001-060000, less than its "
            "min_interval of 20h (too frequent or duplicated)",
        )
    ]
    check(NOW + HOUR)
    assert len(check.hook.received) == 1


def test_zero_leads_streak_per_client(repo: Repository, make_checker: Any) -> None:
    check = make_checker({"clients": {"zero_leads_streak": 3}})
    starts = [NOW - (5 - i) * HOUR for i in range(4)]
    put(
        repo,
        [],
        [
            client(starts[0], "Carl-Jones", "Completed"),
            *(client(s, "Carl-Jones", "No Leads To Score") for s in starts[1:]),
            *(client(s, "Eva-Novak", "No Leads To Score") for s in starts[2:]),
        ],
    )
    report = check(NOW)
    assert _keys(report) == ["zero_leads_streak:Carl-Jones"]
    assert check.new_messages(0) == [
        (
            "client zero-leads streak",
            "Client Carl-Jones scored no lead in each of its last 3 runs since 2025-10-01 "
            "08:00 UTC (streak threshold 3)",
        )
    ]
    assert check(NOW + HOUR).problems[0].new is False
    assert len(check.hook.received) == 1


def test_quota_and_records_alarms(srv: LocalAirtable, tmp_path: Path, webhook: Webhook) -> None:
    # Requests counted in a real limiter store, as a worker's are.
    settings = srv.settings(limiter_url=f"sqlite:///{tmp_path / 'rl.sqlite'}", rate_limit=50)
    repo = Repository(Connection.from_settings(settings, schema=srv.schema))
    start = utcnow().replace(microsecond=0) - HOUR
    put(repo, [job(start, "Completed")], [client(start, f"C-{i}", "Completed") for i in range(3)])
    raw = {"quota": {"calls_share": 0.001, "records_share": 0.003}}
    check = Checker(repo, webhook, tmp_path / "state.json", raw)
    written = srv.request_log.total
    usage = usage_report(repo, settings, plan="free")
    # The counters are read before the records are counted: the writes, exactly.
    assert usage.requests.counted == written == 4
    assert usage.requests.projected is not None and usage.requests.projected > 1  # 0.1 %
    assert usage.records.total == 4 and usage.records.limit == 1_000
    report = check(utcnow(), usage=usage)
    assert [p.kind for p in report.problems] == [ProblemKind.QUOTA_CALLS, ProblemKind.RECORDS_CAP]
    calls, records = check.new_messages()
    assert calls[0] == "API calls quota"
    assert calls[1].startswith(f"API calls {usage.requests.month}: ")
    assert f"over 0.1 % of the Free quota of 1,000 ({usage.requests.counted:,} so far)" in calls[1]
    assert records == (
        "records cap",
        "The base holds 4 records, over 0.3 % of the Free cap of 1,000 per base",
    )
    # Without usage figures (no [quota] rules: the CLI reads none) both conditions clear.
    cleared = check(utcnow())
    assert {p.kind for p in cleared.resolved} == {ProblemKind.QUOTA_CALLS, ProblemKind.RECORDS_CAP}


def test_the_calls_alarm_judges_the_workspace_when_its_share_is_known(
    srv: LocalAirtable, tmp_path: Path, webhook: Webhook
) -> None:
    settings = srv.settings(limiter_url=f"sqlite:///{tmp_path / 'rl.sqlite'}", rate_limit=50)
    repo = Repository(Connection.from_settings(settings, schema=srv.schema))
    start = utcnow().replace(microsecond=0) - HOUR
    put(repo, [job(start, "Completed")])
    config = {"quota": {"calls_share": 0.5, "tool_share": 0.001}}
    check = Checker(repo, webhook, tmp_path / "state.json", config)
    usage = usage_report(repo, settings, plan="free", tool_share=check.config.quota.tool_share)
    assert usage.workspace is not None
    # This tool's single call is a thousandth of the workspace's: 1,000 calls so far.
    assert usage.workspace.counted == 1_000
    report = check(utcnow(), usage=usage)
    assert [p.kind for p in report.problems] == [ProblemKind.QUOTA_CALLS]
    (title, message), *_ = check.new_messages()
    assert title == "API calls quota"
    assert message.startswith(f"API calls {usage.requests.month} (workspace): ")
    assert message.endswith("over 50 % of the Free quota of 1,000 (1,000 so far)")


def test_an_exhausted_quota_is_announced_once_then_resolved_once(
    srv: LocalAirtable, make_checker: Any
) -> None:
    """i19b's quota_exhausted condition gets the same resolution as every condition."""
    check = make_checker({})
    srv.quota.spend()
    assert [p.kind for p in check(NOW).problems] == [ProblemKind.QUOTA_EXHAUSTED]
    check(NOW + HOUR)
    srv.quota.reset()
    healthy = check(NOW + 2 * HOUR)
    assert healthy.exit_code == 0
    assert [p.kind for p in healthy.resolved] == [ProblemKind.QUOTA_EXHAUSTED]
    check(NOW + 3 * HOUR)
    assert [t for t, _ in check.new_messages()] == [
        "monthly API quota exhausted",
        "resolved: monthly API quota exhausted",
    ]


def test_outbox_backlog_is_a_condition_resolved_when_replayed(
    srv: LocalAirtable, make_checker: Any, tmp_path: Path
) -> None:
    """The durability work's outbox (i19a): changes Airtable does not hold yet alarm while
    they wait, and one resolved message follows once they are gone."""
    store = SqliteOutbox(tmp_path / "outbox.sqlite")
    check = make_checker({"outbox": {"max_entries": 1}})
    dead = f"{socket.gethostname()}:999999999:gone"  # a process of this host no longer running
    keys = [entry_key(srv.base_id, "client_runs", f"251001-070000-C{i}") for i in range(2)]
    store.put(keys[0], 1, '{"status": "Running"}', dead)
    assert check(NOW, outbox=outbox_status(store, srv.base_id)).problems == []  # 1 ≤ 1
    store.put(keys[1], 1, '{"status": "Completed"}', "otherhost:12:alive")
    report = check(NOW + HOUR, outbox=outbox_status(store, srv.base_id))
    assert [p.kind for p in report.problems] == [ProblemKind.OUTBOX_BACKLOG]
    message = report.problems[0].message
    assert message.startswith("2 change(s) wait in the outbox for Airtable, the oldest for ")
    assert "(1 left by processes no longer running: `outbox replay` writes them)" in message
    assert store.drop(keys) == 2
    cleared = check(NOW + 2 * HOUR, outbox=outbox_status(store, srv.base_id))
    assert [p.kind for p in cleared.resolved] == [ProblemKind.OUTBOX_BACKLOG]
    assert [t for t, _ in check.new_messages()] == ["outbox backlog", "resolved: outbox backlog"]
    store.close()


def test_outbox_max_age() -> None:
    from jobtrack_airtable.admin.ops.activity import Activity
    from jobtrack_airtable.admin.ops.health import evaluate

    config = CheckConfig.parse({"outbox": {"max_age": "15m"}})
    empty = Activity(since=NOW - HOUR, until=NOW, jobs=[], clients=[])
    young, old = (
        OutboxItem("251001-070000-A", "client_runs", 1, "h:1:x", True, s, None, "Running")
        for s in (60.0, 3600.0)
    )

    def kinds(items: list[OutboxItem]) -> list[ProblemKind]:
        found, _, _ = evaluate(
            empty, config, now=NOW, events_since=NOW - HOUR, stuck_after=HOUR, outbox=items
        )
        return [p.kind for p in found]

    assert kinds([young]) == []
    assert kinds([young, old]) == [ProblemKind.OUTBOX_BACKLOG]
