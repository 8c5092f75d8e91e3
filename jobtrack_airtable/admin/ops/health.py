"""``jobtrack-airtable check``: is the tracking base healthy?  The library behind the command.

Five kinds of problem (:class:`ProblemKind`), each with a stable key so a problem is announced
once, not on every check:

* **events**, reported by the first check that sees them and never again:
  ``failed_run`` (a job ``Failed`` since the last check), ``failed_client`` (a client run
  ``Failed`` since the last check) and ``missed_run`` (a deadline of a schedule rule passed
  with no run of its stream, see :mod:`.config`);
* **conditions**, reported by every check while they last (marked new only the first time,
  and new again if they clear and come back): ``stuck_run`` (a job still ``Running`` with no
  update for longer than the stuck threshold; every job without an End Time is read for it,
  however old) and ``error_rate`` (a client failing at least the configured share of its
  runs).  Client rows left ``Running`` under a finished job are ``sync``'s business.
  ``quota_exhausted``: Airtable refuses every data request because the workspace's monthly
  API quota is spent (429 ``PUBLIC_API_BILLING_LIMIT_EXCEEDED``); nothing else can be judged
  until it resets, and workers keep their writes pending meanwhile.

"Since the last check" comes from the state file (:mod:`.state`); the first check looks back
``lookback`` (24 h).  The event window starts a few minutes before the last check
(:data:`EVENT_OVERLAP`): a row written late by a worker with a slow clock is still seen, and
the keys already reported keep it from being announced twice.

:func:`run_check` reads the base once (:func:`~.activity.read_activity`: ⌈J/100⌉ + ⌈C/100⌉
requests over the widest window any rule needs), evaluates, updates the state and sends every
problem not yet delivered to each notification target (one message per problem and target).
A delivery that failed stays pending in the state and is retried by the next check, to that
target only.

This module never prints and never imports a notification library: a target is anything
with an ``id`` and a ``send`` (:mod:`.notify` builds them from apprise URLs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from ...errors import InvalidInputError, QuotaExhaustedError, show
from ...rows import ClientRunRow, JobRow
from ...statuses import Status, map_status, staleness
from ...timeutil import to_airtable
from ...transport.repository import Repository
from .activity import Activity, base_run_id_of, client_id_of, read_activity, run_time
from .config import CheckConfig, ScheduleRule
from .state import CheckState, SeenProblem

__all__ = [
    "EVENT_OVERLAP",
    "HEALTH_FORMAT_VERSION",
    "ClientErrorRate",
    "DeadlineResult",
    "HealthReport",
    "Problem",
    "ProblemKind",
    "Target",
    "evaluate",
    "health_to_json",
    "run_check",
]

HEALTH_FORMAT_VERSION = 1
#: How far before the last check the event window starts (late writes, skewed clocks).
EVENT_OVERLAP = timedelta(minutes=10)
#: Exit codes of ``check``.
EXIT_HEALTHY, EXIT_ERROR, EXIT_UNHEALTHY = 0, 1, 2
_TEXT_LIMIT = 300


class Target(Protocol):
    """Somewhere a notification goes: ``id`` is stable and safe to store and show (never the
    URL, which may hold a webhook secret); ``send`` returns whether it was delivered."""

    @property
    def id(self) -> str: ...

    def send(self, title: str, body: str) -> bool: ...


class ProblemKind(StrEnum):
    STUCK_RUN = "stuck_run"
    FAILED_RUN = "failed_run"
    FAILED_CLIENT = "failed_client"
    MISSED_RUN = "missed_run"
    ERROR_RATE = "error_rate"
    QUOTA_EXHAUSTED = "quota_exhausted"

    @property
    def is_event(self) -> bool:
        return self in (ProblemKind.FAILED_RUN, ProblemKind.FAILED_CLIENT, ProblemKind.MISSED_RUN)

    @property
    def label(self) -> str:
        return _TITLES[self]


_TITLES = {
    ProblemKind.STUCK_RUN: "run stuck",
    ProblemKind.FAILED_RUN: "run failed",
    ProblemKind.FAILED_CLIENT: "client run failed",
    ProblemKind.MISSED_RUN: "expected run missing",
    ProblemKind.ERROR_RATE: "client error rate",
    ProblemKind.QUOTA_EXHAUSTED: "monthly API quota exhausted",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong; ``key`` identifies it across checks, ``at`` is when it happened
    (events) or when it was found (conditions)."""

    key: str
    kind: ProblemKind
    message: str
    at: datetime
    run_id: str | None = None
    client_id: str | None = None
    stream: int | None = None
    new: bool = True


