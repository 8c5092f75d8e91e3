"""Rows read back from Airtable: tolerant parses into plain frozen dataclasses.

:class:`ClientRunRow` and :class:`JobRow` never raise for bad stored data (pydantic validates
where data enters, in :class:`~.metrics.ClientMetrics`; reading back must never fail): an
invalid value becomes ``None`` plus a line in ``problems``, so ``sync`` can flag it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import InvalidInputError, InvalidMetricError, show
from .metrics import AGGREGATE_KEYS, ClientMetrics, stored_count
from .schema import TableSpec
from .statuses import Status
from .timeutil import parse_airtable
from .transport.codec import codec_for

__all__ = ["ClientRunRow", "JobRow"]


class _Reader:
    """Reads one record's fields tolerantly, collecting problems instead of raising."""

    def __init__(self, record: Mapping[str, Any], table: TableSpec) -> None:
        if not isinstance(record, Mapping) or not isinstance(record.get("id"), str):
            # A record without an id is not "bad data in the base" but a caller bug.
            raise InvalidInputError(f"not an Airtable record: {show(record)}")
        self.table = table
        self.problems: list[str] = []
        raw_fields = record.get("fields", {})
        if not isinstance(raw_fields, Mapping):
            self.problems.append(f"record fields are not an object: {show(raw_fields)}")
            raw_fields = {}
        self.fields: dict[str, Any] = dict(raw_fields)
        # The one names → logical keys map (the codec); the raw names stay in ``fields``.
        self.logical = codec_for(table).keys(raw_fields)
        self.record_id: str = record["id"]
        self.created_time = self._time_value("createdTime", record.get("createdTime"))

    def _time_value(self, name: str, value: Any) -> datetime | None:
        if value is None:
            return None
        try:
            return parse_airtable(value)
        except InvalidInputError:
            self.problems.append(f"field {name!r} holds {show(value)}: not an ISO-8601 datetime")
            return None

    def time(self, key: str) -> datetime | None:
        if key not in self.logical:
            return None
        return self._time_value(self.table.name_of(key), self.logical[key])

    def text(self, key: str) -> str | None:
        value = self.logical.get(key)
        if value is None or isinstance(value, str):
            return value
        self.problems.append(f"field {self.table.name_of(key)!r} holds {show(value)}: not text")
        return None

    def status(self) -> tuple[str | None, Status | None]:
        raw = self.text("status")
        # Only exact standard values become a Status; legacy aliases ("Success"…) stay in
        # status_raw for the statuses module / sync to map, and are not listed as problems
        # here so that sync does not report them twice.
        status = Status(raw) if raw is not None and raw in Status._value2member_map_ else None
        return raw, status

    def count(self, key: str, *, minimum: int = 0) -> int | None:
        if key not in self.logical or self.logical[key] is None:
            return None
        value = self.logical[key]
        try:
            number = stored_count(key, value)
        except InvalidMetricError as exc:
            reason = exc.reason
        else:
            if number >= minimum:
                return number
            reason = f"less than {minimum}"
        self.problems.append(f"field {self.table.name_of(key)!r} holds {show(value)}: {reason}")
        return None


