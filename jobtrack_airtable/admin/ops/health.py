"""``jobtrack-airtable check``: is the tracking base healthy?  The library behind the command.

Kinds of problem (:class:`ProblemKind`), each with a stable key so a problem is announced
once, not on every check:

* **events**, reported by the first check that sees them and never again:
  ``failed_run`` (a job ``Failed`` since the last check; replaced by ``failing_stream`` when
  the Sentry-style thresholds are set), ``failed_client`` (a client run ``Failed`` since the
  last check), ``missed_run`` (a deadline of a schedule rule passed with no run of its
  stream, see :mod:`.config`), ``long_run`` (a run over its stream's ``max_runtime``) and
  ``too_frequent`` (a run started less than ``min_interval`` after the previous one);
* **conditions**, reported by every check while they last (marked new only the first time,
  and new again if they clear and come back), with one "resolved" message to every target
  that had them once they clear: ``stuck_run`` (a job still ``Running`` with no update for
  longer than the stuck threshold; every job without an End Time is read for it, however
  old), ``error_rate`` (a client failing at least the configured share of its runs),
  ``failing_stream`` (``failures_to_alert`` failed runs in a row, open until
  ``successes_to_resolve`` successes), ``failure_streak`` and ``zero_leads_streak`` (per
  client), ``quota_calls`` and ``records_cap`` (from :mod:`.quota`'s figures),
  ``outbox_backlog`` (changes waiting in the workers' outbox, from
  :func:`~jobtrack_airtable.admin.outbox.outbox_status`).  Client rows
  left ``Running`` under a finished job are ``sync``'s business.
  ``quota_exhausted``: Airtable refuses every data request because the workspace's monthly
  API quota is spent (429 ``PUBLIC_API_BILLING_LIMIT_EXCEEDED``); nothing else can be judged
  until it resets, and workers keep their writes pending meanwhile.  Resolved by the first
  check that reads the base again.

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
from itertools import pairwise
from typing import Any, Protocol, TypeVar

from ...durations import format_duration
from ...errors import InvalidInputError, QuotaExhaustedError, show
from ...rows import ClientRunRow, JobRow
from ...statuses import Status, map_status, staleness
from ...timeutil import to_airtable
from ...transport.repository import Repository
from ..outbox import OutboxItem
from .activity import Activity, base_run_id_of, client_id_of, read_activity, run_time
from .config import CheckConfig, ScheduleRule
from .quota import UsageReport
from .state import CheckState, SeenProblem

_Row = TypeVar("_Row", JobRow, ClientRunRow)

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
    """Every kind of problem, in the order a report lists them.  A new kind is one member
    here, its entry in :data:`_KINDS` and its evaluator's line in :func:`evaluate`."""

    STUCK_RUN = "stuck_run"
    LONG_RUN = "long_run"
    FAILED_RUN = "failed_run"
    FAILING_STREAM = "failing_stream"
    FAILED_CLIENT = "failed_client"
    MISSED_RUN = "missed_run"
    TOO_FREQUENT = "too_frequent"
    ERROR_RATE = "error_rate"
    FAILURE_STREAK = "failure_streak"
    ZERO_LEADS_STREAK = "zero_leads_streak"
    QUOTA_CALLS = "quota_calls"
    RECORDS_CAP = "records_cap"
    QUOTA_EXHAUSTED = "quota_exhausted"
    OUTBOX_BACKLOG = "outbox_backlog"

    @property
    def is_event(self) -> bool:
        return _KINDS[self][1]

    @property
    def label(self) -> str:
        return _KINDS[self][0]