@dataclass(frozen=True)
class ClientErrorRate:
    """A client's finished runs and failures over the error-rate window."""

    client_id: str
    runs: int
    failed: int

    @property
    def rate(self) -> float:
        return self.failed / self.runs if self.runs else 0.0


@dataclass(frozen=True)
class DeadlineResult:
    """One deadline of a schedule rule: met by which job (``None``: missed)."""

    rule: str
    stream: int
    deadline: datetime
    window_start: datetime
    met_by: str | None


@dataclass
class HealthReport:
    """What :func:`run_check` found and did."""

    checked_at: datetime
    events_since: datetime
    last_check: datetime | None
    stuck_after: timedelta
    problems: list[Problem]
    error_rates: list[ClientErrorRate]
    deadlines: list[DeadlineResult]
    jobs_read: int = 0
    clients_read: int = 0
    notified: int = 0
    notify_failed: int = 0
    pending: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        """0 healthy, 2 unhealthy, 1 when a notification could not be delivered."""
        if self.notify_failed:
            return EXIT_ERROR
        return EXIT_HEALTHY if self.healthy else EXIT_UNHEALTHY

    @property
    def new_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.new]


# -- evaluation (pure) ----------------------------------------------------------------------


def _short(text: str | None) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= _TEXT_LIMIT else line[: _TEXT_LIMIT - 1] + "…"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _status(row: JobRow | ClientRunRow) -> Status | None:
    return map_status(row.status_raw).status if row.status_raw is not None else None


def _finished_at(row: JobRow | ClientRunRow) -> datetime | None:
    """When a finished run ended: End Time, else Last Updated, else its run time."""
    return row.end_time or row.last_updated or run_time(row)


def _job_label(job: JobRow) -> str:
    name = job.run_id or job.record_id
    return f"{name} (stream {job.stream})" if job.stream is not None else name


def _stuck(jobs: Iterable[JobRow], threshold: timedelta, now: datetime) -> list[Problem]:
    out = []
    for job in jobs:
        stale = staleness(
            job.status_raw,
            last_updated=job.last_updated,
            start_time=job.start_time,
            created_time=job.created_time,
            threshold=threshold,
            now=now,
        )
        if stale is None:
            continue
        detail = stale.reason.removeprefix("Stale: ")
        out.append(
            Problem(
                key=f"stuck_run:{job.run_id or job.record_id}",
                kind=ProblemKind.STUCK_RUN,
                message=f"Run {_job_label(job)} is stuck: {detail}",
                at=now,
                run_id=job.run_id,
                stream=job.stream,
            )
        )
    return out


def _failed_jobs(jobs: Iterable[JobRow], since: datetime, now: datetime) -> list[Problem]:
    out = []
    for job in jobs:
        moment = _finished_at(job)
        if _status(job) is not Status.FAILED or moment is None or not since <= moment <= now:
            continue
        notes = _short(job.system_notes)
        out.append(
            Problem(
                key=f"failed_run:{job.run_id or job.record_id}",
                kind=ProblemKind.FAILED_RUN,
                message=f"Run {_job_label(job)} failed at {_when(moment)}"
                + (f": {notes}" if notes else ""),
                at=moment,
                run_id=job.run_id,
                stream=job.stream,
            )
        )
    return out