@dataclass(frozen=True)
class ClientRunRow:
    """A Client Run Results row as read back from the base.

    Parsing with :meth:`from_record` never raises for bad stored data: an invalid value
    becomes ``None`` (or is left out of ``metrics``) and is described in ``problems``.
    ``run_id`` is the raw text (legacy IDs exist in bases; see ``run_ids``).  ``status`` is set
    only when ``status_raw`` is exactly one of the four standard values.  ``fields`` keeps the
    raw Airtable ``fields`` dict so ``sync`` can propose repairs.

    >>> from jobtrack_airtable.schema import load_schema
    >>> row = ClientRunRow.from_record(
    ...     {"id": "recAAAAAAAAAAAAAA", "createdTime": "2025-09-30T14:15:22.000Z",
    ...      "fields": {"Run ID": "250930-141522-Guy-Wilson", "Status": "Success",
    ...                 "Profiles Examined for Scoring": 5, "Apify API Costs": "1.20"}},
    ...     load_schema().client_runs)
    >>> row.status_raw, row.status, row.metrics.profiles_examined
    ('Success', None, 5)
    >>> row.problems
    ["field 'Apify API Costs' holds '1.20': stored as text, not as a number"]
    """

    record_id: str = ""
    created_time: datetime | None = None
    run_id: str | None = None
    client_id: str | None = None
    client_name: str | None = None
    status_raw: str | None = None
    status: Status | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    last_updated: datetime | None = None
    metrics: ClientMetrics = field(default_factory=ClientMetrics)
    system_notes: str | None = None
    error_details: str | None = None
    apify_run_id: str | None = None
    problems: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], table: TableSpec) -> ClientRunRow:
        """Parse a pyairtable record ``{"id", "createdTime", "fields"}`` of the client-runs
        table.  Omitted fields (Airtable omits empty values) are ``None``."""
        r = _Reader(record, table)
        status_raw, status = r.status()
        metrics, metric_problems = ClientMetrics.read_values(r.logical, table)
        values: dict[str, Any] = {
            "record_id": r.record_id,
            "created_time": r.created_time,
            "run_id": r.text("run_id"),
            "client_id": r.text("client_id"),
            "client_name": r.text("client_name"),
            "status_raw": status_raw,
            "status": status,
            "start_time": r.time("start_time"),
            "end_time": r.time("end_time"),
            "last_updated": r.time("last_updated"),
            "metrics": metrics,
            "system_notes": r.text("system_notes"),
            "error_details": r.text("error_details"),
            "apify_run_id": r.text("apify_run_id"),
            "fields": r.fields,
        }
        # A plain dataclass: every value is already checked by the reader, and reading back
        # must never raise (validation belongs where data enters: ClientMetrics.of).
        return cls(**values, problems=r.problems + metric_problems)


@dataclass(frozen=True)
class JobRow:
    """A Job Tracking row as read back from the base; tolerant like :class:`ClientRunRow`.

    ``aggregates`` has one entry per aggregate field the table has enabled
    (:data:`AGGREGATE_KEYS`), ``None`` where the row holds no (valid) value.

    >>> from jobtrack_airtable.schema import load_schema
    >>> job = JobRow.from_record(
    ...     {"id": "recBBBBBBBBBBBBBB", "createdTime": "2025-09-30T14:15:22.000Z",
    ...      "fields": {"Run ID": "250930-141522", "Stream": 1, "Clients Processed": 2}},
    ...     load_schema().jobs)
    >>> job.stream, job.aggregates["clients_processed"], job.aggregates["posts_scored"]
    (1, 2, None)
    """

    record_id: str = ""
    created_time: datetime | None = None
    run_id: str | None = None
    status_raw: str | None = None
    status: Status | None = None
    stream: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    last_updated: datetime | None = None
    system_notes: str | None = None
    aggregates: dict[str, int | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], table: TableSpec) -> JobRow:
        """Parse a pyairtable record of the jobs table.  Never raises for bad stored data."""
        r = _Reader(record, table)
        status_raw, status = r.status()
        values: dict[str, Any] = {
            "record_id": r.record_id,
            "created_time": r.created_time,
            "run_id": r.text("run_id"),
            "status_raw": status_raw,
            "status": status,
            "stream": r.count("stream", minimum=1),
            "start_time": r.time("start_time"),
            "end_time": r.time("end_time"),
            "last_updated": r.time("last_updated"),
            "system_notes": r.text("system_notes"),
            "aggregates": {k: r.count(k) for k in AGGREGATE_KEYS if table.has(k)},
            "fields": r.fields,
        }
        return cls(**values, problems=r.problems)
