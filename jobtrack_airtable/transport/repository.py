"""Typed reads and writes of the two tracking tables (SPEC §3.1).

Every write is an upsert on the natural key (``Run ID``), so a write retried after a lost
response updates the row it already created instead of adding a second one.  Every outgoing
payload is keyed for the wire and checked against the schema by the codec (:mod:`.codec`)
before any request; every answer is keyed back by configured name.  Reads of one key use an
exact, escaped formula; reads of one job's client rows use an exact prefix match (``LEFT`` of the
fixed-length base run ID), never a substring ``FIND`` that would also catch other runs.

Code above the repository uses the two per-table objects, which speak logical keys and return
typed rows; the table-keyed methods of :class:`Repository` below them return raw records (the
layer ``sync`` plans and applies on).

>>> repo = Repository(conn)                                       # doctest: +SKIP
>>> repo.client_runs.upsert([{"run_id": "250930-141522-Guy-Wilson", "status": "Running"}])
...                                                               # doctest: +SKIP
>>> [r.client_id for r in repo.client_runs.of_job("250930-141522")]  # doctest: +SKIP
['Guy-Wilson']
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from pyairtable import formulas as F
from pyairtable.api.types import RecordDict

from ..airtable import MAX_PAGE_SIZE, write_batches
from ..errors import (
    InvalidFormulaError,
    InvalidRequestError,
    IteratorExpiredError,
    NotFoundError,
)
from ..rows import ClientRunRow, JobRow
from ..run_ids import BaseRunId, as_base_run_id, as_client_run_id
from ..schema import TableSpec
from . import renames
from .client import Connection
from .codec import Codec, codec_for
from .recovery import classified

log = logging.getLogger(__name__)

#: How often a listing restarts after its offset expired before giving up.
MAX_LISTING_RESTARTS = 3

PageCallback = Callable[[int], None]
#: Called with the number of records of each batch written (progress bars).
BatchCallback = Callable[[int], None]

#: What a formula selects, as a test of one listed record (``Repository.list_records``).
RecordMatch = Callable[[RecordDict], bool]

T = TypeVar("T")
R = TypeVar("R")


def formula_text(value: Any) -> str:
    """A cell as text, as a formula compares it with text: blank is ``""``, a number its
    shortest form (``3``, not ``3.0``), anything else (a list, an object) nothing a run ID
    could equal.

    >>> [formula_text(v) for v in (None, "250930-141522", 3.0, 2.5, ["a"])]
    ['', '250930-141522', '3', '2.5', '']
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else repr(value)
    return ""


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

    The connection carries the pyairtable ``Api`` (its session's adapter paces, counts and
    retries every request), the base ID and the schema; pyairtable pages and batches, and
    its errors are classified here (:func:`~jobtrack_airtable.transport.recovery.classified`).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.schema = conn.schema
        #: The two tables as typed rows: what the code above the repository uses.
        self.jobs = JobsTable(self)
        self.client_runs = ClientRunsTable(self)

    def __repr__(self) -> str:
        return f"Repository(base_id={self.conn.base_id!r})"

    # ---------------------------------------------------------------- helpers

    def spec(self, table: str) -> TableSpec:
        return self.schema.table(table)

    def _table(self, table: str) -> Any:
        return self.conn.table(table)

    def codec(self, table: str) -> Codec:
        """The table's codec: logical keys ⇄ the wire (names, or pinned IDs)."""
        return codec_for(self.spec(table))

    def pages(self, table: str) -> Iterator[list[RecordDict]]:
        """Every page of ``table``, unfiltered, each one request as pyairtable pages it,
        records keyed by configured name; for readers that page ahead themselves (sync).
        An expired offset raises :class:`~jobtrack_airtable.errors.IteratorExpiredError`:
        the caller restarts from the top."""
        codec = self.codec(table)
        t = self._table(table)
        with classified():
            for page in t.iterate(page_size=MAX_PAGE_SIZE, **codec.options):
                yield [codec.decode_record(r) for r in page]

    def _learn_renames(self, table: str) -> bool:
        """Read the base's schema (1 request) and learn what the pinned fields are called
        now; a warning names every rename.  True when something was renamed."""
        from .meta import fetch_meta  # meta imports this module's neighbours: keep it lazy

        meta = fetch_meta(self.conn, learn_names=False)
        fresh = renames.learn(self.conn.base_id, self.schema, meta)
        for rename in fresh:
            log.warning(
                "in %s, %s in the base (pinned by ID: reads and writes are unaffected; "
                "formulas now use the new name -- update the schema file's name when "
                "convenient)",
                self.spec(rename.table_key).name,
                rename,
            )
        return bool(fresh)

    def key_match(self, table: str, keys: Sequence[str]) -> RecordMatch:
        """:meth:`key_formula` as a test of one listed record (``where=``): text equal to one
        of ``keys`` exactly (case-sensitive, as Airtable's ``=`` on text)."""
        name, wanted = self.spec(table).key_name, frozenset(keys)
        return lambda record: formula_text(record["fields"].get(name)) in wanted

    def key_formula(self, table: str, keys: Sequence[str]) -> str:
        """An exact, escaped formula matching rows whose natural key is one of ``keys``.

        >>> repo.key_formula("jobs", ["250930-141522"])            # doctest: +SKIP
        "{Run ID}='250930-141522'"
        """
        field = F.Field(self.spec(table).key_name)
        terms = [F.EQ(field, k) for k in keys]
        return F.to_formula_str(terms[0] if len(terms) == 1 else F.OR(*terms))

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
        where: RecordMatch | None = None,
    ) -> list[RecordDict]:
        """Every record matching ``formula``, one request per page of 100.

        pyairtable pages (each page retried on its own by the adapter); if Airtable expires the
        listing's offset (``LIST_RECORDS_ITERATOR_NOT_AVAILABLE``) the listing restarts from
        the top, since a stale offset cannot be resumed.  ``on_page`` is called with the
        number of records of each page (progress bars).

        ``where`` is what ``formula`` selects, as a test of one listed record: a repository
        that holds the rows itself (the mirror's, :mod:`~jobtrack_airtable.admin.mirror.reads`)
        answers with it instead of asking the base.  The base is always asked the formula.
        """
        codec = self.codec(table)
        options: dict[str, Any] = {"page_size": MAX_PAGE_SIZE, **codec.options}
        if fields:
            options["fields"] = [codec.ref(f) for f in fields]
        if sort:
            options["sort"] = [
                f"-{codec.ref(s[1:])}" if s.startswith("-") else codec.ref(s) for s in sort
            ]
        if max_records:
            options["max_records"] = max_records
        if not formula:
            return self._list(table, options, max_records, on_page)
        base_id = self.conn.base_id
        sent = codec.formula(formula, renames.current_names(base_id)) if codec.uses_ids else formula
        try:
            return self._list(table, {**options, "formula": sent}, max_records, on_page)
        except InvalidFormulaError:
            # A formula names fields, and a pinned field may have been renamed in the base:
            # learn the current names (1 request) and retry once.  Nothing to learn, or the
            # same formula again: the formula is wrong, not stale.
            if not codec.uses_ids or not self._learn_renames(table):
                raise
            retry = codec.formula(formula, renames.current_names(base_id))
            if retry == sent:
                raise
            return self._list(table, {**options, "formula": retry}, max_records, on_page)

    def _list(
        self,
        table: str,
        options: dict[str, Any],
        max_records: int | None,
        on_page: PageCallback | None,
    ) -> list[RecordDict]:
        t = self._table(table)
        codec = self.codec(table)
        for attempt in range(MAX_LISTING_RESTARTS + 1):
            records: list[RecordDict] = []
            try:
                with classified():
                    for raw in t.iterate(**options):
                        page = [codec.decode_record(r) for r in raw]
                        records.extend(page)
                        if on_page:
                            on_page(len(page))
                return records
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

    def get(self, table: str, record_id: str) -> RecordDict | None:
        """One row by record ID (1 request), or ``None`` when it is gone."""
        t = self._table(table)
        codec = self.codec(table)
        try:
            with classified():
                record: RecordDict = t.get(record_id, **codec.options)
        except NotFoundError:
            return None
        return codec.decode_record(record)

    def get_many(self, table: str, record_ids: Sequence[str]) -> list[RecordDict]:
        """The rows of ``record_ids`` still present, in ⌈N/100⌉ requests (one formula)."""

        ids = list(dict.fromkeys(record_ids))
        found: list[RecordDict] = []
        for start in range(0, len(ids), MAX_PAGE_SIZE):
            terms = [F.EQ(F.RECORD_ID(), rid) for rid in ids[start : start + MAX_PAGE_SIZE]]
            formula = F.to_formula_str(terms[0] if len(terms) == 1 else F.OR(*terms))
            found.extend(self.list_records(table, formula=formula))
        return found

    def client_runs_of(
        self, job_run_id: BaseRunId | str, *, on_page: PageCallback | None = None
    ) -> list[ClientRunRow]:
        """Every client row of one job, in ⌈N/100⌉ requests (``repo.client_runs.of_job``)."""
        return self.client_runs.of_job(job_run_id, on_page=on_page)

    # ---------------------------------------------------------------- writes

    def upsert(
        self,
        table: str,
        values: Sequence[Mapping[str, Any]],
        *,
        on_batch: BatchCallback | None = None,
    ) -> list[RecordDict]:
        """Create or update rows by natural key, ⌈N/10⌉ requests for N rows.

        ``values`` are dicts keyed by logical field key and must each hold the natural key.
        All of them are checked against the schema before the first request.  A key matching
        several rows (which Airtable refuses with a 422) is written to the oldest row by
        record ID, with a warning naming every duplicate: the write is never lost.
        """
        written = self.write(table, [(None, v) for v in values], on_batch=on_batch)
        return [record for record, _ in written]

    def write(
        self,
        table: str,
        items: Sequence[tuple[str | None, Mapping[str, Any]]],
        *,
        on_batch: BatchCallback | None = None,
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
        codec = self.codec(table)
        payloads: list[tuple[str | None, dict[str, Any]]] = []
        for rid, v in items:
            if not v.get(spec.natural_key):
                raise ValueError(f"write into {spec.name!r} needs {spec.natural_key!r}: {v!r}")
            payloads.append((rid, codec.encode(v)))
        written: list[tuple[RecordDict, bool]] = []
        for batch in write_batches(payloads):
            by_id = self._write_by_id(table, batch) if any(rid for rid, _ in batch) else None
            if by_id is None:
                records, created = self._upsert_by_key(table, [f for _, f in batch])
                by_id = [(r, r["id"] in created) for r in records]
            written.extend(by_id)
            if on_batch:
                on_batch(len(batch))
        return written

    def _write_by_id(
        self, table: str, batch: Sequence[tuple[str | None, dict[str, Any]]]
    ) -> list[tuple[RecordDict, bool]] | None:
        """One upsert addressing the known record IDs (``batch``: fields keyed for the wire);
        ``None`` when one of them is gone."""
        spec = self.spec(table)
        codec = self.codec(table)
        body = [{"id": rid, "fields": f} if rid else {"fields": f} for rid, f in batch]
        try:
            with classified():
                result = self._table(table).batch_upsert(
                    body, key_fields=[codec.wire(spec.natural_key)], **codec.options
                )
        except NotFoundError:
            log.warning(
                "a row of %s written by record ID is gone (merged by sync?); writing by "
                "natural key instead",
                spec.name,
            )
            return None
        created = set(result.get("createdRecords", []))
        return [(codec.decode_record(r), r["id"] in created) for r in result["records"]]

    def _upsert_by_key(
        self, table: str, chunk: list[dict[str, Any]]
    ) -> tuple[list[RecordDict], set[str]]:
        """One upsert request by natural key (``chunk``: fields keyed for the wire): the
        records, and the IDs it created."""
        spec = self.spec(table)
        codec = self.codec(table)
        t = self._table(table)
        try:
            with classified():
                result = t.batch_upsert(
                    [{"fields": f} for f in chunk],
                    key_fields=[codec.wire(spec.natural_key)],
                    **codec.options,
                )
            records = [codec.decode_record(r) for r in result["records"]]
            return records, set(result.get("createdRecords", []))
        except InvalidRequestError as exc:
            # Airtable refuses an upsert whose key matches several rows, with an undocumented
            # 422: rather than parse its message, look the keys up and see.
            if exc.status != 422:
                raise
            # Writing around duplicates only ever updates existing rows.
            return self._upsert_around_duplicates(table, chunk, exc), set()

    def _upsert_around_duplicates(
        self, table: str, chunk: list[dict[str, Any]], original: InvalidRequestError
    ) -> list[RecordDict]:
        spec = self.spec(table)
        codec = self.codec(table)
        key_name = spec.key_name
        key_ref = codec.wire(spec.natural_key)
        keys = [str(f[key_ref]) for f in chunk]
        found = self.list_records(table, formula=self.key_formula(table, keys))
        by_key: dict[str, list[RecordDict]] = defaultdict(list)
        for r in found:
            by_key[str(r["fields"].get(key_name))].append(r)
        duplicated = {k: oldest_first(v) for k, v in by_key.items() if len(v) > 1}
        if not duplicated:
            raise original
        records: list[dict[str, Any]] = []
        for fields in chunk:
            key = str(fields[key_ref])
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
        options = {"key_fields": [key_ref], **codec.options}
        try:
            with classified():
                result = t.batch_upsert(records, **options)
        except NotFoundError:
            # The oldest row vanished between lookup and write (a concurrent sync merge):
            # the key now has at most one row again, so a plain upsert is safe.  Once.
            log.warning(
                "row vanished while writing around duplicates in %s; upserting again", spec.name
            )
            with classified():
                result = t.batch_upsert([{"fields": f} for f in chunk], **options)
        return [codec.decode_record(r) for r in result["records"]]

    def create(
        self,
        table: str,
        values: Sequence[Mapping[str, Any]],
        *,
        on_batch: BatchCallback | None = None,
    ) -> list[RecordDict]:
        """Create rows (no key matching), ⌈N/10⌉ requests.  Only for callers that detect
        duplicates themselves (job start claims, sync)."""
        codec = self.codec(table)
        payloads = [codec.encode(v) for v in values]
        t = self._table(table)
        created: list[RecordDict] = []
        for batch in write_batches(payloads):
            with classified():
                created.extend(
                    codec.decode_record(r) for r in t.batch_create(list(batch), **codec.options)
                )
            if on_batch:
                on_batch(len(batch))
        return created

    def update_by_id(
        self,
        table: str,
        updates: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        on_batch: BatchCallback | None = None,
    ) -> list[RecordDict]:
        """Patch rows by record ID, ⌈N/10⌉ requests (only the fields sent change)."""
        codec = self.codec(table)
        payloads = [{"id": rid, "fields": codec.encode(v)} for rid, v in updates]
        t = self._table(table)
        updated: list[RecordDict] = []
        for batch in write_batches(payloads):
            with classified():
                updated.extend(
                    codec.decode_record(r) for r in t.batch_update(list(batch), **codec.options)
                )
            if on_batch:
                on_batch(len(batch))
        return updated

    def delete(
        self, table: str, record_ids: Sequence[str], *, on_batch: BatchCallback | None = None
    ) -> int:
        """Delete rows by record ID, ⌈N/10⌉ requests.  A row already gone counts as deleted
        (a delete retried after a lost response must not fail)."""
        t = self._table(table)
        deleted = 0
        for batch in write_batches(record_ids):
            try:
                with classified():
                    deleted += len(t.batch_delete(list(batch)))
            except NotFoundError:
                # One missing ID fails the whole batch; delete the rest one by one.
                for rid in batch:
                    with contextlib.suppress(NotFoundError), classified():
                        t.delete(rid)
                        deleted += 1
            if on_batch:
                on_batch(len(batch))
        return deleted

    def stake(
        self,
        table: str,
        values: Mapping[str, Any],
        *,
        move: tuple[str, Mapping[str, Any]] | None = None,
        prefix: str,
    ) -> list[RecordDict]:
        """Put a row at its key, then read every row whose key starts with ``prefix``
        (2 requests: the write, then one page of rows; more only past 100 rows).

        The row is created from ``values``, or, with ``move`` (a record ID and the values to
        patch), moved by a patch.  What the read means is the caller's business (job starts:
        :mod:`jobtrack_airtable.worker.starts`); the read is the one request that must follow
        the write, so that it holds every row created before ours.
        """
        if move is None:
            self.create(table, [values])
        else:
            self.update_by_id(table, [move])
        return self.list_records(table, formula=self.prefix_formula(table, prefix))

    def prefix_formula(self, table: str, prefix: str) -> str:
        """An escaped formula matching rows whose natural key starts with ``prefix``."""
        field = F.Field(self.spec(table).key_name)
        return F.to_formula_str(F.EQ(F.LEFT(field, len(prefix)), prefix))


RowT = TypeVar("RowT", JobRow, ClientRunRow)


class TableRepository(Generic[RowT]):
    """One tracking table as typed rows: ``repo.jobs`` (:class:`JobRow`) and
    ``repo.client_runs`` (:class:`ClientRunRow`).  Values go in by logical key; rows come
    out parsed.  The code above the repository uses these objects only.

    >>> repo.client_runs.find("250930-141522-Guy-Wilson").status   # doctest: +SKIP
    <Status.COMPLETED: 'Completed'>
    >>> [row] = repo.jobs.upsert([{"run_id": "250930-141522", "stream": 2}])  # doctest: +SKIP
    """

    def __init__(
        self,
        repo: Repository,
        key: str,
        row_type: type[RowT],
        natural_key: Callable[[Any], str],
    ) -> None:
        self.repo = repo
        self.key = key
        self._row_type: Any = row_type
        self._natural_key = natural_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r})"

    @property
    def spec(self) -> TableSpec:
        return self.repo.spec(self.key)

    def row(self, record: RecordDict) -> RowT:
        """Parse a pyairtable record of this table (never raises for bad stored data)."""
        row: RowT = self._row_type.from_record(record, self.spec)
        return row

    def find(self, run_id: Any) -> RowT | None:
        """The row of ``run_id`` (validated first), or ``None``; with duplicates the oldest,
        with a warning (1 request per 100 duplicates)."""
        record = self.repo.find(self.key, self._natural_key(run_id))
        return self.row(record) if record else None

    def get(self, record_id: str) -> RowT | None:
        """The row with record ID ``record_id`` (1 request), or ``None`` when it is gone."""
        record = self.repo.get(self.key, record_id)
        return self.row(record) if record else None

    def get_many(self, record_ids: Sequence[str]) -> list[RowT]:
        """The rows of ``record_ids`` still present, ⌈N/100⌉ requests."""
        return [self.row(r) for r in self.repo.get_many(self.key, record_ids)]

    def upsert(
        self, values: Sequence[Mapping[str, Any]], *, on_batch: BatchCallback | None = None
    ) -> list[RowT]:
        """Create or update rows by natural key, ⌈N/10⌉ requests."""
        return [self.row(r) for r in self.repo.upsert(self.key, values, on_batch=on_batch)]

    def write(
        self,
        items: Sequence[tuple[str | None, Mapping[str, Any]]],
        *,
        on_batch: BatchCallback | None = None,
    ) -> list[tuple[RowT, bool]]:
        """Write rows by record ID where known, else by natural key; each row as written
        and whether it was created (see :meth:`Repository.write`)."""
        return [
            (self.row(r), created)
            for r, created in self.repo.write(self.key, items, on_batch=on_batch)
        ]