def _failed_clients(
    clients: Iterable[ClientRunRow], since: datetime, now: datetime
) -> list[Problem]:
    out = []
    for row in clients:
        moment = _finished_at(row)
        if _status(row) is not Status.FAILED or moment is None or not since <= moment <= now:
            continue
        client = client_id_of(row)
        error = _short(row.error_details)
        run = base_run_id_of(row) or row.run_id or row.record_id
        out.append(
            Problem(
                key=f"failed_client:{row.run_id or row.record_id}",
                kind=ProblemKind.FAILED_CLIENT,
                message=f"Client {client} failed in run {run} at {_when(moment)}"
                + (f": {error}" if error else ""),
                at=moment,
                run_id=row.run_id,
                client_id=client,
            )
        )
    return out


def _deadlines(
    rules: Iterable[ScheduleRule], jobs: list[JobRow], since: datetime, now: datetime
) -> list[DeadlineResult]:
    out = []
    for rule in rules:
        starts = sorted(
            (t, j.run_id or j.record_id)
            for j in jobs
            if j.stream == rule.stream and (t := run_time(j)) is not None
        )
        for deadline in rule.deadlines(since, now):
            lo, hi = rule.window(deadline)
            met = next((rid for t, rid in starts if lo <= t <= hi), None)
            out.append(DeadlineResult(rule.describe(), rule.stream, deadline, lo, met))
    return out


def _missed(results: Iterable[DeadlineResult]) -> list[Problem]:
    return [
        Problem(
            key=f"missed_run:stream{r.stream}:{to_airtable(r.deadline)}",
            kind=ProblemKind.MISSED_RUN,
            message=f"No run of stream {r.stream} started between {_when(r.window_start)} and "
            f"{_when(r.deadline)} (expected: {r.rule})",
            at=r.deadline,
            stream=r.stream,
        )
        for r in results
        if r.met_by is None
    ]


def _error_rates(
    clients: Iterable[ClientRunRow], since: datetime, now: datetime
) -> list[ClientErrorRate]:
    runs: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    for row in clients:
        moment = run_time(row)
        status = _status(row)
        if moment is None or not since <= moment <= now or status in (None, Status.RUNNING):
            continue
        client = client_id_of(row)
        runs[client] += 1
        failed[client] += status is Status.FAILED
    rates = [ClientErrorRate(c, runs[c], failed[c]) for c in runs]
    return sorted(rates, key=lambda r: (-r.rate, -r.runs, r.client_id))


def _rate_problems(
    rates: Iterable[ClientErrorRate], config: CheckConfig, now: datetime
) -> list[Problem]:
    rule = config.error_rate
    days = rule.window / timedelta(days=1)
    span = f"{days:g} days" if days >= 1 else f"{rule.window / timedelta(hours=1):g} hours"
    return [
        Problem(
            key=f"error_rate:{r.client_id}",
            kind=ProblemKind.ERROR_RATE,
            message=f"Client {r.client_id} failed {r.failed} of its {r.runs} runs in the last "
            f"{span} ({r.rate:.0%}; threshold {rule.threshold:.0%})",
            at=now,
            client_id=r.client_id,
        )
        for r in rates
        if r.runs >= rule.min_runs and r.rate >= rule.threshold
    ]


def evaluate(
    activity: Activity,
    config: CheckConfig,
    *,
    now: datetime,
    events_since: datetime,
    stuck_after: timedelta,
) -> tuple[list[Problem], list[ClientErrorRate], list[DeadlineResult]]:
    """Every problem in ``activity`` (all marked new), the per-client error rates and the
    schedule deadlines checked.  Pure: no requests, no state."""
    rates = _error_rates(activity.clients, now - config.error_rate.window, now)
    deadlines = _deadlines(config.schedule, activity.jobs, events_since, now)
    problems = [
        *_stuck(activity.jobs, stuck_after, now),
        *_failed_jobs(activity.jobs, events_since, now),
        *_failed_clients(activity.clients, events_since, now),
        *_missed(deadlines),
        *_rate_problems(rates, config, now),
    ]
    problems.sort(key=lambda p: (list(ProblemKind).index(p.kind), p.at, p.key))
    return problems, rates, deadlines


