"""Read-only views of runs: the library behind ``jobtrack-airtable runs list`` / ``runs show``.

:func:`list_runs` lists jobs newest first, optionally since a moment and with one status;
:func:`show_run` gathers one job, its client rows and its aggregates *computed from those rows*
(so it works on a base without the optional aggregate fields, and shows where the stored
values drifted).  :func:`job_to_json`, :func:`client_to_json` and :func:`detail_to_json` give
the stable JSON shapes the CLI prints with ``--json``.

Request cost: ``list_runs`` filters by time in the query (``filterByFormula``), so a listing
costs ⌈J/100⌉ requests for the J jobs in the window; the status filter, ordering and limit are
applied here because legacy statuses (``Success``…) must match their standard status and rows
without a Start Time must still sort by their created time.  ``show_run`` costs 2 requests
plus one per further 100 client rows.  Each formula goes with its meaning as a test of one
row (``where=``), so a repository reading the local mirror answers without a request.

This module never prints.

>>> from datetime import datetime, UTC
>>> parse_since("7d", now=datetime(2025, 10, 8, 12, 0, tzinfo=UTC)).isoformat()
'2025-10-01T12:00:00+00:00'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pyairtable import formulas as F
from pyairtable.api.types import RecordDict

from ..aggregation import JobAggregate, aggregate, completion_status
from ..errors import InvalidInputError, NotFoundError, show
from ..rows import ClientRunRow, JobRow
from ..statuses import Status, map_status, parse_status
from ..timeutil import to_airtable, utcnow
from ..transport.repository import Repository, oldest_first
from .legacy import recognise
from .ops.activity import as_sent, run_moment

__all__ = [
    "JSON_FORMAT_VERSION",
    "RunDetail",
    "aggregate_to_json",
    "client_to_json",
    "detail_to_json",
    "job_to_json",
    "list_runs",
    "parse_since",
    "run_time",
    "runs_to_json",
    "show_run",
]

#: Version of the JSON documents of ``runs list --json`` / ``runs show --json``.
JSON_FORMAT_VERSION = 1

PageCallback = Callable[[int], None]

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """The moment ``--since`` means, as an aware UTC datetime.

    Accepts a duration back from ``now`` (``90s``, ``30m``, ``12h``, ``7d``, ``2w``), a date
    (``2025-09-30``, midnight UTC) or an ISO-8601 datetime (``2025-09-30T14:00:00Z``; without
    an offset it is taken as UTC, like every time this tool shows).

    >>> parse_since("2025-09-30").isoformat()
    '2025-09-30T00:00:00+00:00'
    >>> parse_since("yesterday")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidInputError: invalid --since 'yesterday': ...
    """
    now = now if now is not None else utcnow()
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"invalid --since {show(text)}: empty")
    if match := _DURATION_RE.match(text):
        amount, unit = int(match.group(1)), match.group(2).lower()
        try:
            return (now - timedelta(**{_UNITS[unit]: amount})).astimezone(UTC)
        except OverflowError:
            raise InvalidInputError(
                f"invalid --since {show(text)}: reaches before the year 1; give a shorter "
                "duration or a date (2025-09-30)"
            ) from None
    stripped = text.strip()
    try:
        if len(stripped) == 10:
            day = date.fromisoformat(stripped)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        if stripped.endswith(("Z", "z")):
            stripped = stripped[:-1] + "+00:00"
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise InvalidInputError(
            f"invalid --since {show(text)}: give a duration (30m, 12h, 7d, 2w), "
            "a date (2025-09-30) or an ISO-8601 datetime"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def run_time(row: JobRow | ClientRunRow) -> datetime | None:
    """The moment a run is ordered by: its Start Time, else the row's created time."""
    return row.start_time or row.created_time


def _since_formula(repo: Repository, since: datetime) -> str:
    """``{Start Time}`` (or the created time when it is empty) is not before ``since``."""
    jobs = repo.schema.jobs
    moment: Any = F.CREATED_TIME()
    if jobs.has("start_time"):
        start = F.Field(jobs.name_of("start_time"))
        moment = F.IF(start, start, F.CREATED_TIME())
    # pyairtable renders the datetime as DATETIME_PARSE('…Z'): escaped, never interpolated.
    return F.to_formula_str(F.NOT(F.IS_BEFORE(moment, since.astimezone(UTC))))


def _since_match(repo: Repository, since: datetime) -> Callable[[RecordDict], bool]:
    """:func:`_since_formula` as a test of one listed record (what the mirror answers with)."""
    spec, bound = repo.schema.jobs, as_sent(since.astimezone(UTC))

    def match(record: RecordDict) -> bool:
        moment = run_moment(record, spec)
        # A cell that is not a date is the formula's #ERROR!: a filter drops the row.
        return isinstance(moment, datetime) and moment >= bound

    return match


def _newest_first_key(row: JobRow) -> tuple[datetime, str]:
    moment = run_time(row) or datetime.min.replace(tzinfo=UTC)
    return moment, row.run_id or ""


