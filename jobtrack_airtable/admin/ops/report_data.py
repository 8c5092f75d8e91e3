"""The numbers behind ``jobtrack-airtable report``: runs, durations, errors, tokens and cost.

:func:`collect_report` reads the period once (:func:`~.activity.read_activity`: ⌈J/100⌉ +
⌈C/100⌉ requests) and summarises it; :func:`report_to_json` is the ``report --json`` shape;
:mod:`.report_html` draws it.  Everything is computed from the client rows and job rows
themselves (never from stored aggregates, which a base may lack or hold wrong), runs are placed
in the period by their run time (Start Time, else created time), and days are UTC days.

This module never prints and needs no plotting library.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ...rows import ClientRunRow, JobRow
from ...statuses import Status, map_status
from ...timeutil import to_airtable, utcnow
from ...transport.repository import Repository
from .activity import Activity, client_id_of, read_activity, run_time
from .report_oncall import OnCall, on_call

__all__ = [
    "REPORT_FORMAT_VERSION",
    "STATUS_ORDER",
    "ClientSummary",
    "ReportData",
    "collect_report",
    "report_to_json",
]

REPORT_FORMAT_VERSION = 1
#: The stuck threshold of "needs attention now" when the caller gives none (the library's
#: default JOBTRACK_STALE_AFTER_MINUTES).
DEFAULT_STUCK_AFTER = timedelta(minutes=120)
#: Status labels in display order; "Unmapped" is a stored value outside the four (SPEC §1.3).
STATUS_ORDER = (*(s.value for s in Status), "Unmapped")


def _status_label(raw: str | None) -> str:
    status = map_status(raw).status if raw is not None else None
    return status.value if status is not None else "Unmapped"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds()


@dataclass
class ClientSummary:
    """One client over the period."""

    client_id: str
    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    profile_tokens: int = 0
    post_tokens: int = 0
    apify_cost: Decimal = Decimal(0)
    durations: list[float] = field(default_factory=list)
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def failed(self) -> int:
        return self.statuses[Status.FAILED.value]

    @property
    def finished(self) -> int:
        """Runs no longer ``Running`` (the error rate's denominator)."""
        return self.runs - self.statuses[Status.RUNNING.value]

    @property
    def error_rate(self) -> float:
        return self.failed / self.finished if self.finished else 0.0

    @property
    def tokens(self) -> int:
        return self.profile_tokens + self.post_tokens

    @property
    def mean_seconds(self) -> float | None:
        return sum(self.durations) / len(self.durations) if self.durations else None

    @property
    def max_seconds(self) -> float | None:
        return max(self.durations) if self.durations else None


@dataclass
class ReportData:
    """A period of a base, summarised."""

    base_id: str
    since: datetime
    until: datetime
    generated_at: datetime
    jobs: int
    client_runs: int
    runs_per_day: dict[date, Counter[str]]
    stream_durations: dict[int, list[float]]
    clients: list[ClientSummary]
    #: The on-call sections (needs attention now, runs, heatmap, error classes, trends).
    on_call: OnCall | None = None

    @property
    def days(self) -> list[date]:
        """Every UTC day of the period, oldest first (days without runs included)."""
        first, last = self.since.date(), self.until.date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    @property
    def total_tokens(self) -> int:
        return sum(c.tokens for c in self.clients)

    @property
    def total_cost(self) -> Decimal:
        return sum((c.apify_cost for c in self.clients), Decimal(0))

    @property
    def failed_client_runs(self) -> int:
        return sum(c.failed for c in self.clients)

    def job_status_totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.runs_per_day.values():
            total.update(counts)
        return total

    def clients_with_errors(self) -> list[ClientSummary]:
        """Clients with at least one failed run, most failures first."""
        return sorted(
            (c for c in self.clients if c.failed),
            key=lambda c: (-c.failed, -c.error_rate, c.client_id),
        )

    def slowest_clients(self, limit: int = 10) -> list[ClientSummary]:
        """Clients by mean client-run duration, slowest first."""
        timed = [c for c in self.clients if c.mean_seconds is not None]
        timed.sort(key=lambda c: (-(c.mean_seconds or 0.0), c.client_id))
        return timed[:limit]


def _summarise_clients(rows: list[ClientRunRow]) -> list[ClientSummary]:
    by_client: dict[str, ClientSummary] = {}
    for row in rows:
        cid = client_id_of(row)
        summary = by_client.setdefault(cid, ClientSummary(cid))
        summary.runs += 1
        summary.statuses[_status_label(row.status_raw)] += 1
        m = row.metrics
        summary.profile_tokens += m.profile_tokens or 0
        summary.post_tokens += m.post_tokens or 0
        summary.apify_cost += m.apify_costs or Decimal(0)
        if (seconds := _seconds(row.start_time, row.end_time)) is not None:
            summary.durations.append(seconds)
        if map_status(row.status_raw).status is Status.FAILED:
            at = row.end_time or row.last_updated or run_time(row)
            if summary.last_error_at is None or (at is not None and at >= summary.last_error_at):
                summary.last_error = row.error_details
                summary.last_error_at = at
    return sorted(by_client.values(), key=lambda c: c.client_id)


def _per_day(jobs: list[JobRow]) -> dict[date, Counter[str]]:
    out: dict[date, Counter[str]] = defaultdict(Counter)
    for job in jobs:
        moment = run_time(job)
        if moment is not None:
            out[moment.date()][_status_label(job.status_raw)] += 1
    return dict(out)


def _per_stream(jobs: list[JobRow]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = defaultdict(list)
    for job in jobs:
        seconds = _seconds(job.start_time, job.end_time)
        if job.stream is not None and seconds is not None:
            out[job.stream].append(seconds)
    return {stream: sorted(values) for stream, values in sorted(out.items())}


def collect_report(
    repo: Repository,
    *,
    since: datetime,
    until: datetime | None = None,
    on_page: Callable[[int], None] | None = None,
    stuck_after: timedelta = DEFAULT_STUCK_AFTER,
    now: datetime | None = None,
) -> ReportData:
    """Summarise the runs of ``repo``'s base whose run time is in ``[since, until]``.  Jobs
    still open are read too, however old (one read: the same ⌈J/100⌉ + ⌈C/100⌉ requests),
    for the "needs attention now" section, which judges them with ``stuck_after`` at ``now``
    (default: this machine's clock; also the report's generation time)."""
    now = now if now is not None else utcnow()
    activity = read_activity(repo, since=since, until=until or now, open_jobs=True, on_page=on_page)
    period = _in_period(activity)
    return ReportData(
        base_id=repo.conn.base_id,
        since=period.since,
        until=period.until,
        generated_at=now,
        jobs=len(period.jobs),
        client_runs=len(period.clients),
        runs_per_day=_per_day(period.jobs),
        stream_durations=_per_stream(period.jobs),
        clients=_summarise_clients(period.clients),
        on_call=on_call(activity, period, now=now, stuck_after=stuck_after),
    )


def _in_period(activity: Activity) -> Activity:
    """The rows whose run time is in the window (not the older open jobs)."""

    def inside(row: JobRow | ClientRunRow) -> bool:
        moment = run_time(row)
        return moment is not None and activity.since <= moment <= activity.until

    return replace(
        activity,
        jobs=[j for j in activity.jobs if inside(j)],
        clients=[c for c in activity.clients if inside(c)],
    )


def report_to_json(data: ReportData) -> dict[str, Any]:
    """The document ``report --json`` prints (durations in seconds, cost as a number)."""
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "base_id": data.base_id,
        "since": to_airtable(data.since),
        "until": to_airtable(data.until),
        "generated_at": to_airtable(data.generated_at),
        "jobs": data.jobs,
        "client_runs": data.client_runs,
        "failed_client_runs": data.failed_client_runs,
        "total_tokens": data.total_tokens,
        "total_apify_cost": float(data.total_cost),
        "runs_per_day": {
            d.isoformat(): {s: data.runs_per_day.get(d, Counter())[s] for s in STATUS_ORDER}
            for d in data.days
        },
        "stream_durations_seconds": {str(k): v for k, v in data.stream_durations.items()},
        "clients": [
            {
                "client_id": c.client_id,
                "runs": c.runs,
                "statuses": dict(c.statuses),
                "failed": c.failed,
                "finished": c.finished,
                "error_rate": round(c.error_rate, 4),
                "profile_tokens": c.profile_tokens,
                "post_tokens": c.post_tokens,
                "tokens": c.tokens,
                "apify_cost": float(c.apify_cost),
                "mean_seconds": c.mean_seconds,
                "max_seconds": c.max_seconds,
                "last_error": c.last_error,
            }
            for c in data.clients
        ],
        "on_call": _on_call_json(data.on_call),
    }


def _on_call_json(oc: OnCall | None) -> dict[str, Any] | None:
    if oc is None:
        return None
    return {
        "attention": [
            {"key": p.key, "kind": p.kind.value, "message": p.message} for p in oc.attention
        ],
        "runs": [
            {
                "run_id": r.run_id,
                "stream": r.stream,
                "status": r.status,
                "start": to_airtable(r.start) if r.start else None,
                "seconds": r.seconds,
                "clients": r.clients,
                "failed_clients": r.failed_clients,
            }
            for r in oc.runs
        ],
        "failures_per_client_day": {
            client: {d.isoformat(): n for d, n in sorted(days.items())}
            for client, days in oc.failures.items()
        },
        "errors_by_class": [
            {
                "class": e.name,
                "count": e.count,
                "clients": e.clients,
                "last_at": to_airtable(e.last_at) if e.last_at else None,
                "last_message": e.last_message,
            }
            for e in oc.errors
        ],
        "streams": [
            {
                "stream": t.stream,
                "runs": t.runs,
                "p95_seconds": t.p95,
                "median_seconds_by_day": {d.isoformat(): v for d, v in t.median_by_day.items()},
            }
            for t in oc.trends
        ],
    }