#: kind → (title, is an event)
_KINDS: dict[ProblemKind, tuple[str, bool]] = {
    ProblemKind.STUCK_RUN: ("run stuck", False),
    ProblemKind.LONG_RUN: ("run too long", True),
    ProblemKind.FAILED_RUN: ("run failed", True),
    ProblemKind.FAILING_STREAM: ("stream failing", False),
    ProblemKind.FAILED_CLIENT: ("client run failed", True),
    ProblemKind.MISSED_RUN: ("expected run missing", True),
    ProblemKind.TOO_FREQUENT: ("runs too frequent", True),
    ProblemKind.ERROR_RATE: ("client error rate", False),
    ProblemKind.FAILURE_STREAK: ("client failure streak", False),
    ProblemKind.ZERO_LEADS_STREAK: ("client zero-leads streak", False),
    ProblemKind.QUOTA_CALLS: ("API calls quota", False),
    ProblemKind.RECORDS_CAP: ("records cap", False),
    ProblemKind.QUOTA_EXHAUSTED: ("monthly API quota exhausted", False),
    ProblemKind.OUTBOX_BACKLOG: ("outbox backlog", False),
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
    resolved: list[Problem] = field(default_factory=list)
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


def _failed_between(row: JobRow | ClientRunRow, since: datetime, now: datetime) -> datetime | None:
    """When ``row`` failed, if it is a failed run that ended within ``[since, now]``."""
    moment = _finished_at(row)
    if _status(row) is not Status.FAILED or moment is None or not since <= moment <= now:
        return None
    return moment


def _failure(
    kind: ProblemKind,
    row: JobRow | ClientRunRow,
    headline: str,
    detail: str,
    moment: datetime,
    *,
    stream: int | None = None,
    client_id: str | None = None,
) -> Problem:
    """A failed run or client run as a problem, keyed by its run ID (its record ID when it has
    none) so each failure alerts once; ``detail`` (notes, error) follows the headline if any."""
    return Problem(
        key=f"{kind.value}:{row.run_id or row.record_id}",
        kind=kind,
        message=f"{headline} at {_when(moment)}" + (f": {detail}" if detail else ""),
        at=moment,
        run_id=row.run_id,
        stream=stream,
        client_id=client_id,
    )


def _failed_jobs(jobs: Iterable[JobRow], since: datetime, now: datetime) -> list[Problem]:
    return [
        _failure(
            ProblemKind.FAILED_RUN,
            job,
            f"Run {_job_label(job)} failed",
            _short(job.system_notes),
            moment,
            stream=job.stream,
        )
        for job in jobs
        if (moment := _failed_between(job, since, now)) is not None
    ]


def _failed_clients(
    clients: Iterable[ClientRunRow], since: datetime, now: datetime
) -> list[Problem]:
    out = []
    for row in clients:
        if (moment := _failed_between(row, since, now)) is None:
            continue
        client = client_id_of(row)
        run = base_run_id_of(row) or row.run_id or row.record_id
        out.append(
            _failure(
                ProblemKind.FAILED_CLIENT,
                row,
                f"Client {client} failed in run {run}",
                _short(row.error_details),
                moment,
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


def _long_runs(
    jobs: Iterable[JobRow], config: CheckConfig, since: datetime, now: datetime
) -> list[Problem]:
    out = []
    for job in jobs:
        limit = config.limits(job.stream).max_runtime
        start = run_time(job)
        if limit is None or start is None or _status(job) is None:
            continue
        running = _status(job) is Status.RUNNING
        end = now if running else (job.end_time or job.last_updated)
        crossed = start + limit
        if end is None or end - start <= limit or not since <= crossed <= now:
            continue
        took = format_duration(end - start)
        what = f"has been running for {took}" if running else f"ran for {took}"
        out.append(
            Problem(
                key=f"long_run:{job.run_id or job.record_id}",
                kind=ProblemKind.LONG_RUN,
                message=f"Run {_job_label(job)} {what}, over its max_runtime of "
                f"{format_duration(limit)}",
                at=crossed,
                run_id=job.run_id,
                stream=job.stream,
            )
        )
    return out


def _too_frequent(
    jobs: Iterable[JobRow], config: CheckConfig, since: datetime, now: datetime
) -> list[Problem]:
    by_stream: dict[int | None, list[tuple[datetime, JobRow]]] = defaultdict(list)
    for job in jobs:
        if (t := run_time(job)) is not None:
            by_stream[job.stream].append((t, job))
    out = []
    for stream, runs in by_stream.items():
        gap = config.limits(stream).min_interval
        if gap is None:
            continue
        runs.sort(key=lambda tj: (tj[0], tj[1].run_id or ""))
        for (before, first), (at, job) in pairwise(runs):
            if at - before >= gap or not since <= at <= now:
                continue
            out.append(
                Problem(
                    key=f"too_frequent:{job.run_id or job.record_id}",
                    kind=ProblemKind.TOO_FREQUENT,
                    message=f"Run {_job_label(job)} started {format_duration(at - before)} "
                    f"after run {first.run_id or first.record_id}, less than its min_interval "
                    f"of {format_duration(gap)} (too frequent or duplicated)",
                    at=at,
                    run_id=job.run_id,
                    stream=stream,
                )
            )
    return out


def _finished_in_order(rows: Iterable[_Row]) -> list[_Row]:
    """Finished runs, oldest first by run time."""
    done = [r for r in rows if (s := _status(r)) is not None and s.is_terminal and run_time(r)]
    return sorted(done, key=lambda r: (run_time(r), r.run_id or ""))


def _trailing(rows: Sequence[_Row], test: Callable[[_Row], bool]) -> int:
    """How many of the latest ``rows`` pass ``test``, counting back from the newest."""
    count = 0
    for row in reversed(rows):
        if not test(row):
            break
        count += 1
    return count


def _failed(row: JobRow | ClientRunRow) -> bool:
    return _status(row) is Status.FAILED


def _failing_streams(
    jobs: Iterable[JobRow], config: CheckConfig, now: datetime, open_keys: frozenset[str]
) -> list[Problem]:
    """Sentry's thresholds: a stream is failing after ``failures_to_alert`` failed runs in a
    row and stays so until ``successes_to_resolve`` successful runs in a row."""
    by_stream: dict[int | None, list[JobRow]] = defaultdict(list)
    for job in jobs:
        by_stream[job.stream].append(job)
    out = []
    for stream, rows in sorted(by_stream.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        done = _finished_in_order(rows)
        if not done:
            continue
        key = f"failing_stream:stream{stream}"
        failures = _trailing(done, _failed)
        successes = _trailing(done, lambda r: not _failed(r))
        latest = done[-1]
        if failures >= config.failures_to_alert:
            notes = _short(latest.system_notes)
            message = (
                f"Stream {stream} failed its last {failures} run(s) (alert after "
                f"{config.failures_to_alert}); latest {latest.run_id or latest.record_id}"
                + (f": {notes}" if notes else "")
            )
        elif key in open_keys and successes < config.successes_to_resolve:
            message = (
                f"Stream {stream} is recovering: {successes} of the "
                f"{config.successes_to_resolve} successful run(s) in a row that resolve it"
            )
        else:
            continue
        out.append(
            Problem(
                key=key, kind=ProblemKind.FAILING_STREAM, message=message, at=now, stream=stream
            )
        )
    return out


def _no_leads(row: ClientRunRow) -> bool:
    status = _status(row)
    return status is Status.NO_LEADS or (
        status is Status.COMPLETED and row.metrics.profiles_scored == 0
    )


def _client_streaks(
    clients: Iterable[ClientRunRow], config: CheckConfig, now: datetime
) -> list[Problem]:
    rules = [
        (ProblemKind.FAILURE_STREAK, config.clients.failure_streak, _failed, "failed"),
        (
            ProblemKind.ZERO_LEADS_STREAK,
            config.clients.zero_leads_streak,
            _no_leads,
            "scored no lead",
        ),
    ]
    if all(n is None for _, n, _, _ in rules):
        return []
    by_client: dict[str, list[ClientRunRow]] = defaultdict(list)
    for row in clients:
        by_client[client_id_of(row)].append(row)
    out = []
    for client, rows in sorted(by_client.items()):
        done = _finished_in_order(rows)
        for kind, needed, test, words in rules:
            if needed is None or (streak := _trailing(done, test)) < needed:
                continue
            first = run_time(done[-streak])
            since = f" since {_when(first)}" if first else ""
            out.append(
                Problem(
                    key=f"{kind.value}:{client}",
                    kind=kind,
                    message=f"Client {client} {words} in each of its last {streak} runs"
                    f"{since} (streak threshold {needed})",
                    at=now,
                    client_id=client,
                )
            )
    return out


def _share(value: float) -> str:
    return f"{value * 100:g} %"


def _quota_problems(usage: UsageReport | None, config: CheckConfig, now: datetime) -> list[Problem]:
    if usage is None:
        return []
    out = []
    calls, records, rules = usage.requests, usage.records, config.quota
    # The quota is the workspace's: its figures when known, else this tool's.
    whose, counted, projected = "", calls.counted, calls.projected
    if usage.workspace is not None:
        whose, counted, projected = (
            " (workspace)",
            usage.workspace.counted,
            usage.workspace.projected,
        )
    if (
        rules.calls_share is not None
        and calls.limit is not None
        and counted is not None
        and projected is not None
        and projected > rules.calls_share * calls.limit
    ):
        out.append(
            Problem(
                key=f"quota_calls:{calls.month}",
                kind=ProblemKind.QUOTA_CALLS,
                message=f"API calls {calls.month}{whose}: {projected:,} projected by month end, "
                f"over {_share(rules.calls_share)} of the {usage.plan.name} quota of "
                f"{calls.limit:,} ({counted:,} so far)",
                at=now,
            )
        )
    if (
        rules.records_share is not None
        and records is not None
        and records.total > rules.records_share * records.limit
    ):
        out.append(
            Problem(
                key="records_cap",
                kind=ProblemKind.RECORDS_CAP,
                message=f"The base holds {records.total:,} records, over "
                f"{_share(rules.records_share)} of the {usage.plan.name} cap of "
                f"{records.limit:,} per base",
                at=now,
            )
        )
    return out


def _outbox_problems(
    items: Sequence[OutboxItem] | None, config: CheckConfig, now: datetime
) -> list[Problem]:
    rules = config.outbox
    if items is None or not items or not rules.enabled:
        return []
    oldest = timedelta(seconds=max(i.age_seconds for i in items))
    too_many = rules.max_entries is not None and len(items) > rules.max_entries
    too_old = rules.max_age is not None and oldest > rules.max_age
    if not (too_many or too_old):
        return []
    orphans = sum(not i.owner_alive for i in items)
    errors = sorted({i.error for i in items if i.error})
    detail = f"; last error: {_short(errors[-1])}" if errors else ""
    return [
        Problem(
            key="outbox_backlog",
            kind=ProblemKind.OUTBOX_BACKLOG,
            message=f"{len(items)} change(s) wait in the outbox for Airtable, the oldest for "
            f"{format_duration(oldest)} ({orphans} left by processes no longer running: "
            f"`outbox replay` writes them){detail}",
            at=now,
        )
    ]


def evaluate(
    activity: Activity,
    config: CheckConfig,
    *,
    now: datetime,
    events_since: datetime,
    stuck_after: timedelta,
    open_keys: frozenset[str] = frozenset(),
    usage: UsageReport | None = None,
    outbox: Sequence[OutboxItem] | None = None,
) -> tuple[list[Problem], list[ClientErrorRate], list[DeadlineResult]]:
    """Every problem in ``activity`` (all marked new), the per-client error rates and the
    schedule deadlines checked.  ``open_keys`` are the conditions the previous check left
    open (a failing stream stays open until enough successes); ``usage`` feeds the quota
    rules.  Pure: no requests, no state."""
    rates = _error_rates(activity.clients, now - config.error_rate.window, now)
    deadlines = _deadlines(config.schedule, activity.jobs, events_since, now)
    thresholds = config.failures_to_alert > 1 or config.successes_to_resolve > 1
    problems = [
        *_stuck(activity.jobs, stuck_after, now),
        *_long_runs(activity.jobs, config, events_since, now),
        # With thresholds, single failures are not news: the stream's streak is.
        *(
            _failing_streams(activity.jobs, config, now, open_keys)
            if thresholds
            else _failed_jobs(activity.jobs, events_since, now)
        ),
        *_failed_clients(activity.clients, events_since, now),
        *_missed(deadlines),
        *_too_frequent(activity.jobs, config, events_since, now),
        *_rate_problems(rates, config, now),
        *_client_streaks(activity.clients, config, now),
        *_quota_problems(usage, config, now),
        *_outbox_problems(outbox, config, now),
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
) -> tuple[list[Problem], list[Problem]]:
    """Mark which problems are new, record them, mark the conditions that cleared as
    resolved, forget what is over; returns the problems to report (events already reported
    by an earlier check are left out) and the conditions resolved by this check."""
    reported: list[Problem] = []
    current = {p.key for p in problems}
    for p in problems:
        seen = state.problems.get(p.key)
        if seen is not None and seen.resolved_at is not None:
            seen = None  # it cleared and came back: a new problem (its resolution is moot)
        if seen is not None and p.kind.is_event:
            continue  # announced by an earlier check
        if seen is None:
            state.problems[p.key] = SeenProblem(
                kind=p.kind.value, message=p.message, at=p.at, event=p.kind.is_event
            )
        else:
            seen.message = p.message  # a condition's numbers move; keep the latest words
        reported.append(p if seen is None else _not_new(p))
    resolved: list[Problem] = []
    forget_before = min(events_since, now - lookback)
    for key, seen in list(state.problems.items()):
        if seen.event:
            if seen.at < forget_before:
                del state.problems[key]
            continue
        if key in current:
            continue
        if seen.resolved_at is None:
            seen.resolved_at = now
            resolved.append(
                Problem(key=key, kind=ProblemKind(seen.kind), message=seen.message, at=now)
            )
        # Kept only while a target that had the problem still waits for its resolution.
        if not seen.resolution_pending or seen.resolved_at < forget_before:
            del state.problems[key]
    state.last_check = now
    return reported, resolved


def _not_new(p: Problem) -> Problem:
    return replace(p, new=False)


def _send(target: Target, title: str, body: str, done: set[str]) -> bool:
    if target.send(title, body):
        done.add(target.id)
        return True
    return False


def _deliver(
    state: CheckState, targets: Sequence[Target], base_label: str
) -> tuple[int, int, list[str]]:
    """Send every remembered problem to every target it has not reached yet, and one
    "resolved" message for each cleared condition to every target that had it."""
    sent = failed = 0
    pending: list[str] = []
    for key, seen in sorted(state.problems.items(), key=lambda kv: (kv[1].at, kv[0])):
        label = ProblemKind(seen.kind).label
        if seen.resolved_at is not None:
            title, body = (
                f"jobtrack-airtable {base_label}: resolved: {label}",
                f"Resolved at {_when(seen.resolved_at)}: {seen.message}",
            )
            owed = [t for t in targets if t.id in seen.resolution_pending]
            done = seen.resolved_delivered
        else:
            title, body = f"jobtrack-airtable {base_label}: {label}", seen.message
            owed = [t for t in targets if t.id not in seen.delivered]
            done = seen.delivered
        for target in owed:
            if _send(target, title, body, done):
                sent += 1
            else:
                failed += 1
                if key not in pending:
                    pending.append(key)
        if seen.resolved_at is not None and not seen.resolution_pending:
            del state.problems[key]
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
    usage: UsageReport | None = None,
    outbox: Sequence[OutboxItem] | None = None,
) -> HealthReport:
    """One health check of ``repo``'s base: reads, evaluates, updates ``state`` in place
    (the caller saves it: :func:`~.state.locked_state`) and delivers one message per
    problem to each of ``targets`` that has not had it yet, and one "resolved" message per
    cleared condition to each target that had it.  ``usage`` (:func:`~.quota.usage_report`,
    read by the caller when ``config.quota`` is set) feeds the quota rules."""
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
    open_keys = frozenset(k for k, p in state.problems.items() if p.resolved_at is None)
    found, rates, deadlines = evaluate(
        activity,
        config,
        now=now,
        events_since=events_since,
        stuck_after=stuck_after,
        open_keys=open_keys,
        usage=usage,
        outbox=outbox,
    )
    problems, resolved = _remember(
        state, found, now=now, events_since=events_since, lookback=config.lookback
    )
    report = HealthReport(
        checked_at=now,
        events_since=events_since,
        last_check=last,
        stuck_after=stuck_after,
        problems=problems,
        error_rates=rates,
        deadlines=deadlines,
        resolved=resolved,
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
        "resolved": [_problem_json(p) for p in report.resolved],
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
