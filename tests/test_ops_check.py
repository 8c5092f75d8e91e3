"""``check`` as a library (jobtrack_airtable.admin.ops): problems found, schedule rules, the state
file, request cost — against a real local server over HTTP, at a fixed ``now``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobtrack_airtable.admin.ops.config import CheckConfig, ScheduleRule, load_check_config
from jobtrack_airtable.admin.ops.health import EVENT_OVERLAP, HealthReport, ProblemKind, run_check
from jobtrack_airtable.admin.ops.state import CheckState, locked_state
from jobtrack_airtable.errors import AuthenticationError, ConfigError
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.repository import Repository

from .conftest import MakeLocalAirtable
from .ops_rows import client, connect, job, put, put_legacy

NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
TWO_HOURS = timedelta(hours=2)
EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "check.example.toml"


@pytest.fixture
def srv(make_local_airtable: MakeLocalAirtable) -> LocalAirtable:
    return make_local_airtable()


@pytest.fixture
def repo(srv: LocalAirtable) -> Repository:
    return connect(srv)


def _kinds(report: HealthReport) -> list[tuple[str, str]]:
    return [(p.kind.value, p.key) for p in report.problems]


def _check(
    repo: Repository,
    state: CheckState,
    *,
    now: datetime = NOW,
    config: CheckConfig | None = None,
    stuck_after: timedelta = TWO_HOURS,
) -> HealthReport:
    return run_check(repo, config or CheckConfig(), state, stuck_after=stuck_after, now=now)


def test_healthy_base_exits_0_in_two_requests(srv: LocalAirtable, repo: Repository) -> None:
    start = NOW - timedelta(hours=3)
    put(
        repo,
        [job(start, "Completed")],
        [client(start, "Guy-Wilson", "Completed"), client(start, "Carl-Jones", "Completed")],
    )
    srv.request_log.clear()
    report = _check(repo, CheckState(base_id=srv.base_id))
    assert report.problems == []
    assert report.healthy and report.exit_code == 0
    # One filtered listing per table (SPEC §4 spirit: ⌈J/100⌉ + ⌈C/100⌉).
    assert srv.request_log.count("GET") == 2
    assert srv.request_log.total == 2
    assert (report.jobs_read, report.clients_read) == (1, 2)


def test_reads_cost_one_request_per_page(srv: LocalAirtable, repo: Repository) -> None:
    start = NOW - timedelta(hours=1)
    clients = [client(start, f"Client-{i:03d}", "Completed") for i in range(150)]
    put(repo, [job(start, "Completed")], clients)
    srv.request_log.clear()
    report = _check(repo, CheckState(base_id=srv.base_id))
    assert report.clients_read == 150
    assert srv.request_log.total == 1 + 2  # jobs: 1 page; client rows: 2 pages of 100


def test_stuck_running_job_past_the_threshold(srv: LocalAirtable, repo: Repository) -> None:
    stuck = NOW - timedelta(hours=5)
    fresh = NOW - timedelta(minutes=30)
    put(
        repo,
        [
            job(stuck, "Running", minutes=None, last_updated=stuck + timedelta(hours=2)),
            job(fresh, "Running", minutes=None, stream=2),
        ],
    )
    # A legacy running spelling is running too.
    put_legacy(srv, "jobs", job(stuck - timedelta(days=20), "In Progress", minutes=None, stream=3))
    report = _check(repo, CheckState(base_id=srv.base_id))
    stuck_keys = sorted(p.key for p in report.problems if p.kind is ProblemKind.STUCK_RUN)
    # The job started 20 days ago is still read (no End Time) although outside every window.
    assert stuck_keys == ["stuck_run:250911-070000", "stuck_run:251001-070000"]
    message = next(p.message for p in report.problems if p.key.endswith("251001-070000"))
    assert "(stream 1)" in message and "Last Updated" in message and "3h ago" in message
    assert report.exit_code == 2
    # A longer threshold: the 3h-quiet job is fine, the 20-day one is not.
    again = _check(repo, CheckState(base_id=srv.base_id), stuck_after=timedelta(hours=4))
    assert [p.key for p in again.problems] == ["stuck_run:250911-070000"]


def test_failures_are_reported_once_then_only_new_ones(
    srv: LocalAirtable, repo: Repository
) -> None:
    first = NOW - timedelta(hours=4)
    put(
        repo,
        [job(first, "Failed", notes="scoring API down")],
        [
            client(first, "Guy-Wilson", "Failed", error="TimeoutError: no answer in 60 s"),
            client(first, "Carl-Jones", "Completed"),
        ],
    )
    state = CheckState(base_id=srv.base_id)
    report = _check(repo, state)
    assert _kinds(report) == [
        ("failed_run", "failed_run:251001-080000"),
        ("failed_client", "failed_client:251001-080000-Guy-Wilson"),
    ]
    assert all(p.new for p in report.problems)
    assert "scoring API down" in report.problems[0].message
    assert "TimeoutError" in report.problems[1].message
    assert report.exit_code == 2

    # Ten minutes later nothing new happened: healthy again (the failures were reported).
    later = NOW + timedelta(minutes=10)
    assert _check(repo, state, now=later).problems == []

    # A new failure inside the next window is the only thing reported.
    second = later + timedelta(minutes=2)
    put(repo, [job(second, "Completed", minutes=3)], [client(second, "Eva-Novak", "Failed")])
    report = _check(repo, state, now=later + timedelta(minutes=20))
    assert _kinds(report) == [("failed_client", f"failed_client:{second:%y%m%d-%H%M%S}-Eva-Novak")]


def test_first_check_looks_back_lookback_only(srv: LocalAirtable, repo: Repository) -> None:
    old = NOW - timedelta(hours=30)
    recent = NOW - timedelta(hours=20)
    put(repo, [job(old, "Failed"), job(recent, "Failed", stream=2)])
    state = CheckState(base_id=srv.base_id)
    assert [p.key for p in _check(repo, state).problems] == [f"failed_run:{recent:%y%m%d-%H%M%S}"]
    wide = CheckConfig(lookback=timedelta(hours=36))
    keys = [p.key for p in _check(repo, CheckState(base_id=srv.base_id), config=wide).problems]
    assert keys == [f"failed_run:{old:%y%m%d-%H%M%S}", f"failed_run:{recent:%y%m%d-%H%M%S}"]


def test_a_job_that_started_before_the_window_and_failed_in_it(
    srv: LocalAirtable, repo: Repository
) -> None:
    """Run time is before the event window, but it ended (Last Updated) inside it."""
    start = NOW - timedelta(hours=30)
    put(repo, [job(start, "Failed", minutes=29 * 60)])
    state = CheckState(base_id=srv.base_id, last_check=NOW - timedelta(hours=2))
    report = _check(repo, state)
    assert [p.key for p in report.problems] == [f"failed_run:{start:%y%m%d-%H%M%S}"]


def test_error_rate_per_client(srv: LocalAirtable, repo: Repository) -> None:
    jobs, clients = [], []
    for day in range(1, 5):
        start = NOW - timedelta(days=day)
        jobs.append(job(start, "Completed"))
        # Guy fails 3 of 4, Carl 1 of 4; Ana fails her only 2 runs (below min_runs = 3).
        clients.append(client(start, "Guy-Wilson", "Failed" if day != 4 else "Completed"))
        clients.append(client(start, "Carl-Jones", "Failed" if day == 1 else "Completed"))
        if day <= 2:
            clients.append(client(start, "Ana-María-López", "Failed"))
    put(repo, jobs, clients)
    # Events are old news for this state (last check an hour ago): only conditions show.
    state = CheckState(base_id=srv.base_id, last_check=NOW - timedelta(hours=1))
    report = _check(repo, state)
    assert _kinds(report) == [("error_rate", "error_rate:Guy-Wilson")]
    assert "3 of its 4 runs" in report.problems[0].message
    rates = {r.client_id: (r.failed, r.runs) for r in report.error_rates}
    assert rates == {"Guy-Wilson": (3, 4), "Carl-Jones": (1, 4), "Ana-María-López": (2, 2)}

    strict = CheckConfig.parse({"error_rate": {"threshold": 0.25, "min_runs": 2}})
    report = _check(
        repo, CheckState(base_id=srv.base_id, last_check=state.last_check), config=strict
    )
    assert sorted(p.key for p in report.problems) == [
        "error_rate:Ana-María-López",
        "error_rate:Carl-Jones",
        "error_rate:Guy-Wilson",
    ]
    # The window bounds it: over the last 36 hours Guy has 1 failure of 1 run.
    short = CheckConfig.parse({"error_rate": {"window": "36h", "min_runs": 1}})
    report = _check(
        repo, CheckState(base_id=srv.base_id, last_check=state.last_check), config=short
    )
    assert {r.client_id: (r.failed, r.runs) for r in report.error_rates}["Guy-Wilson"] == (1, 1)


def test_conditions_stay_reported_but_are_new_only_once(
    srv: LocalAirtable, repo: Repository
) -> None:
    stuck = NOW - timedelta(hours=6)
    put(repo, [job(stuck, "Running", minutes=None)])
    state = CheckState(base_id=srv.base_id)
    first = _check(repo, state)
    second = _check(repo, state, now=NOW + timedelta(minutes=10))
    assert [(p.key, p.new) for p in first.problems] == [("stuck_run:251001-060000", True)]
    assert [(p.key, p.new) for p in second.problems] == [("stuck_run:251001-060000", False)]
    assert second.exit_code == 2  # still unhealthy
    # It clears (the job finishes) ...
    put(repo, [job(stuck, "Completed", minutes=6 * 60 + 15)])
    assert _check(repo, state, now=NOW + timedelta(minutes=20)).problems == []
    assert "stuck_run:251001-060000" not in state.problems
    # ... and comes back (forced back to Running, then quiet): new again.
    put(repo, [{**job(stuck, "Running", minutes=None), "end_time": None}])
    third = _check(repo, state, now=NOW + timedelta(minutes=30))
    assert [(p.key, p.new) for p in third.problems] == [("stuck_run:251001-060000", True)]


# -- schedule rules ---------------------------------------------------------------------------

DAILY_7 = {"stream": 1, "every": "day", "by": "07:00"}


def _missed(
    repo: Repository, srv: LocalAirtable, rule: dict[str, object], now: datetime
) -> list[str]:
    config = CheckConfig.parse({"schedule": [rule]})
    report = _check(repo, CheckState(base_id=srv.base_id), config=config, now=now)
    return [p.key for p in report.problems if p.kind is ProblemKind.MISSED_RUN]


def test_daily_rule_met_by_a_run_before_the_deadline(srv: LocalAirtable, repo: Repository) -> None:
    put(repo, [job(datetime(2025, 10, 1, 6, 30, tzinfo=UTC), "Completed")])
    config = CheckConfig.parse({"schedule": [DAILY_7]})
    report = _check(repo, CheckState(base_id=srv.base_id), config=config)
    assert report.problems == []
    [deadline] = report.deadlines
    assert deadline.deadline == datetime(2025, 10, 1, 7, 0, tzinfo=UTC)
    assert deadline.met_by == "251001-063000"


def test_daily_rule_missed(srv: LocalAirtable, repo: Repository) -> None:
    # Other streams and a run after the deadline do not count for today's 07:00.
    put(
        repo,
        [
            job(datetime(2025, 10, 1, 6, 0, tzinfo=UTC), "Completed", stream=2),
            job(datetime(2025, 10, 1, 7, 5, tzinfo=UTC), "Completed", stream=1),
        ],
    )
    assert _missed(repo, srv, DAILY_7, NOW) == ["missed_run:stream1:2025-10-01T07:00:00.000Z"]
    # Checked at 06:59 after a check at 06:00: nothing fell due in between.
    config = CheckConfig.parse({"schedule": [DAILY_7]})
    state = CheckState(base_id=srv.base_id, last_check=datetime(2025, 10, 1, 6, 0, tzinfo=UTC))
    early = _check(repo, state, config=config, now=datetime(2025, 10, 1, 6, 59, tzinfo=UTC))
    assert early.deadlines == [] and early.problems == []
    # The 07:05 run meets tomorrow's deadline.
    assert _missed(repo, srv, DAILY_7, datetime(2025, 10, 2, 8, 0, tzinfo=UTC)) == []


def test_within_grace_days_and_hourly_rules(srv: LocalAirtable, repo: Repository) -> None:
    put(repo, [job(datetime(2025, 10, 1, 5, 0, tzinfo=UTC), "Completed")])
    # The run must start in the last hour before the deadline: 05:00 is too early.
    assert _missed(repo, srv, {**DAILY_7, "within": "1h"}, NOW) == [
        "missed_run:stream1:2025-10-01T07:00:00.000Z"
    ]
    # Grace: a deadline 10 minutes ago is not reported yet with a 15-minute grace.
    late = datetime(2025, 10, 1, 7, 10, tzinfo=UTC)
    rule = {**DAILY_7, "within": "1h", "grace": "15m"}
    assert _missed(repo, srv, rule, late) == []
    # Weekdays only: 2025-10-04 is a Saturday, so the rule expects nothing that day.
    saturday = datetime(2025, 10, 4, 12, 0, tzinfo=UTC)
    weekdays = {**DAILY_7, "days": ["mon", "tue", "wed", "thu", "fri"]}
    assert _missed(repo, srv, weekdays, saturday) == []
    assert _missed(repo, srv, DAILY_7, saturday) == ["missed_run:stream1:2025-10-04T07:00:00.000Z"]
    # Hourly by :15, over the 24 h lookback: only the 05:15 deadline had its run (05:00).
    hourly = {"stream": 1, "every": "hour", "by": ":15"}
    missed = _missed(repo, srv, hourly, NOW)
    assert len(missed) == 23
    assert "missed_run:stream1:2025-10-01T05:15:00.000Z" not in missed


def test_schedule_deadlines_follow_the_rule_time_zone() -> None:
    rule = ScheduleRule.parse({**DAILY_7, "timezone": "Europe/Paris"})
    # Paris leaves summer time on 2025-10-26: 07:00 local is 05:00 UTC before, 06:00 after.
    deadlines = rule.deadlines(
        datetime(2025, 10, 25, 0, 0, tzinfo=UTC), datetime(2025, 10, 27, 12, 0, tzinfo=UTC)
    )
    assert [d.isoformat() for d in deadlines] == [
        "2025-10-25T05:00:00+00:00",
        "2025-10-26T06:00:00+00:00",
        "2025-10-27T06:00:00+00:00",
    ]
    assert rule.describe() == "stream 1 every day by 07:00 Europe/Paris"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"schedule": [{"every": "day", "by": "07:00"}]}, "schedule[0].stream"),
        ({"schedule": [{"stream": 1, "every": "week", "by": "07:00"}]}, "'week'"),
        ({"schedule": [{"stream": 1, "by": "7am"}]}, "'7am'"),
        ({"schedule": [{"stream": 1, "by": "25:00"}]}, "'25:00'"),
        ({"schedule": [{"stream": 1, "by": "07:00", "days": ["funday"]}]}, "'funday'"),
        ({"schedule": [{"stream": 1, "by": "07:00", "timezone": "Mars/Base"}]}, "'Mars/Base'"),
        ({"schedule": [{"stream": 1, "every": "hour", "by": ":75"}]}, "':75'"),
        ({"schedule": [{"stream": 1, "by": "07:00", "within": "-1h"}]}, "'-1h'"),
        ({"schedule": [{"stream": 1, "by": "07:00", "colour": "red"}]}, "'colour'"),
        ({"stuck_after": "forever"}, "'forever'"),
        ({"error_rate": {"threshold": 1.5}}, "1.5"),
        ({"error_rate": {"min_runs": 0}}, "min_runs"),
        ({"schedules": []}, "'schedules'"),
    ],
)
def test_bad_configuration_is_a_typed_error_naming_the_value(
    raw: dict[str, object], needle: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        CheckConfig.parse(raw)
    assert needle in str(caught.value)


def test_the_example_configuration_loads() -> None:
    config = load_check_config(EXAMPLE)
    assert config.stuck_after == timedelta(hours=2)
    assert [r.describe() for r in config.schedule] == [
        "stream 1 every day by 07:00 UTC",
        "stream 2 every day (Mon, Tue, Wed, Thu, Fri) by 18:30 Europe/London",
        "stream 3 every hour by :15",
    ]


def test_unreadable_configuration_file(tmp_path: Path) -> None:
    bad = tmp_path / "check.toml"
    bad.write_text("stuck_after = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_check_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_check_config(tmp_path / "missing.toml")


# -- the state file ----------------------------------------------------------------------------


def test_state_round_trip_and_refusals(
    tmp_path: Path, srv: LocalAirtable, repo: Repository
) -> None:
    put(repo, [job(NOW - timedelta(hours=1), "Failed")])
    path = tmp_path / "state.json"
    with locked_state(path, srv.base_id) as state:
        _check(repo, state)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["last_check"] == "2025-10-01T12:00:00.000Z"
    assert list(saved["problems"]) == ["failed_run:251001-110000"]
    with locked_state(path, srv.base_id) as state:
        assert state.last_check == NOW
        assert _check(repo, state, now=NOW + timedelta(minutes=5)).problems == []
    # Another base's state is refused, not reused or overwritten.
    with (
        pytest.raises(ConfigError, match="belongs to base"),
        locked_state(path, "appOTHERbase12345"),
    ):
        pass
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="unreadable"), locked_state(path, srv.base_id):
        pass
    assert path.read_text(encoding="utf-8") == "{not json"  # never silently reset


def test_an_error_during_the_check_leaves_the_state_untouched(
    tmp_path: Path, srv: LocalAirtable, repo: Repository
) -> None:
    path = tmp_path / "state.json"
    with locked_state(path, srv.base_id) as state:
        _check(repo, state)
    before = path.read_text(encoding="utf-8")
    # A token the server refuses: the read fails (401, never retried) mid-check.
    refused = Repository(
        Connection.from_settings(srv.settings(api_key="patWRONG.token"), schema=srv.schema)
    )
    with pytest.raises(AuthenticationError), locked_state(path, srv.base_id) as state:
        _check(refused, state, now=NOW + timedelta(hours=1))
    assert path.read_text(encoding="utf-8") == before


def test_event_window_overlaps_the_last_check(srv: LocalAirtable, repo: Repository) -> None:
    """A failure written late, stamped just before the last check, is still caught once."""
    last = NOW - timedelta(minutes=30)
    stamped = last - EVENT_OVERLAP / 2
    put(repo, [job(stamped - timedelta(minutes=10), "Failed")])
    state = CheckState(base_id=srv.base_id, last_check=last)
    assert len(_check(repo, state).problems) == 1
    assert _check(repo, state, now=NOW + timedelta(minutes=1)).problems == []