# -- a check: read, evaluate, remember, notify ----------------------------------------------


def _read_since(config: CheckConfig, events_since: datetime, now: datetime) -> datetime:
    """The widest window any rule needs."""
    since = min(events_since, now - config.error_rate.window)
    for rule in config.schedule:
        deadlines = rule.deadlines(events_since, now)
        if deadlines:
            since = min(since, rule.window(deadlines[0])[0])
    return since


def _remember(
    state: CheckState,
    problems: list[Problem],
    *,
    now: datetime,
    events_since: datetime,
    lookback: timedelta,
) -> list[Problem]:
    """Mark which problems are new, record them, forget what is over; returns the problems
    to report (events already reported by an earlier check are left out)."""
    reported: list[Problem] = []
    current = {p.key for p in problems}
    for p in problems:
        seen = state.problems.get(p.key)
        if seen is not None and p.kind.is_event:
            continue  # announced by an earlier check
        if seen is None:
            state.problems[p.key] = SeenProblem(
                kind=p.kind.value, message=p.message, at=p.at, event=p.kind.is_event
            )
        else:
            seen.message = p.message  # a condition's numbers move; keep the latest words
        reported.append(p if seen is None else _not_new(p))
    forget_before = min(events_since, now - lookback)
    for key, seen in list(state.problems.items()):
        over = seen.at < forget_before if seen.event else key not in current
        if over:
            del state.problems[key]
    state.last_check = now
    return reported


def _not_new(p: Problem) -> Problem:
    return replace(p, new=False)


def _deliver(
    state: CheckState, targets: Sequence[Target], base_label: str
) -> tuple[int, int, list[str]]:
    """Send every remembered problem to every target it has not reached yet."""
    sent = failed = 0
    pending: list[str] = []
    for key, seen in sorted(state.problems.items(), key=lambda kv: (kv[1].at, kv[0])):
        title = f"jobtrack-airtable {base_label}: {ProblemKind(seen.kind).label}"
        for target in targets:
            if target.id in seen.delivered:
                continue
            if target.send(title, seen.message):
                seen.delivered.add(target.id)
                sent += 1
            else:
                failed += 1
                if key not in pending:
                    pending.append(key)
    return sent, failed, pending


#: How far past this machine's clock a check reads when no "now" is given (see run_check).
CLOCK_SLACK = timedelta(days=1)


def run_check(
    repo: Repository,
    config: CheckConfig,
    state: CheckState,
    *,
    stuck_after: timedelta,
    targets: Sequence[Target] = (),
    now: datetime | None = None,
    on_page: Callable[[int], None] | None = None,
) -> HealthReport:
    """One health check of ``repo``'s base: reads, evaluates, updates ``state`` in place
    (the caller saves it: :func:`~.state.locked_state`) and delivers one message per
    problem to each of ``targets`` that has not had it yet."""
    given_now = now
    now = now if now is not None else repo.conn.server_now()
    if not isinstance(stuck_after, timedelta) or stuck_after <= timedelta(0):
        raise InvalidInputError(f"stuck_after must be a positive duration, not {show(stuck_after)}")
    last = state.last_check
    events_since = last - EVENT_OVERLAP if last is not None else now - config.lookback
    try:
        activity = read_activity(
            repo,
            since=_read_since(config, events_since, now),
            # Before the first response this machine's clock stands in for the server's, and
            # it may be hours behind: read past it, so rows written "after" it are not missed.
            until=now if given_now is not None else now + CLOCK_SLACK,
            touched=True,
            open_jobs=True,
            on_page=on_page,
        )
    except QuotaExhaustedError as exc:
        return _quota_report(repo, state, exc, now, events_since, stuck_after, targets)
    if given_now is None:
        # Liveness is judged on the server's clock (learnt from the reads' Date headers),
        # never on this machine's, which may be hours off.
        now = repo.conn.server_now()
    found, rates, deadlines = evaluate(
        activity, config, now=now, events_since=events_since, stuck_after=stuck_after
    )
    problems = _remember(state, found, now=now, events_since=events_since, lookback=config.lookback)
    report = HealthReport(
        checked_at=now,
        events_since=events_since,
        last_check=last,
        stuck_after=stuck_after,
        problems=problems,
        error_rates=rates,
        deadlines=deadlines,
        jobs_read=len(activity.jobs),
        clients_read=len(activity.clients),
    )
    if targets:
        report.notified, report.notify_failed, report.pending = _deliver(
            state, targets, repo.conn.base_id
        )
    return report


