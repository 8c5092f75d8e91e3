"""The rows of both tracking tables in a time window: what ``check`` and ``report`` read.

:func:`read_activity` costs ⌈J/100⌉ + ⌈C/100⌉ requests for the J job rows and C client rows it
returns (one paged, filtered listing per table).  The window is applied in the query
(``filterByFormula``), by each row's *run time* (Start Time, else the record's created time,
like ``runs list``), optionally widened to rows *touched* in the window (Last Updated in it: a
long job that started before the window and failed inside it) and to jobs still *open* (no
End Time: a stuck job started a week ago still matters to a health check).  The formula goes
with its meaning as a test of one row (:func:`_window_match`), which a repository reading the
local mirror applies instead: no request beyond the mirror's refresh.

This module never prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyairtable import formulas as F
from pyairtable.api.types import RecordDict

from ...errors import InvalidInputError, show
from ...rows import ClientRunRow, JobRow
from ...schema import TableSpec
from ...timeutil import utcnow
from ...transport.repository import Repository, oldest_first
from ..legacy import recognise

__all__ = ["Activity", "base_run_id_of", "client_id_of", "read_activity", "run_time"]

PageCallback = Callable[[int], None]


@dataclass(frozen=True)
class Activity:
    """Job rows and client rows read for the window ``[since, until]`` (UTC)."""

    since: datetime
    until: datetime
    jobs: list[JobRow]
    clients: list[ClientRunRow]


def run_time(row: JobRow | ClientRunRow) -> datetime | None:
    """The moment a run is placed in time by: its Start Time, else the row's created time."""
    return row.start_time or row.created_time


def base_run_id_of(row: JobRow | ClientRunRow) -> str | None:
    """The base run ID a row belongs to, legacy forms recognised (``None`` if unrecognised)."""
    if not row.run_id:
        return None
    found = recognise(row.run_id)
    return str(found.base) if found.base is not None else None


def _one_per_key(records: list[RecordDict], spec: TableSpec) -> list[RecordDict]:
    seen: set[str] = set()
    kept = []
    for record in oldest_first(records):
        key = record["fields"].get(spec.key_name)
        if isinstance(key, str) and key:
            if key in seen:
                continue
            seen.add(key)
        kept.append(record)
    return kept


def client_id_of(row: ClientRunRow) -> str:
    """A client row's client: its Client ID, else what follows the base in its Run ID."""
    if row.client_id:
        return row.client_id
    parts = (row.run_id or "").split("-", 2)
    return parts[2] if len(parts) == 3 else (row.run_id or row.record_id)


def _between(moment: Any, since: datetime, until: datetime) -> Any:
    # pyairtable renders datetimes as DATETIME_PARSE('…Z'): escaped, never interpolated.
    return F.AND(F.NOT(F.IS_BEFORE(moment, since)), F.NOT(F.IS_AFTER(moment, until)))


def _window_formula(
    spec: TableSpec, since: datetime, until: datetime, *, touched: bool, open_jobs: bool
) -> str:
    moment: Any = F.CREATED_TIME()
    if spec.has("start_time"):
        start = F.Field(spec.name_of("start_time"))
        moment = F.IF(start, start, F.CREATED_TIME())
    terms = [_between(moment, since, until)]
    if touched and spec.has("last_updated"):
        terms.append(_between(F.Field(spec.name_of("last_updated")), since, until))
    if open_jobs and spec.has("end_time"):
        terms.append(F.NOT(F.Field(spec.name_of("end_time"))))
    return F.to_formula_str(terms[0] if len(terms) == 1 else F.OR(*terms))


#: A formula's ``#ERROR!`` (a date cell that is not a date): a filter drops the row.
_ERROR: Any = object()


