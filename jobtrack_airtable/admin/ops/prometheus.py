"""The base's health as Prometheus metrics: what ``jobtrack-airtable metrics`` writes (the
node-exporter textfile collector's format) and ``metrics serve`` serves.

Computed from the base by :func:`read_metrics_rows` (one paged, filtered read per table:
⌈J/100⌉ + ⌈C/100⌉ requests; the one place the rows come from, so a local mirror can stand in)
and from the limiter's request counters (no request).  Naming follows Prometheus'
conventions (base units, ``_total`` for counters, ``_seconds``, ``_timestamp_seconds``):

* ``jobtrack_job_last_success_timestamp_seconds{stream}``, ``jobtrack_job_last_start_timestamp_
  seconds{stream}``: the batch-job pattern's "when did it last work";
* ``jobtrack_job_duration_seconds{stream}``: a histogram of the finished jobs' durations;
* ``jobtrack_jobs_total{stream,status}``, ``jobtrack_client_runs_total{status}``: runs this
  calendar month (UTC); the counters reset when the month does, which ``rate()`` handles;
* ``jobtrack_jobs_running{stream}``;
* ``jobtrack_api_calls_month``, ``jobtrack_api_calls_quota``: this month's counted calls and
  the plan's quota (absent when unlimited);
* ``jobtrack_client_consecutive_failures{client}``: only for clients whose latest runs
  failed, at most :data:`MAX_CLIENT_SERIES` of them (the longest streaks): cardinality stays
  bounded however many clients the service has.

``prometheus_client`` is an extra (``pip install 'jobtrack-airtable[prometheus]'``): this
module imports it, nothing in the worker imports this module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from ...errors import ConfigError, LimiterUnavailableError, MissingExtraError
from ...files import write_atomically
from ...rows import ClientRunRow, JobRow
from ...settings import Settings
from ...statuses import Status, map_status
from ...transport.repository import Repository
from .activity import Activity, client_id_of, read_activity, run_time
from .quota import PLANS

try:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import generate_latest
except ImportError:  # pragma: no cover - exercised by the CLI's message test
    raise MissingExtraError(
        "metrics need prometheus_client: pip install 'jobtrack-airtable[prometheus]'"
    ) from None

__all__ = [
    "DURATION_BUCKETS",
    "MAX_CLIENT_SERIES",
    "BaseMetrics",
    "build_registry",
    "exposition",
    "families",
    "read_metrics_rows",
    "write_textfile",
]

#: Job durations span seconds (a quiet stream) to hours (a full rescoring).
DURATION_BUCKETS: Final = (30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0)
#: The per-client series (failing clients only) never exceed this many.
MAX_CLIENT_SERIES: Final = 20
#: How far back the rows are read at least (the month's start may be closer): a stream's
#: "last success" is found if it is more recent than this.
MIN_LOOKBACK: Final = timedelta(days=31)
_STATUSES: Final = tuple(s.value for s in Status)


@dataclass(frozen=True)
class BaseMetrics:
    """What the metrics are computed from: the rows, this month's counted calls, the plan."""

    now: datetime
    activity: Activity
    api_calls: int | None
    quota: int | None


def _month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def read_metrics_rows(
    repo: Repository, *, now: datetime, on_page: Callable[[int], None] | None = None
) -> Activity:
    """The rows the metrics need: this month's and at least the last :data:`MIN_LOOKBACK`'s,
    and every job still open.  ⌈J/100⌉ + ⌈C/100⌉ requests."""
    since = min(_month_start(now), now - MIN_LOOKBACK)
    return read_activity(repo, since=since, until=now, open_jobs=True, on_page=on_page)


def read_base_metrics(
    repo: Repository,
    settings: Settings,
    *,
    now: datetime,
    on_page: Callable[[int], None] | None = None,
    count_calls: bool = True,
) -> BaseMetrics:
    """The rows (:func:`read_metrics_rows`) and this month's counted API calls."""
    from ...limiter import usage_counts

    calls: int | None = None
    if count_calls:
        try:
            calls = usage_counts(settings, f"{now:%Y-%m}", base_id=repo.conn.base_id).total
        except (ConfigError, LimiterUnavailableError):
            calls = None  # no counter store (rate limiting off): the series is left out
    return BaseMetrics(
        now=now,
        activity=read_metrics_rows(repo, now=now, on_page=on_page),
        api_calls=calls,
        quota=PLANS[settings.airtable_plan].monthly_requests,
    )


def _status(row: JobRow | ClientRunRow) -> Status | None:
    return map_status(row.status_raw).status if row.status_raw is not None else None


def _stream(job: JobRow) -> str:
    return str(job.stream) if job.stream is not None else "none"