class JobsTable(TableRepository[JobRow]):
    """``repo.jobs``: the Job Tracking table."""

    def __init__(self, repo: Repository) -> None:
        super().__init__(repo, "jobs", JobRow, as_base_run_id)

    def stake(
        self,
        values: Mapping[str, Any],
        *,
        move: tuple[str, Mapping[str, Any]] | None = None,
        block: str,
    ) -> list[JobRow]:
        """Put a job row at its Run ID (created, or moved by record ID), then read every
        job row of ``block`` (run IDs starting with it): 2 requests; see
        :meth:`Repository.stake`."""
        records = self.repo.stake(self.key, values, move=move, prefix=block)
        return [self.row(r) for r in records]


class ClientRunsTable(TableRepository[ClientRunRow]):
    """``repo.client_runs``: the Client Run Results table."""

    def __init__(self, repo: Repository) -> None:
        super().__init__(repo, "client_runs", ClientRunRow, as_client_run_id)

    def of_job(
        self, job_run_id: BaseRunId | str, *, on_page: PageCallback | None = None
    ) -> list[ClientRunRow]:
        """Every client row of one job, in ⌈N/100⌉ requests.

        The match is exact: a client run ID is the 13-character base run ID, a hyphen and the
        client ID, so ``LEFT({Run ID}, 14) = '<base>-'`` selects this job's rows and no other
        job's.  Duplicate rows for one client are collapsed to the oldest, with a warning.
        """
        base = as_base_run_id(job_run_id)
        prefix = f"{base}-"
        key_name = self.spec.key_name
        formula = F.to_formula_str(F.EQ(F.LEFT(F.Field(key_name), len(prefix)), prefix))
        records = self.repo.list_records(
            self.key,
            formula=formula,
            on_page=on_page,
            where=lambda r: formula_text(r["fields"].get(key_name)).startswith(prefix),
        )
        by_key: dict[str, list[RecordDict]] = defaultdict(list)
        for r in records:
            by_key[r["fields"].get(key_name, "")].append(r)
        rows = []
        for key, group in by_key.items():
            chosen = self.repo._one(self.key, key, group)
            assert chosen is not None
            rows.append(self.row(chosen))
        return rows
