"""Typed reads and writes of the two tracking tables (SPEC §3.1).

Every write is an upsert on the natural key (``Run ID``), so a write retried after a lost
response updates the row it already created instead of adding a second one.  Every outgoing
payload is checked against the schema before any request.  Reads of one key use an exact,
escaped formula; reads of one job's client rows use an exact prefix match (``LEFT`` of the
fixed-length base run ID), never a substring ``FIND`` that would also catch other runs.

>>> repo = Repository(conn)                                       # doctest: +SKIP
>>> repo.upsert_client_runs([{"run_id": "250930-141522-Guy-Wilson", "status": "Running"}])
...                                                               # doctest: +SKIP
>>> [r.client_id for r in repo.client_runs_of(BaseRunId("250930-141522"))]  # doctest: +SKIP
['Guy-Wilson']
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pyairtable import formulas as F
from pyairtable.api.types import RecordDict

from .client import Connection
from .errors import (
    DuplicateRowsError,
    InvalidRequestError,
    IteratorExpiredError,
    NotFoundError,
    SchemaViolationError,
    show,
)
from .metrics import ClientRunRow, JobRow
from .recovery import call_with_retry
from .run_ids import BaseRunId, ClientRunId, as_base_run_id, as_client_run_id
from .schema import TableSpec

log = logging.getLogger(__name__)

#: Airtable's hard limits (SPEC §2.4, §2.5).
MAX_WRITE_BATCH = 10
MAX_PAGE_SIZE = 100
#: How often a listing restarts after its offset expired before giving up.
MAX_LISTING_RESTARTS = 3

PageCallback = Callable[[int], None]


def oldest_first(records: Iterable[RecordDict]) -> list[RecordDict]:
    """Records ordered oldest first: by ``createdTime``, ties broken by record ID, so every
    process that sees the same duplicates picks the same survivor."""
    return sorted(records, key=lambda r: (r["createdTime"], r["id"]))


def _context(key: str) -> dict[str, str]:
    """Logging ``extra`` for a natural key: the run ID and, for client runs, the client ID."""
    parts = key.split("-", 2)
    extra = {"run_id": key}
    if len(parts) == 3:
        extra["client_id"] = parts[2]
    return extra


class Repository:
    """The tracking base's two tables, as typed rows, through one :class:`Connection`.

    The connection carries the pyairtable ``Api`` (with the rate limiter mounted), the base
    ID, the schema and the retry policy; every request goes through
    :func:`~jobtrack_airtable.recovery.call_with_retry`.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.schema = conn.schema

    def __repr__(self) -> str:
        return f"Repository(base_id={self.conn.base_id!r})"

    # ---------------------------------------------------------------- helpers

    def spec(self, table: str) -> TableSpec:
        return self.schema.table(table)

    def _table(self, table: str) -> Any:
        return self.conn.table(table)

    def _call(
        self, op: str, fn: Callable[..., Any], *args: Any, key: str | None = None, **kwargs: Any
    ) -> Any:
        return call_with_retry(
            fn,
            *args,
            op=op,
            policy=self.conn.policy,
            context=_context(key) if key else None,
            **kwargs,
        )

    def key_formula(self, table: str, keys: Sequence[str]) -> str:
        """An exact, escaped formula matching rows whose natural key is one of ``keys``.

        >>> repo.key_formula("jobs", ["250930-141522"])            # doctest: +SKIP
        "{Run ID}='250930-141522'"
        """
        field = F.Field(self.spec(table).key_name)
        terms = [F.EQ(field, k) for k in keys]
        return F.to_formula_str(terms[0] if len(terms) == 1 else F.OR(*terms))

    def _named(self, table: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Logical keys → Airtable names, checked against the schema before any request."""
        spec = self.spec(table)
        unknown = [k for k in values if k not in spec.fields]
        fields = spec.to_names({k: v for k, v in values.items() if k not in unknown})
        # Unknown logical keys are refused, never passed through: an Airtable name used as a
        # key ("Run ID") would otherwise overwrite the field of that name -- the natural key
        # included, sending the write to another row.
        by_name = spec.by_name()
        problems = []
        for k in unknown:
            hint = (
                f" (an Airtable name; the logical key is {by_name[k].key!r})"
                if k in by_name
                else ""
            )
            problems.append(f"unknown field {show(k)}{hint}")
        try:
            spec.check_fields(fields)
        except SchemaViolationError as exc:
            problems.extend(exc.problems)
        if problems:
            raise SchemaViolationError(spec.name, problems)
        return fields

    # ---------------------------------------------------------------- reads

    def list_records(
        self,
        table: str,
        *,
        formula: str | None = None,
        fields: Sequence[str] | None = None,
        sort: Sequence[str] | None = None,
        max_records: int | None = None,
        on_page: PageCallback | None = None,
    ) -> list[RecordDict]:
        """Every record matching ``formula``, one request per page of 100.

        Each page is retried on its own under the retry policy; if Airtable expires the
        listing's offset (``LIST_RECORDS_ITERATOR_NOT_AVAILABLE``) the listing restarts from
        the top, since a stale offset cannot be resumed.  ``on_page`` is called with the
        number of records of each page (progress bars).
        """
        t = self._table(table)
        options: dict[str, Any] = {"page_size": MAX_PAGE_SIZE}
        if formula:
            options["formula"] = formula
        if fields:
            options["fields"] = list(fields)
        if sort:
            options["sort"] = list(sort)
        if max_records:
            options["max_records"] = max_records
        for attempt in range(MAX_LISTING_RESTARTS + 1):
            records: list[RecordDict] = []
            page_options = dict(options)
            try:
                while True:
                    response = self._call(
                        f"list {self.spec(table).name}",
                        t.api.request,
                        method="get",
                        url=t.urls.records,
                        fallback=("post", t.urls.records_post),
                        options=page_options,
                    )
                    page = response.get("records", [])
                    records.extend(page)
                    if on_page:
                        on_page(len(page))
                    offset = response.get("offset")
                    if not offset or (max_records and len(records) >= max_records):
                        return records
                    page_options = {**options, "offset": offset}
            except IteratorExpiredError:
                if attempt == MAX_LISTING_RESTARTS:
                    raise
                log.warning(
                    "listing of %s expired after %d records; restarting it",
                    self.spec(table).name,
                    len(records),
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def find(self, table: str, key: str) -> RecordDict | None:
        """The row whose natural key is ``key``; with duplicates, the oldest (and a warning
        naming every duplicate, so ``sync`` can merge them)."""
        rows = self.list_records(table, formula=self.key_formula(table, [key]))
        return self._one(table, key, rows)

    def _one(self, table: str, key: str, rows: list[RecordDict]) -> RecordDict | None:
        if not rows:
            return None
        ordered = oldest_first(rows)
        if len(ordered) > 1:
            log.warning(
                "%d rows in %s share the key %r (%s); using the oldest, %s — run sync to merge",
                len(ordered),
                self.spec(table).name,
                key,
                ", ".join(r["id"] for r in ordered),
                ordered[0]["id"],
                extra=_context(key),
            )
        return ordered[0]

    def find_job(self, run_id: BaseRunId | str) -> JobRow | None:
        """The job row of ``run_id`` (a base run ID), or ``None``."""
        key = as_base_run_id(run_id)
        record = self.find("jobs", key)
        return JobRow.from_record(record, self.schema.jobs) if record else None

    def find_client_run(self, run_id: ClientRunId | str) -> ClientRunRow | None:
        """The client row of ``run_id`` (a client run ID), or ``None``."""
        key = as_client_run_id(run_id)
        record = self.find("client_runs", key)
        return ClientRunRow.from_record(record, self.schema.client_runs) if record else None

    def client_runs_of(
        self, job_run_id: BaseRunId | str, *, on_page: PageCallback | None = None
    ) -> list[ClientRunRow]:
        """Every client row of one job, in ⌈N/100⌉ requests.

        The match is exact: a client run ID is the 13-character base run ID, a hyphen and the
        client ID, so ``LEFT({Run ID}, 14) = '<base>-'`` selects this job's rows and no other
        job's.  Duplicate rows for one client are collapsed to the oldest, with a warning.
        """
        base = as_base_run_id(job_run_id)
        prefix = f"{base}-"
        field = F.Field(self.schema.client_runs.key_name)
        formula = F.to_formula_str(F.EQ(F.LEFT(field, len(prefix)), prefix))
        records = self.list_records("client_runs", formula=formula, on_page=on_page)
        by_key: dict[str, list[RecordDict]] = defaultdict(list)
        key_name = self.schema.client_runs.key_name
        for r in records:
            by_key[r["fields"].get(key_name, "")].append(r)
        rows = []
        for key, group in by_key.items():
            chosen = self._one("client_runs", key, group)
            assert chosen is not None
            rows.append(ClientRunRow.from_record(chosen, self.schema.client_runs))
        return rows

    # ---------------------------------------------------------------- writes

    def upsert(self, table: str, values: Sequence[Mapping[str, Any]]) -> list[RecordDict]:
        """Create or update rows by natural key, ⌈N/10⌉ requests for N rows.

        ``values`` are dicts keyed by logical field key and must each hold the natural key.
        All of them are checked against the schema before the first request.  A key matching
        several rows (which Airtable refuses with a 422) is written to the oldest row by
        record ID, with a warning naming every duplicate: the write is never lost.
        """
        spec = self.spec(table)
        payloads = []
        for v in values:
            if not v.get(spec.natural_key):
                raise ValueError(f"upsert into {spec.name!r} needs {spec.natural_key!r}: {v!r}")
            payloads.append(self._named(table, v))
        results: list[RecordDict] = []
        for start in range(0, len(payloads), MAX_WRITE_BATCH):
            chunk = payloads[start : start + MAX_WRITE_BATCH]
            results.extend(self._upsert_chunk(table, chunk))
        return results

    def _upsert_chunk(self, table: str, chunk: list[dict[str, Any]]) -> list[RecordDict]:
        return self._upsert_chunk_created(table, chunk)[0]

    def _upsert_chunk_created(
        self, table: str, chunk: list[dict[str, Any]]
    ) -> tuple[list[RecordDict], set[str]]:
        """One upsert request by natural key: the records, and the IDs it created."""
        spec = self.spec(table)
        t = self._table(table)
        key_name = spec.key_name
        first_key = str(chunk[0][key_name])
        op = f"upsert {spec.name}"
        try:
            result = self._call(
                op,
                t.batch_upsert,
                [{"fields": f} for f in chunk],
                key_fields=[key_name],
                key=first_key if len(chunk) == 1 else None,
            )
            return list(result["records"]), set(result.get("createdRecords", []))
        except InvalidRequestError as exc:
            # Airtable refuses an upsert whose key matches several rows, with an undocumented
            # 422: rather than parse its message, look the keys up and see.
            if exc.status != 422:
                raise
            # Writing around duplicates only ever updates existing rows.
            return self._upsert_around_duplicates(table, chunk, exc), set()

    def write(
        self, table: str, items: Sequence[tuple[str | None, Mapping[str, Any]]]
    ) -> list[tuple[RecordDict, bool]]:
        """Write rows, ⌈N/10⌉ requests: by record ID where the caller knows it, else by
        natural key (upsert).  Returns each row as written and whether this write created it.

        Writing by record ID matches no key, so a short-lived second row with the same key
        (another host's job-start claim, a duplicate awaiting ``sync``) can never make the
        write fail with Airtable's 422 "records match fieldsToMergeOn".  A row whose record
        ID is gone (``sync`` merged it away) is written again by natural key, once, which
        lands on the surviving row.
        """
        spec = self.spec(table)
        payloads: list[tuple[str | None, dict[str, Any]]] = []
        for rid, v in items:
            if not v.get(spec.natural_key):
                raise ValueError(f"write into {spec.name!r} needs {spec.natural_key!r}: {v!r}")
            payloads.append((rid, self._named(table, v)))
        out: list[tuple[RecordDict, bool]] = []
        for start in range(0, len(payloads), MAX_WRITE_BATCH):
            out.extend(self._write_chunk(table, payloads[start : start + MAX_WRITE_BATCH]))
        return out

    def _write_chunk(
        self, table: str, chunk: list[tuple[str | None, dict[str, Any]]]
    ) -> list[tuple[RecordDict, bool]]:
        spec = self.spec(table)
        if all(rid is None for rid, _ in chunk):
            records, created = self._upsert_chunk_created(table, [f for _, f in chunk])
            return [(r, r["id"] in created) for r in records]
        t = self._table(table)
        body = [{"id": rid, "fields": f} if rid else {"fields": f} for rid, f in chunk]
        try:
            result = self._call(
                f"write {spec.name}", t.batch_upsert, body, key_fields=[spec.key_name]
            )
        except NotFoundError:
            log.warning(
                "a row of %s written by record ID is gone (merged by sync?); writing by "
                "natural key instead",
                spec.name,
            )
            records, created = self._upsert_chunk_created(table, [f for _, f in chunk])
            return [(r, r["id"] in created) for r in records]
        created = set(result.get("createdRecords", []))
        return [(r, r["id"] in created) for r in result["records"]]

    def get(self, table: str, record_id: str) -> RecordDict | None:
        """One row by record ID (1 request), or ``None`` when it is gone."""
        t = self._table(table)
        try:
            record: RecordDict = self._call(f"read {self.spec(table).name}", t.get, record_id)
        except NotFoundError:
            return None
        return record

    def get_many(self, table: str, record_ids: Sequence[str]) -> list[RecordDict]:
        """The rows of ``record_ids`` still present, in ⌈N/100⌉ requests (one formula)."""
        out: list[RecordDict] = []
        ids = list(dict.fromkeys(record_ids))
        for start in range(0, len(ids), MAX_PAGE_SIZE):
            terms = [F.EQ(F.RECORD_ID(), rid) for rid in ids[start : start + MAX_PAGE_SIZE]]
            formula = F.to_formula_str(terms[0] if len(terms) == 1 else F.OR(*terms))
            out.extend(self.list_records(table, formula=formula))
        return out

    def _upsert_around_duplicates(
        self, table: str, chunk: list[dict[str, Any]], original: InvalidRequestError
    ) -> list[RecordDict]:
        spec = self.spec(table)
        key_name = spec.key_name
        keys = [str(f[key_name]) for f in chunk]
        found = self.list_records(table, formula=self.key_formula(table, keys))
        by_key: dict[str, list[RecordDict]] = defaultdict(list)
        for r in found:
            by_key[str(r["fields"].get(key_name))].append(r)
        duplicated = {k: oldest_first(v) for k, v in by_key.items() if len(v) > 1}
        if not duplicated:
            raise original
        records: list[dict[str, Any]] = []
        for fields in chunk:
            key = str(fields[key_name])
            if key in duplicated:
                rows = duplicated[key]
                log.warning(
                    "%d rows in %s share the key %r (%s); writing to the oldest, %s — "
                    "run sync to merge them",
                    len(rows),
                    spec.name,
                    key,
                    ", ".join(r["id"] for r in rows),
                    rows[0]["id"],
                    extra=_context(key),
                )
                records.append({"id": rows[0]["id"], "fields": fields})
            else:
                records.append({"fields": fields})
        t = self._table(table)
        try:
            result = self._call(
                f"upsert {spec.name}", t.batch_upsert, records, key_fields=[key_name]
            )
        except NotFoundError:
            # The oldest row vanished between lookup and write (a concurrent sync merge):
            # the key now has at most one row again, so a plain upsert is safe.  Once.
            log.warning(
                "row vanished while writing around duplicates in %s; upserting again", spec.name
            )
            result = self._call(
                f"upsert {spec.name}",
                t.batch_upsert,
                [{"fields": f} for f in chunk],
                key_fields=[key_name],
            )
        return list(result["records"])

    def upsert_job(self, values: Mapping[str, Any]) -> JobRow:
        """Upsert one job row (1 request); ``values`` by logical key, with ``run_id``."""
        record = self.upsert("jobs", [values])[0]
        return JobRow.from_record(record, self.schema.jobs)

    def upsert_client_runs(self, values: Sequence[Mapping[str, Any]]) -> list[ClientRunRow]:
        """Upsert client rows, ⌈N/10⌉ requests."""
        return [
            ClientRunRow.from_record(r, self.schema.client_runs)
            for r in self.upsert("client_runs", values)
        ]

    def create(self, table: str, values: Sequence[Mapping[str, Any]]) -> list[RecordDict]:
        """Create rows (no key matching), ⌈N/10⌉ requests.  Only for callers that detect
        duplicates themselves (job start claims, sync)."""
        payloads = [self._named(table, v) for v in values]
        t = self._table(table)
        out: list[RecordDict] = []
        for start in range(0, len(payloads), MAX_WRITE_BATCH):
            chunk = payloads[start : start + MAX_WRITE_BATCH]
            out.extend(self._call(f"create {self.spec(table).name}", t.batch_create, chunk))
        return out

    def update_by_id(
        self, table: str, updates: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[RecordDict]:
        """Patch rows by record ID, ⌈N/10⌉ requests (only the fields sent change)."""
        payloads = [{"id": rid, "fields": self._named(table, v)} for rid, v in updates]
        t = self._table(table)
        out: list[RecordDict] = []
        for start in range(0, len(payloads), MAX_WRITE_BATCH):
            chunk = payloads[start : start + MAX_WRITE_BATCH]
            out.extend(self._call(f"update {self.spec(table).name}", t.batch_update, chunk))
        return out

    def delete(self, table: str, record_ids: Sequence[str]) -> int:
        """Delete rows by record ID, ⌈N/10⌉ requests.  A row already gone counts as deleted
        (a delete retried after a lost response must not fail)."""
        t = self._table(table)
        deleted = 0
        ids = list(record_ids)
        for start in range(0, len(ids), MAX_WRITE_BATCH):
            chunk = ids[start : start + MAX_WRITE_BATCH]
            try:
                deleted += len(self._call(f"delete {self.spec(table).name}", t.batch_delete, chunk))
            except NotFoundError:
                # One missing ID fails the whole batch; delete the rest one by one.
                for rid in chunk:
                    try:
                        self._call(f"delete {self.spec(table).name}", t.delete, rid)
                        deleted += 1
                    except NotFoundError:
                        pass
        return deleted

    def claim(self, table: str, values: Mapping[str, Any], marker: str) -> RecordDict | None:
        """Create a row carrying ``marker`` in its System Notes and keep it only if it is the
        oldest row of its key (2 requests).  Returns the winning row, or ``None`` (after
        deleting our copies) when another process holds the key.

        A create retried after a lost response may leave several copies of our row: all but
        the oldest are deleted, so the start still ends with one row.
        """
        spec = self.spec(table)
        key = str(values[spec.natural_key])
        self.create(table, [values])
        rows = oldest_first(self.list_records(table, formula=self.key_formula(table, [key])))
        notes_name = spec.name_of("system_notes")
        ours = [r for r in rows if marker in str(r["fields"].get(notes_name, ""))]
        winner = rows[0] if rows else None
        won = winner is not None and any(r["id"] == winner["id"] for r in ours)
        losers = [r["id"] for r in ours if not won or r["id"] != winner["id"]]  # type: ignore[index]
        if losers:
            if won:
                log.warning(
                    "removing %d extra copies of %s left by a retried create",
                    len(losers),
                    key,
                    extra=_context(key),
                )
            self.delete(table, losers)
        return winner if won else None

    def require_single(self, table: str, key: str) -> RecordDict:
        """The one row of ``key``; :class:`DuplicateRowsError` if there are several and
        :class:`NotFoundError` if none — for callers where a guess would be wrong."""
        rows = self.list_records(table, formula=self.key_formula(table, [key]))
        if len(rows) > 1:
            raise DuplicateRowsError(
                self.spec(table).name, key, [r["id"] for r in oldest_first(rows)]
            )
        if not rows:
            raise NotFoundError(
                f"no row with key {key!r} in {self.spec(table).name!r}",
                status=404,
                error_type="NOT_FOUND",
            )
        return rows[0]
