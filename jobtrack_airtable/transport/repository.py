"""Typed reads and writes of the two tracking tables (SPEC §3.1).

Every write is an upsert on the natural key (``Run ID``), so a write retried after a lost
response updates the row it already created instead of adding a second one.  Every outgoing
payload is checked against the schema before any request.  Reads of one key use an exact,
escaped formula; reads of one job's client rows use an exact prefix match (``LEFT`` of the
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pyairtable import formulas as F
from pyairtable.api.types import RecordDict

from ..airtable import MAX_PAGE_SIZE, write_batches
from ..errors import (
    InvalidFormulaError,
    InvalidRequestError,
    IteratorExpiredError,
    NotFoundError,
    SchemaViolationError,
    show,
)
from ..rows import ClientRunRow, JobRow
from ..run_ids import BaseRunId, as_base_run_id, as_client_run_id
from ..schema import TableSpec
from . import renames
from .client import Connection
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

    # Pinned IDs (``schema pin``): everything above the repository keeps speaking configured
    # names; only the wire speaks IDs.  Unpinned tables go out exactly as before.

    def _ids(self, table: str) -> dict[str, Any]:
        """pyairtable's ``use_field_ids`` for writes to ``table`` (empty when unpinned)."""
        return {"use_field_ids": True} if self.spec(table).uses_ids else {}

    def _out(self, table: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``{"id"?, "fields"}`` write bodies keyed for the wire."""
        spec = self.spec(table)
        if not spec.uses_ids:
            return records
        return [{**r, "fields": spec.encode(r["fields"])} for r in records]

    def decode(self, table: str, record: RecordDict) -> RecordDict:
        """A record from the wire with its fields keyed by configured name (pinned tables
        answer by field ID: a renamed field still lands under its configured name)."""
        spec = self.spec(table)
        if not spec.uses_ids:
            return record
        return {**record, "fields": spec.decode(record.get("fields", {}))}

    def read_options(self, table: str) -> dict[str, Any]:
        """Listing options every read of ``table`` carries (``returnFieldsByFieldId`` when
        pinned); used by readers that page themselves (sync)."""
        return {"use_field_ids": True} if self.spec(table).uses_ids else {}

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
        spec = self.spec(table)
        options: dict[str, Any] = {"page_size": MAX_PAGE_SIZE, **self.read_options(table)}
        if fields:
            options["fields"] = [spec.ref(f) for f in fields]
        if sort:
            options["sort"] = [
                f"-{spec.ref(s[1:])}" if s.startswith("-") else spec.ref(s) for s in sort
            ]
        if max_records:
            options["max_records"] = max_records
        if not formula:
            return self._list(table, options, max_records, on_page)
        base_id = self.conn.base_id
        sent = renames.rewrite(base_id, spec, formula) if spec.uses_ids else formula
        try:
            return self._list(table, {**options, "formula": sent}, max_records, on_page)
        except InvalidFormulaError:
            # A formula names fields, and a pinned field may have been renamed in the base:
            # learn the current names (1 request) and retry once.  Nothing to learn, or the
            # same formula again: the formula is wrong, not stale.
            if not spec.uses_ids or not self._learn_renames(table):
                raise
            retry = renames.rewrite(base_id, spec, formula)
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
        for attempt in range(MAX_LISTING_RESTARTS + 1):
            records: list[RecordDict] = []
            try:
                with classified():
                    for raw in t.iterate(**options):
                        page = [self.decode(table, r) for r in raw]
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
        try:
            with classified():
                record: RecordDict = t.get(record_id, **self.read_options(table))
        except NotFoundError:
            return None
        return self.decode(table, record)

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
        payloads: list[tuple[str | None, dict[str, Any]]] = []
        for rid, v in items:
            if not v.get(spec.natural_key):
                raise ValueError(f"write into {spec.name!r} needs {spec.natural_key!r}: {v!r}")
            payloads.append((rid, self._named(table, v)))
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
        """One upsert addressing the known record IDs; ``None`` when one of them is gone."""
        spec = self.spec(table)
        body = [{"id": rid, "fields": f} if rid else {"fields": f} for rid, f in batch]
        try:
            with classified():
                result = self._table(table).batch_upsert(
                    self._out(table, body), key_fields=[spec.ref(spec.key_name)], **self._ids(table)
                )
        except NotFoundError:
            log.warning(
                "a row of %s written by record ID is gone (merged by sync?); writing by "
                "natural key instead",
                spec.name,
            )
            return None
        created = set(result.get("createdRecords", []))
        return [(self.decode(table, r), r["id"] in created) for r in result["records"]]

    def _upsert_by_key(
        self, table: str, chunk: list[dict[str, Any]]
    ) -> tuple[list[RecordDict], set[str]]:
        """One upsert request by natural key: the records, and the IDs it created."""
        spec = self.spec(table)
        t = self._table(table)
        key_name = spec.key_name
        try:
            with classified():
                result = t.batch_upsert(
                    self._out(table, [{"fields": f} for f in chunk]),
                    key_fields=[spec.ref(key_name)],
                    **self._ids(table),
                )
            records = [self.decode(table, r) for r in result["records"]]
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
        options = {"key_fields": [spec.ref(key_name)], **self._ids(table)}
        try:
            with classified():
                result = t.batch_upsert(self._out(table, records), **options)
        except NotFoundError:
            # The oldest row vanished between lookup and write (a concurrent sync merge):
            # the key now has at most one row again, so a plain upsert is safe.  Once.
            log.warning(
                "row vanished while writing around duplicates in %s; upserting again", spec.name
            )
            with classified():
                result = t.batch_upsert(self._out(table, [{"fields": f} for f in chunk]), **options)
        return [self.decode(table, r) for r in result["records"]]

    def create(
        self,
        table: str,
        values: Sequence[Mapping[str, Any]],
        *,
        on_batch: BatchCallback | None = None,
    ) -> list[RecordDict]:
        """Create rows (no key matching), ⌈N/10⌉ requests.  Only for callers that detect
        duplicates themselves (job start claims, sync)."""
        spec = self.spec(table)
        payloads = [spec.encode(self._named(table, v)) for v in values]
        t = self._table(table)
        created: list[RecordDict] = []
        for batch in write_batches(payloads):
            with classified():
                created.extend(
                    self.decode(table, r) for r in t.batch_create(list(batch), **self._ids(table))
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
        payloads = self._out(
            table, [{"id": rid, "fields": self._named(table, v)} for rid, v in updates]
        )
        t = self._table(table)
        updated: list[RecordDict] = []
        for batch in write_batches(payloads):
            with classified():
                updated.extend(
                    self.decode(table, r) for r in t.batch_update(list(batch), **self._ids(table))
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

    def claim(
        self,
        table: str,
        values: Mapping[str, Any],
        marker: str,
        *,
        ahead: Sequence[str] = (),
        move: tuple[str, str] | None = None,
    ) -> Claim:
        """Put a row carrying ``marker`` at its key and keep it only if it holds the key
        alone (2 requests: the write, then one read of the key and of the keys ``ahead``).

        The row is created, or, with ``move`` (our row's record ID and the key it lost),
        moved here by a patch of its key (its notes say so).  A created row wins when it is
        the oldest row of its key; a moved row keeps its old created time, so it wins only
        when it is alone (a row created here before the move, which may have seen itself
        alone and won, makes it lose).  Either way no two claimants win one key.

        A create retried after a lost response may leave several copies of our row: all but
        the oldest are deleted.  A row of another host created in the same millisecond as
        ours makes us lose (both may lose, and move on).  A loser keeps its row, to move it:
        the result says how many rows are ahead of it (its rank) and which keys ``ahead``
        are taken, so that simultaneous losers move to distinct keys at once.
        """
        spec = self.spec(table)
        key = str(values[spec.natural_key])
        notes_key = "system_notes"
        if move is None:
            self.create(table, [values])
        else:
            record_id, lost = move
            notes = f"{values[notes_key]}\n{moved_note(lost, key)}"
            self.update_by_id(table, [(record_id, {spec.natural_key: key, notes_key: notes})])
        rows = self.list_records(table, formula=self.key_formula(table, [key, *ahead]))
        key_name = spec.key_name
        at_key = oldest_first(r for r in rows if r["fields"].get(key_name) == key)
        notes_name = spec.name_of(notes_key)
        ours = [r for r in at_key if marker in str(r["fields"].get(notes_name, ""))]
        mine = {r["id"] for r in ours}
        others = [r for r in at_key if r["id"] not in mine]
        first = ours[0] if ours else None
        if first is None:
            won = False
        elif move is not None:
            won = not others
        else:
            # A tie with another host's row (same millisecond) is never won: that host may
            # have listed before our create, seen itself alone and won.  Record IDs are
            # random, so breaking the tie by them could make two winners.
            won = at_key[0]["id"] == first["id"] and not any(
                r["createdTime"] == first["createdTime"] for r in others
            )
        extra = [r["id"] for r in ours[1:]]
        if extra:
            log.warning(
                "removing %d extra copies of %s left by a retried create",
                len(extra),
                key,
                extra=_context(key),
            )
            self.delete(table, extra)
        if won:
            return Claim(first, key, rank=0, taken=frozenset())

        # The contest: the key's rows and the rows its losers already moved away.  Our place
        # in it (ties by record ID) is the same whenever we read it, so simultaneous losers
        # get distinct places; a first place lost (a tie, a moved row not alone) goes last.
        def keyof(r: RecordDict) -> str:
            return str(r["fields"].get(key_name))

        contest = oldest_first(
            r
            for r in rows
            if keyof(r) == key or moved_note(key, keyof(r)) in str(r["fields"].get(notes_name))
        )
        place = next((i for i, r in enumerate(contest) if first and r["id"] == first["id"]), 0)
        # The seconds ahead held by anything else are taken: every loser computes the same
        # free seconds from its place, and no two move to one.
        contenders = {r["id"] for r in contest}
        taken = frozenset(keyof(r) for r in rows if r["id"] not in contenders)
        return Claim(
            None,
            key,
            rank=place or len(contest),
            taken=taken,
            mine=first["id"] if first else None,
        )


def moved_note(lost: str, key: str) -> str:
    """The line a claim row moved from ``lost`` to ``key`` carries in its notes."""
    return f"claim moved from {lost} to {key}"


@dataclass(frozen=True)
class Claim:
    """What a :meth:`Repository.claim` found: our row when it won the key; else how many rows
    are ahead of ours (``rank`` ≥ 1), the keys read ahead that are taken, and our row's record
    ID (``mine``), to move elsewhere (``None``: it is gone, create a new one)."""

    row: RecordDict | None
    key: str
    rank: int
    taken: frozenset[str]
    mine: str | None = None


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

    def claim(
        self,
        values: Mapping[str, Any],
        marker: str,
        *,
        ahead: Sequence[str] = (),
        move: tuple[str, str] | None = None,
    ) -> tuple[JobRow | None, Claim]:
        """Put the job row carrying ``marker`` at its Run ID and keep it only if it holds it
        alone (2 requests); see :meth:`Repository.claim`."""
        claim = self.repo.claim(self.key, values, marker, ahead=ahead, move=move)
        return (self.row(claim.row) if claim.row else None), claim


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