def formula_moment(value: Any) -> datetime | None:
    """A cell as a formula's date argument: ``None`` for blank, the datetime of ISO-8601
    text (as Airtable returns date cells), else :data:`_ERROR`.

    >>> formula_moment("2025-09-30T14:15:22.000Z").isoformat()
    '2025-09-30T14:15:22+00:00'
    >>> formula_moment("") is None, formula_moment("soon") is _ERROR
    (True, True)
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return _ERROR
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        return _ERROR
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def as_sent(moment: datetime) -> datetime:
    """``moment`` as a formula carries it: pyairtable writes milliseconds, truncated."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def run_moment(record: RecordDict, spec: TableSpec) -> Any:
    """``IF({Start Time}, {Start Time}, CREATED_TIME())`` of one listed record."""
    if spec.has("start_time"):
        start = record["fields"].get(spec.name_of("start_time"))
        if start not in (None, "", [], False, 0):
            return formula_moment(start)
    return formula_moment(record["createdTime"])


def _between_match(moment: Any, since: datetime, until: datetime) -> Any:
    # NOT(IS_BEFORE(m, since)) AND NOT(IS_AFTER(m, until)): a blank date makes both tests
    # blank, and NOT(blank) is true, so a blank cell is "between" (as the formula says).
    if moment is _ERROR:
        return _ERROR
    return moment is None or since <= moment <= until


def _window_match(
    spec: TableSpec, since: datetime, until: datetime, *, touched: bool, open_jobs: bool
) -> Callable[[RecordDict], bool]:
    """:func:`_window_formula` as a test of one listed record (what the mirror answers
    with): the same terms, in the same order, an error ending the ``OR`` as it does there."""
    since, until = as_sent(since), as_sent(until)
    last_updated = spec.name_of("last_updated") if touched and spec.has("last_updated") else None
    end_time = spec.name_of("end_time") if open_jobs and spec.has("end_time") else None

    def match(record: RecordDict) -> bool:
        # OR(...) stops at its first true term, and at an error (false in a filter).
        first = _between_match(run_moment(record, spec), since, until)
        if first is _ERROR or first:
            return first is not _ERROR
        fields = record["fields"]
        if last_updated is not None:
            touched_term = _between_match(formula_moment(fields.get(last_updated)), since, until)
            if touched_term is _ERROR or touched_term:
                return touched_term is not _ERROR
        return end_time is not None and fields.get(end_time) in (None, "", [], False, 0)

    return match


def read_activity(
    repo: Repository,
    *,
    since: datetime,
    until: datetime | None = None,
    touched: bool = False,
    open_jobs: bool = False,
    on_page: PageCallback | None = None,
) -> Activity:
    """Every job and client row whose run time is in ``[since, until]`` (``until`` defaults
    to now); with ``touched`` also rows whose Last Updated is in it, with ``open_jobs`` also
    every job without an End Time, whenever it started."""
    until = until if until is not None else utcnow()
    for name, value in (("since", since), ("until", until)):
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise InvalidInputError(f"{name} must be an aware datetime, not {show(value)}")
    if since > until:
        raise InvalidInputError(
            f"the window starts ({since.isoformat()}) after it ends ({until.isoformat()})"
        )
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    schema = repo.schema
    job_formula = _window_formula(schema.jobs, since, until, touched=touched, open_jobs=open_jobs)
    client_formula = _window_formula(
        schema.client_runs, since, until, touched=touched, open_jobs=False
    )
    # Duplicate rows of one key (a retried create; ``sync`` merges them) would count a run
    # twice: like every reader of the repository, keep the oldest.
    job_match = _window_match(schema.jobs, since, until, touched=touched, open_jobs=open_jobs)
    client_match = _window_match(schema.client_runs, since, until, touched=touched, open_jobs=False)
    job_records = _one_per_key(
        repo.list_records("jobs", formula=job_formula, on_page=on_page, where=job_match),
        schema.jobs,
    )
    client_records = _one_per_key(
        repo.list_records(
            "client_runs", formula=client_formula, on_page=on_page, where=client_match
        ),
        schema.client_runs,
    )
    jobs = [JobRow.from_record(r, schema.jobs) for r in job_records]
    clients = [ClientRunRow.from_record(r, schema.client_runs) for r in client_records]
    return Activity(since=since, until=until, jobs=jobs, clients=clients)
