"""A job's totals and terminal status, derived from its client rows (SPEC §1.4).

Recomputed from scratch every time, never incremented: running it again gives the same
result and repairs a drifted job row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field

from .metrics import AGGREGATE_KEYS, COUNT_KEYS, JOB_SUM_KEYS, format_time
from .rows import ClientRunRow
from .schema import TableSpec
from .statuses import Status

__all__ = ["JobAggregate", "aggregate", "completion_status"]


class JobAggregate(BaseModel):
    """A job's totals derived from its client-run rows (SPEC §1.4); see :func:`aggregate`.

    ``profile_success_rate``, ``post_success_rate`` and ``total_tokens`` are computed (and
    never written: Airtable computes its own formula fields).

    >>> agg = JobAggregate(clients_processed=1, profiles_examined=4, profiles_scored=3)
    >>> agg.profile_success_rate, agg.post_success_rate
    (0.75, 0.0)
    """

    model_config = ConfigDict(frozen=True)

    clients_processed: int = Field(default=0, ge=0)
    clients_with_errors: int = Field(default=0, ge=0)
    profiles_examined: int = Field(default=0, ge=0)
    profiles_scored: int = Field(default=0, ge=0)
    posts_harvested: int = Field(default=0, ge=0)
    posts_examined: int = Field(default=0, ge=0)
    posts_scored: int = Field(default=0, ge=0)
    profile_tokens: int = Field(default=0, ge=0)
    post_tokens: int = Field(default=0, ge=0)
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def profile_success_rate(self) -> float:
        """Profiles scored / examined; 0 when nothing was examined."""
        return _rate(self.profiles_scored, self.profiles_examined)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def post_success_rate(self) -> float:
        """Posts scored / examined; 0 when nothing was examined."""
        return _rate(self.posts_scored, self.posts_examined)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        """Profile + post scoring tokens."""
        return self.profile_tokens + self.post_tokens

    def counts(self) -> dict[str, int]:
        """The stored aggregate numbers by logical key (comparable with
        :attr:`JobRow.aggregates`).

        >>> JobAggregate(clients_processed=2).counts()["clients_processed"]
        2
        """
        return {key: getattr(self, key) for key in AGGREGATE_KEYS}

    def to_values(self, table: TableSpec, *, times: bool = True) -> dict[str, Any]:
        """The aggregate as values for the jobs table, by logical key (what the tracker hands
        the repository): only fields the base has enabled and that are not computed (never
        ``total_tokens``, never the success rates).  With ``times``, the start and end times
        are included when known.

        >>> from jobtrack_airtable.schema import load_schema
        >>> values = JobAggregate(clients_processed=2).to_values(load_schema().jobs)
        >>> values["clients_processed"], "total_tokens" in values or "duration" in values
        (2, False)
        """
        values: dict[str, Any] = self.counts()
        if times:
            for key in ("start_time", "end_time"):
                moment = getattr(self, key)
                if moment is not None:
                    values[key] = format_time(key, moment)
        return {
            key: value
            for key, value in values.items()
            if table.has(key) and not table.field(key).computed
        }


def _rate(scored: int, examined: int) -> float:
    return scored / examined if examined else 0.0


def aggregate(rows: Iterable[ClientRunRow]) -> JobAggregate:
    """Recompute a job's aggregate from all its client-run rows (never incremented, so running
    it again gives the same result and repairs a drifted job row).

    * ``clients_processed``: number of rows (any status); ``clients_with_errors``: rows whose
      status is exactly ``Failed`` (legacy aliases are normalised by ``sync`` first).
    * sums: unset metrics count as 0.
    * ``start_time`` / ``end_time``: earliest start / latest end among rows that have one,
      compared as instants (mixed offsets are fine) and returned in UTC.

    >>> from datetime import datetime, timedelta, timezone
    >>> from jobtrack_airtable.metrics import ClientMetrics
    >>> east = timezone(timedelta(hours=2))
    >>> rows = [
    ...     ClientRunRow(status=Status.COMPLETED, metrics=ClientMetrics.of(posts_scored=2),
    ...                  start_time=datetime(2025, 9, 30, 15, 0, tzinfo=east)),
    ...     ClientRunRow(status=Status.FAILED, metrics=ClientMetrics.of(posts_scored=1),
    ...                  start_time=datetime(2025, 9, 30, 13, 30, tzinfo=timezone.utc)),
    ... ]
    >>> agg = aggregate(rows)
    >>> agg.clients_processed, agg.clients_with_errors, agg.posts_scored
    (2, 1, 3)
    >>> agg.start_time.isoformat()
    '2025-09-30T13:00:00+00:00'
    """
    sums = dict.fromkeys(JOB_SUM_KEYS, 0)
    processed = errors = 0
    starts: list[datetime] = []
    ends: list[datetime] = []
    for row in rows:
        processed += 1
        if row.status is Status.FAILED:
            errors += 1
        for key in JOB_SUM_KEYS:
            sums[key] += getattr(row.metrics, key) or 0
        if row.start_time is not None:
            starts.append(row.start_time)
        if row.end_time is not None:
            ends.append(row.end_time)
    return JobAggregate(
        clients_processed=processed,
        clients_with_errors=errors,
        **sums,
        start_time=min(starts).astimezone(UTC) if starts else None,
        end_time=max(ends).astimezone(UTC) if ends else None,
    )


def _did_work(row: ClientRunRow) -> bool:
    return any(getattr(row.metrics, key) for key in COUNT_KEYS)


def completion_status(rows: Iterable[ClientRunRow]) -> Status:
    """The job's terminal status when the caller does not force one (SPEC §1.4):

    1. any client ``Failed`` and none ``Completed`` → ``Failed``;
    2. no client processed anything (all ``No Leads To Score``, or no clients) →
       ``No Leads To Score``;
    3. otherwise ``Completed`` (finished, even if some clients failed).

    What "processed" means per row:

    * ``Completed`` counts as processed even when all its metrics are zero or unset: the
      status is the worker's own verdict (the tracker already closes a run with no work as
      ``No Leads To Score``), and some job kinds record no metrics at all.
    * ``No Leads To Score`` never counts, whatever its metrics say.
    * ``Running`` rows (a client run still open, or abandoned by a crashed worker), rows with
      a legacy/unknown status and rows without one are neither completed nor failed: they
      count as processed only if they recorded work (a non-zero count).  So an open run that
      did work makes the job ``Completed`` (``sync`` flags the stale row separately), while an
      open run that did nothing does not turn a no-op job into ``Completed``.

    >>> completion_status([])
    <Status.NO_LEADS: 'No Leads To Score'>
    >>> completion_status([ClientRunRow(status=Status.FAILED),
    ...                    ClientRunRow(status=Status.NO_LEADS)])
    <Status.FAILED: 'Failed'>
    >>> completion_status([ClientRunRow(status=Status.FAILED),
    ...                    ClientRunRow(status=Status.COMPLETED)])
    <Status.COMPLETED: 'Completed'>
    """
    any_failed = any_completed = any_processed = False
    for row in rows:
        if row.status is Status.FAILED:
            any_failed = True
        elif row.status is Status.COMPLETED:
            any_completed = any_processed = True
        elif row.status is not Status.NO_LEADS and _did_work(row):
            any_processed = True
    if any_failed and not any_completed:
        return Status.FAILED
    if not any_processed:
        return Status.NO_LEADS
    return Status.COMPLETED
