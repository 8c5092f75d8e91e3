"""The on-call sections of ``report`` (issue 25), computed from the rows :mod:`.report_data`
read: what needs attention now (the same facts as ``check``: :func:`.health.evaluate` on the
same rows), the period's runs, failures per client and day, errors grouped by class, and the
duration trend and p95 per stream.  Pure: no requests, no plotting library."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ...rows import ClientRunRow, JobRow
from ...statuses import Status, map_status
from .activity import Activity, base_run_id_of, client_id_of, run_time
from .config import CheckConfig
from .health import Problem, evaluate

__all__ = [
    "HEATMAP_CLIENTS",
    "ErrorClass",
    "OnCall",
    "RunLine",
    "StreamTrend",
    "error_class",
    "on_call",
    "percentile",
]

#: The heatmap shows at most this many clients (the most failures): a row per client stays
#: readable, and the page's size stays bounded however many clients the service has.
HEATMAP_CLIENTS = 30
_CLASS_RE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exceeded|Timeout|Warning)\w*)")
_FLOOR = datetime.min.replace(tzinfo=UTC)
_HTTP_RE = re.compile(r"\b(HTTP \d{3}|[A-Z][A-Z_]{5,})\b")


@dataclass(frozen=True)
class RunLine:
    """One job of the period, for the runs table."""

    run_id: str
    stream: int | None
    status: str
    start: datetime | None
    seconds: float | None
    clients: int
    failed_clients: int


@dataclass(frozen=True)
class ErrorClass:
    """Failed client runs sharing an error class (``TimeoutError``, ``HTTP 429``…)."""

    name: str
    count: int
    clients: int
    last_at: datetime | None
    last_message: str


@dataclass(frozen=True)
class StreamTrend:
    """A stream's job durations: the median per day and the period's p95."""

    stream: int
    median_by_day: dict[date, float]
    p95: float
    runs: int


@dataclass(frozen=True)
class OnCall:
    attention: list[Problem]
    runs: list[RunLine]
    failures: dict[str, dict[date, int]]
    errors: list[ErrorClass]
    trends: list[StreamTrend]


def _status(row: JobRow | ClientRunRow) -> Status | None:
    return map_status(row.status_raw).status if row.status_raw is not None else None


def _label(row: JobRow | ClientRunRow) -> str:
    status = _status(row)
    return status.value if status is not None else "Unmapped"


def _seconds(row: JobRow | ClientRunRow) -> float | None:
    if row.start_time is None or row.end_time is None or row.end_time < row.start_time:
        return None
    return (row.end_time - row.start_time).total_seconds()


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in (0, 1]) of non-empty ``values``.

    >>> percentile([1.0, 2.0, 3.0, 4.0, 100.0], 0.95)
    100.0
    """
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def error_class(text: str | None) -> str:
    """The class of an error text: its exception name, else an HTTP status or Airtable error
    type in it, else ``"other"``.

    >>> error_class("TimeoutError: no answer in 60 s"), error_class("got HTTP 503 twice")
    ('TimeoutError', 'HTTP 503')
    """
    if not text:
        return "(no error text)"
    if match := _CLASS_RE.match(text):
        return match.group(1)
    if match := _HTTP_RE.search(text):
        return match.group(1)
    return "other"


def _runs(jobs: list[JobRow], clients: list[ClientRunRow]) -> list[RunLine]:
    per_job: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for row in clients:
        if base := base_run_id_of(row):
            per_job[base] += 1
            failed[base] += _status(row) is Status.FAILED
    lines = [
        RunLine(
            run_id=job.run_id or job.record_id,
            stream=job.stream,
            status=_label(job),
            start=run_time(job),
            seconds=_seconds(job),
            clients=per_job[job.run_id or ""],
            failed_clients=failed[job.run_id or ""],
        )
        for job in jobs
    ]
    return sorted(lines, key=lambda r: (r.start or _FLOOR, r.run_id), reverse=True)


def _failures(clients: list[ClientRunRow]) -> dict[str, dict[date, int]]:
    out: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for row in clients:
        if _status(row) is Status.FAILED and (moment := run_time(row)) is not None:
            out[client_id_of(row)][moment.date()] += 1
    worst = sorted(out, key=lambda c: (-sum(out[c].values()), c))[:HEATMAP_CLIENTS]
    return {c: dict(out[c]) for c in sorted(worst)}


def _errors(clients: list[ClientRunRow]) -> list[ErrorClass]:
    groups: dict[str, list[ClientRunRow]] = defaultdict(list)
    for row in clients:
        if _status(row) is Status.FAILED:
            groups[error_class(row.error_details)].append(row)
    out = []
    for name, rows in groups.items():
        latest = max(rows, key=lambda r: (r.end_time or run_time(r) or _FLOOR, r.run_id or ""))
        out.append(
            ErrorClass(
                name=name,
                count=len(rows),
                clients=len({client_id_of(r) for r in rows}),
                last_at=latest.end_time or run_time(latest),
                last_message=" ".join((latest.error_details or "").split())[:300],
            )
        )
    return sorted(out, key=lambda e: (-e.count, e.name))


def _trends(jobs: list[JobRow]) -> list[StreamTrend]:
    by_stream: dict[int, dict[date, list[float]]] = defaultdict(lambda: defaultdict(list))
    for job in jobs:
        seconds, moment = _seconds(job), run_time(job)
        if job.stream is not None and seconds is not None and moment is not None:
            by_stream[job.stream][moment.date()].append(seconds)
    trends = []
    for stream, days in sorted(by_stream.items()):
        every = [v for values in days.values() for v in values]
        trends.append(
            StreamTrend(
                stream=stream,
                median_by_day={d: percentile(v, 0.5) for d, v in sorted(days.items())},
                p95=percentile(every, 0.95),
                runs=len(every),
            )
        )
    return trends


def on_call(
    activity: Activity,
    period: Activity,
    *,
    now: datetime,
    stuck_after: timedelta,
    config: CheckConfig | None = None,
) -> OnCall:
    """The on-call sections: ``activity`` is every row read (the period, and jobs still
    open however old, as ``check`` reads them), ``period`` the rows whose run time is in the
    period.  "Needs attention now" is what ``check`` would report as lasting conditions."""
    config = config or CheckConfig()
    problems, _, _ = evaluate(
        activity, config, now=now, events_since=activity.since, stuck_after=stuck_after
    )
    return OnCall(
        attention=[p for p in problems if not p.kind.is_event],
        runs=_runs(period.jobs, period.clients),
        failures=_failures(period.clients),
        errors=_errors(period.clients),
        trends=_trends(period.jobs),
    )