def _quota_report(
    repo: Repository,
    state: CheckState,
    exc: QuotaExhaustedError,
    now: datetime,
    events_since: datetime,
    stuck_after: timedelta,
    targets: Sequence[Target],
) -> HealthReport:
    """The base cannot be read: the month's quota is spent.  That is the one problem (a
    condition, reported while it lasts); the event window is not advanced, so the next check
    after the reset still sees what happened meanwhile."""
    problem = Problem(
        key="quota_exhausted",
        kind=ProblemKind.QUOTA_EXHAUSTED,
        message=(
            f"Airtable refuses every data request of base {repo.conn.base_id}: the "
            f"workspace's monthly API quota is spent ({exc.message}). Workers keep their "
            "writes pending until the month resets or the plan is upgraded."
        ),
        at=now,
    )
    seen = state.problems.get(problem.key)
    if seen is None:
        state.problems[problem.key] = SeenProblem(
            kind=problem.kind.value, message=problem.message, at=now, event=False
        )
    report = HealthReport(
        checked_at=now,
        events_since=events_since,
        last_check=state.last_check,
        stuck_after=stuck_after,
        problems=[problem if seen is None else _not_new(problem)],
        error_rates=[],
        deadlines=[],
    )
    if targets:
        report.notified, report.notify_failed, report.pending = _deliver(
            state, targets, repo.conn.base_id
        )
    return report


# -- JSON -----------------------------------------------------------------------------------


def _problem_json(p: Problem) -> dict[str, Any]:
    return {
        "key": p.key,
        "kind": p.kind.value,
        "new": p.new,
        "at": to_airtable(p.at),
        "message": p.message,
        "run_id": p.run_id,
        "client_id": p.client_id,
        "stream": p.stream,
    }


def health_to_json(report: HealthReport) -> dict[str, Any]:
    """The document ``check --json`` prints."""
    return {
        "format_version": HEALTH_FORMAT_VERSION,
        "checked_at": to_airtable(report.checked_at),
        "last_check": to_airtable(report.last_check) if report.last_check else None,
        "events_since": to_airtable(report.events_since),
        "stuck_after_seconds": report.stuck_after.total_seconds(),
        "healthy": report.healthy,
        "exit_code": report.exit_code,
        "problems": [_problem_json(p) for p in report.problems],
        "new_problems": len(report.new_problems),
        "error_rates": [
            {"client_id": r.client_id, "runs": r.runs, "failed": r.failed, "rate": round(r.rate, 4)}
            for r in report.error_rates
        ],
        "schedule": [
            {
                "rule": d.rule,
                "stream": d.stream,
                "deadline": to_airtable(d.deadline),
                "window_start": to_airtable(d.window_start),
                "met_by": d.met_by,
            }
            for d in report.deadlines
        ],
        "rows_read": {"jobs": report.jobs_read, "client_runs": report.clients_read},
        "notifications": {
            "sent": report.notified,
            "failed": report.notify_failed,
            "pending": report.pending,
        },
    }