def list_runs(
    repo: Repository,
    *,
    status: Status | str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    on_page: PageCallback | None = None,
) -> list[JobRow]:
    """Jobs newest first (by Start Time, else created time).

    ``status`` matches standard and legacy spellings alike (``--status completed`` also lists
    a legacy ``Success`` row; its stored value is shown as is); ``since`` keeps runs that
    started at or after that moment; ``limit`` caps the number returned.  ``on_page`` is
    called with the size of every page read (progress bars).
    """
    wanted = parse_status(status) if status is not None else None
    if limit is not None and limit < 1:
        raise InvalidInputError(f"--limit must be at least 1, not {show(limit)}")
    formula = _since_formula(repo, since) if since is not None else None
    match = _since_match(repo, since) if since is not None else None
    records = repo.list_records("jobs", formula=formula, on_page=on_page, where=match)
    rows = [JobRow.from_record(r, repo.schema.jobs) for r in records]
    # The formula already kept the runs since ``since``; select_runs does no harm repeating it.
    return select_runs(rows, status=wanted, since=since, limit=limit)


def select_runs(
    rows: Iterable[JobRow],
    *,
    status: Status | str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[JobRow]:
    """The rows :func:`list_runs` would return from ``rows`` already read (an archive's).

    >>> select_runs([], status="completed", limit=5)
    []
    """
    wanted = parse_status(status) if status is not None else None
    if limit is not None and limit < 1:
        raise InvalidInputError(f"--limit must be at least 1, not {show(limit)}")

    def keep(row: JobRow) -> bool:
        if wanted is not None and map_status(row.status_raw).status is not wanted:
            return False
        moment = run_time(row)
        return since is None or (moment is not None and moment >= since)

    kept = [r for r in rows if keep(r)]
    kept.sort(key=_newest_first_key, reverse=True)
    return kept[:limit] if limit is not None else kept


# -- one run --------------------------------------------------------------------------------


@dataclass
class RunDetail:
    """One job as :func:`show_run` found it.

    ``job`` is ``None`` for orphan client rows (the job row is missing); ``duplicates`` are
    further job rows sharing the key (``job`` is the oldest).  ``computed`` is recomputed from
    ``clients``; ``stored`` holds the job row's aggregate fields the base has (``None`` where
    a field is empty); ``drift`` maps each stored aggregate that disagrees with the computed
    value to ``(stored, computed)`` (an empty stored value counts only once the job has
    finished).  ``suggested_status`` is the completion status the
    client rows imply (SPEC §1.4).
    """

    query: str
    base_run_id: str | None
    job: JobRow | None
    duplicates: list[JobRow]
    clients: list[ClientRunRow]
    computed: JobAggregate
    stored: dict[str, int | None] = field(default_factory=dict)
    drift: dict[str, tuple[int | None, int]] = field(default_factory=dict)
    suggested_status: Status = Status.NO_LEADS


def show_run(repo: Repository, run_id: str, *, on_page: PageCallback | None = None) -> RunDetail:
    """The job ``run_id``, its client rows, and its aggregates computed on the fly.

    ``run_id`` is a base run ID (``250930-141522``); a client run ID or a legacy form is
    accepted too and resolved to its job (the row is looked up under both the text given and
    its standard form, in one request).  Raises :class:`~.errors.NotFoundError` when neither a
    job row nor any client row exists.
    """
    query = _Query.of(run_id)
    records = oldest_first(
        repo.list_records(
            "jobs",
            formula=repo.key_formula("jobs", query.keys),
            on_page=on_page,
            where=repo.key_match("jobs", query.keys),
        )
    )
    jobs = [JobRow.from_record(r, repo.schema.jobs) for r in records]
    clients = repo.client_runs_of(query.base, on_page=on_page) if query.base is not None else []
    names = (repo.schema.jobs.name, repo.schema.client_runs.name)
    return _detail(query, jobs, clients, where=names)


@dataclass(frozen=True)
class _Query:
    """A run ID as asked for: the text, its job's base run ID (``None`` if unrecognised, with
    the reason) and the keys a job row may be stored under (both forms)."""

    raw: str
    base: str | None
    keys: list[str]
    reason: str | None

    @classmethod
    def of(cls, run_id: str) -> _Query:
        if not isinstance(run_id, str) or not run_id.strip():
            raise InvalidInputError(f"invalid run ID {show(run_id)}: empty")
        raw = run_id.strip()
        found = recognise(raw)
        base = str(found.base) if found.base is not None else None
        keys = list(dict.fromkeys(k for k in (base, raw) if k))
        return cls(raw, base, keys, found.reason if base is None else None)


def find_run(
    run_id: str, jobs: Iterable[JobRow], clients: Iterable[ClientRunRow], *, where: tuple[str, str]
) -> RunDetail:
    """:func:`show_run` over rows already read (an archive's): the job rows stored under
    ``run_id``'s keys, its client rows, the same detail.

    >>> find_run("250930-141522", [], [], where=("jobs", "clients"))
    Traceback (most recent call last):
    jobtrack_airtable.errors.NotFoundError: no run '250930-141522' in 'jobs' or 'clients'
    """
    query = _Query.of(run_id)
    floor = datetime.min.replace(tzinfo=UTC)
    matching = sorted(
        (j for j in jobs if j.run_id in query.keys),
        key=lambda j: (j.created_time or floor, j.record_id),
    )
    prefix = f"{query.base}-" if query.base is not None else None
    mine = [c for c in clients if prefix is not None and (c.run_id or "").startswith(prefix)]
    return _detail(query, matching, mine, where=where)


def _detail(
    query: _Query, jobs: list[JobRow], clients: list[ClientRunRow], *, where: tuple[str, str]
) -> RunDetail:
    """The :class:`RunDetail` of one run's job rows (oldest first) and client rows;
    :class:`~.errors.NotFoundError` naming ``where`` (the two tables) when both are empty."""
    if not jobs and not clients:
        hint = f" ({query.reason})" if query.reason else ""
        raise NotFoundError(f"no run {query.raw!r} in {where[0]!r} or {where[1]!r}{hint}")
    clients = sorted(
        clients, key=lambda c: (run_time(c) or datetime.min.replace(tzinfo=UTC), c.run_id or "")
    )
    computed = aggregate(clients)
    job = jobs[0] if jobs else None
    stored = dict(job.aggregates) if job is not None else {}
    counts = computed.counts()
    # An empty aggregate of a job still running is expected (it is written on completion);
    # on a finished job it is drift like any wrong value.
    finished = job is not None and map_status(job.status_raw).status not in (None, Status.RUNNING)
    drift = {
        k: (v, counts[k])
        for k, v in stored.items()
        if k in counts and v != counts[k] and (v is not None or finished)
    }
    return RunDetail(
        query=query.raw,
        base_run_id=query.base,
        job=job,
        duplicates=jobs[1:],
        clients=clients,
        computed=computed,
        stored=stored,
        drift=drift,
        suggested_status=completion_status(clients),
    )


# -- JSON shapes ----------------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return to_airtable(value) if value is not None else None


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def job_to_json(job: JobRow) -> dict[str, Any]:
    """A job row as JSON-ready data (times as Airtable UTC strings; stored aggregates only
    for fields the base has)."""
    return {
        "record_id": job.record_id,
        "run_id": job.run_id,
        "status": job.status_raw,
        "standard_status": _status_value(job.status_raw),
        "stream": job.stream,
        "start_time": _time(job.start_time),
        "end_time": _time(job.end_time),
        "last_updated": _time(job.last_updated),
        "created_time": _time(job.created_time),
        "duration_seconds": _duration(job.start_time, job.end_time),
        "aggregates": dict(job.aggregates),
        "system_notes": job.system_notes,
        "problems": list(job.problems),
    }


def client_to_json(row: ClientRunRow) -> dict[str, Any]:
    """A client row as JSON-ready data (costs as numbers, never strings)."""
    return {
        "record_id": row.record_id,
        "run_id": row.run_id,
        "client_id": row.client_id,
        "client_name": row.client_name,
        "status": row.status_raw,
        "standard_status": _status_value(row.status_raw),
        "start_time": _time(row.start_time),
        "end_time": _time(row.end_time),
        "last_updated": _time(row.last_updated),
        "created_time": _time(row.created_time),
        "duration_seconds": _duration(row.start_time, row.end_time),
        "metrics": {k: _number(v) for k, v in row.metrics.values().items()},
        "apify_run_id": row.apify_run_id,
        "error_details": row.error_details,
        "system_notes": row.system_notes,
        "problems": list(row.problems),
    }


def _status_value(raw: str | None) -> str | None:
    status = map_status(raw).status if raw is not None else None
    return status.value if status is not None else None


def aggregate_to_json(agg: JobAggregate) -> dict[str, Any]:
    """A computed aggregate as JSON-ready data, rates and total tokens included."""
    out: dict[str, Any] = dict(agg.counts())
    out.update(
        total_tokens=agg.total_tokens,
        profile_success_rate=round(agg.profile_success_rate, 4),
        post_success_rate=round(agg.post_success_rate, 4),
        start_time=_time(agg.start_time),
        end_time=_time(agg.end_time),
    )
    return out


def detail_to_json(detail: RunDetail) -> dict[str, Any]:
    """The document ``runs show --json`` prints."""
    return {
        "format_version": JSON_FORMAT_VERSION,
        "query": detail.query,
        "base_run_id": detail.base_run_id,
        "job": job_to_json(detail.job) if detail.job is not None else None,
        "duplicate_jobs": [job_to_json(j) for j in detail.duplicates],
        "clients": [client_to_json(c) for c in detail.clients],
        "computed": aggregate_to_json(detail.computed),
        "stored": dict(detail.stored),
        "drift": {k: {"stored": s, "computed": c} for k, (s, c) in detail.drift.items()},
        "suggested_status": detail.suggested_status.value,
    }


def runs_to_json(rows: list[JobRow], *, filters: Mapping[str, Any]) -> dict[str, Any]:
    """The document ``runs list --json`` prints: the filters applied and the jobs."""
    return {
        "format_version": JSON_FORMAT_VERSION,
        "filters": dict(filters),
        "count": len(rows),
        "runs": [job_to_json(r) for r in rows],
    }