def _failing_clients(clients: Iterable[ClientRunRow]) -> list[tuple[str, int]]:
    by_client: dict[str, list[ClientRunRow]] = defaultdict(list)
    for row in clients:
        status = _status(row)
        if status is not None and status.is_terminal and run_time(row) is not None:
            by_client[client_id_of(row)].append(row)
    streaks = []
    for client, rows in by_client.items():
        rows.sort(key=lambda r: (run_time(r), r.run_id or ""))
        streak = 0
        for row in reversed(rows):
            if _status(row) is not Status.FAILED:
                break
            streak += 1
        if streak:
            streaks.append((client, streak))
    streaks.sort(key=lambda cs: (-cs[1], cs[0]))
    return streaks[:MAX_CLIENT_SERIES]


class _Families:
    """The metric families of one computation (no ``_created`` series: these figures are
    recomputed from the base, not counted in this process)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _histogram(name: str, doc: str, observed: dict[str, list[float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["stream"])
    for stream, values in sorted(observed.items()):
        buckets = [(_le(b), float(sum(v <= b for v in values))) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([stream], buckets, sum(values))
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


def _gauge(name: str, doc: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def families(data: BaseMetrics) -> list[Metric]:
    """Every metric family, computed from ``data``."""
    month = _month_start(data.now)
    starts: dict[str, float] = {}
    successes: dict[str, float] = {}
    running: dict[str, float] = defaultdict(float)
    durations: dict[str, list[float]] = defaultdict(list)
    jobs_total: dict[tuple[str, str], int] = defaultdict(int)
    for job in data.activity.jobs:
        stream, status, start = _stream(job), _status(job), run_time(job)
        if start is None or status is None:
            continue
        starts[stream] = max(start.timestamp(), starts.get(stream, 0.0))
        if status is Status.RUNNING:
            running[stream] += 1
            continue
        end = job.end_time or job.last_updated
        if status is not Status.FAILED and end is not None:
            successes[stream] = max(end.timestamp(), successes.get(stream, 0.0))
        if start >= month:
            jobs_total[stream, status.value] += 1
            if end is not None and end >= start:
                durations[stream].append((end - start).total_seconds())
    clients_total = dict.fromkeys(_STATUSES, 0)  # every status present, zero included
    for row in data.activity.clients:
        row_status, start = _status(row), run_time(row)
        if row_status is not None and start is not None and start >= month:
            clients_total[row_status.value] += 1

    out: list[Metric] = [
        _gauge(
            "jobtrack_job_last_success_timestamp_seconds",
            "End of the latest job that completed without failing, per stream.",
            "stream",
            successes,
        ),
        _gauge(
            "jobtrack_job_last_start_timestamp_seconds",
            "Start of the latest job, per stream.",
            "stream",
            starts,
        ),
        _gauge("jobtrack_jobs_running", "Jobs still Running, per stream.", "stream", running),
        _histogram(
            "jobtrack_job_duration_seconds",
            "Duration of the finished jobs started this month, per stream.",
            durations,
        ),
    ]
    jobs = CounterMetricFamily(
        "jobtrack_jobs",
        "Jobs started this calendar month (UTC), per stream and status.",
        labels=["stream", "status"],
    )
    for (stream, label), count in sorted(jobs_total.items()):
        jobs.add_metric([stream, label], count)
    clients = CounterMetricFamily(
        "jobtrack_client_runs",
        "Client runs started this calendar month (UTC), per status.",
        labels=["status"],
    )
    for label, count in clients_total.items():
        clients.add_metric([label], count)
    failing = _gauge(
        "jobtrack_client_consecutive_failures",
        f"Failed runs in a row of the clients whose latest run failed (at most "
        f"{MAX_CLIENT_SERIES} clients, the longest streaks).",
        "client",
        {c: float(n) for c, n in _failing_clients(data.activity.clients)},
    )
    out += [jobs, clients, failing]
    if data.api_calls is not None:
        out.append(
            GaugeMetricFamily(
                "jobtrack_api_calls_month",
                "API calls counted this calendar month (UTC) by the limiter's store.",
                value=data.api_calls,
            )
        )
    if data.quota is not None:
        out.append(
            GaugeMetricFamily(
                "jobtrack_api_calls_quota", "The plan's monthly API call quota.", value=data.quota
            )
        )
    out.append(
        GaugeMetricFamily(
            "jobtrack_metrics_generated_timestamp_seconds",
            "When these metrics were computed.",
            value=data.now.timestamp(),
        )
    )
    return out


def build_registry(data: BaseMetrics) -> CollectorRegistry:
    """A fresh registry holding every series, computed from ``data``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families(data)))
    return registry


def exposition(data: BaseMetrics) -> bytes:
    """The text exposition format (what a scrape returns)."""
    return generate_latest(build_registry(data))


def write_textfile(path: str | Path, data: BaseMetrics) -> None:
    """Write the exposition atomically (the textfile collector must never read half a
    file): a temporary file in the same directory, renamed over the old one."""
    write_atomically(Path(path), exposition(data).decode("utf-8"))
