"""Retention as a planned change: move finished jobs older than a cutoff, with all their client
rows, into a local archive that stays queryable, then delete them from Airtable.

A Team base holds at most 50,000 records (SPEC §2.9); a tracking base grows by one job row and
one row per client every run, so without retention it fills up.  Archiving works like ``sync``:

* :func:`plan_archive` reads both tables (⌈J/100⌉ + ⌈C/100⌉ requests) and returns an
  :class:`ArchivePlan`: every job that is finished (a standard terminal status), ended (else
  started, else was created) before the cutoff, and whose client rows are all finished too,
  with a fingerprint of every row it would move.  It changes nothing.
* :func:`apply_archive` re-reads exactly those rows (⌈K/100⌉ requests), refuses the whole plan
  if any changed since (:class:`~jobtrack_airtable.errors.StaleArchivePlanError`, nothing
  written anywhere), writes them to the archive, **reads the archive back** and compares every
  row before deleting it from Airtable (⌈K/10⌉ requests, client rows before their job, so an
  apply killed half-way never leaves client rows without their job row).  A row is never
  deleted unless its exact copy is in the archive.  Re-running an applied plan is harmless: it
  reports the rows as already archived.

>>> plan = plan_archive(repo, older_than=timedelta(days=90))           # doctest: +SKIP
>>> save_archive_plan(plan, "archive-plan.json")                       # doctest: +SKIP
>>> result = apply_archive(repo, load_archive_plan("archive-plan.json"))   # doctest: +SKIP
>>> archived_runs("jobtrack-archive.sqlite", repo.schema)[:1]         # doctest: +SKIP
[JobRow(run_id='250601-070000', ...)]

The archive is a SQLite file by default (``.sqlite``/``.db``), or JSON Lines (``.jsonl``): one
record per line, ``{"table", "id", "createdTime", "fields", "fingerprint", "archived_at"}``.
Both keep Airtable's raw records, so nothing about a row is lost in the move.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

from pyairtable.api.types import RecordDict
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..durations import parse_duration
from ..errors import (
    ArchivePlanFormatError,
    InvalidInputError,
    JobtrackError,
    StaleArchivePlanError,
    show,
)
from ..files import load_json_file, write_atomically
from ..rows import ClientRunRow, JobRow
from ..schema import Schema
from ..statuses import Status, map_status
from ..timeutil import to_airtable, utcnow
from ..transport.repository import Repository, oldest_first
from .sync.model import fingerprint

__all__ = [
    "ARCHIVE_FORMAT_VERSION",
    "ArchiveFormat",
    "ArchiveJob",
    "ArchivePlan",
    "ArchiveResult",
    "ArchiveRow",
    "ArchiveSkip",
    "ArchiveStore",
    "apply_archive",
    "archive_format_of",
    "archived_records",
    "archived_runs",
    "load_archive_plan",
    "plan_archive",
    "save_archive_plan",
]

#: Version of the archive *plan* file; bump when its meaning changes.
ARCHIVE_FORMAT_VERSION: Final = 1
#: The ``kind`` of an archive plan file (a sync plan has none).
PLAN_KIND: Final = "archive"

ArchiveFormat = Literal["sqlite", "jsonl"]
TableKey = Literal["jobs", "client_runs"]
ProgressCallback = Callable[[str, int], None]
#: Client rows go before their job, so an interrupted apply never orphans client rows.
_MOVE_ORDER: Final[tuple[TableKey, ...]] = ("client_runs", "jobs")


# --- the plan ------------------------------------------------------------------------------


class ArchiveRow(BaseModel):
    """One row the plan moves: where it is, what it is, and how it looked when planned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str
    key: str
    fingerprint: str


class ArchiveJob(BaseModel):
    """One job and every client row of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: ArchiveRow
    status: str
    ended: str
    clients: list[ArchiveRow] = Field(default_factory=list)


class ArchiveSkip(BaseModel):
    """An old job left in place, and why (nothing unfinished is ever archived)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    reason: str


class ArchivePlan(BaseModel):
    """What :func:`apply_archive` will move, as reviewed.  JSON round-trips exactly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = ARCHIVE_FORMAT_VERSION
    kind: Literal["archive"] = PLAN_KIND
    base_id: str
    generated_at: str
    cutoff: str
    archive_path: str
    archive_format: ArchiveFormat
    jobs: list[ArchiveJob] = Field(default_factory=list)
    skipped: list[ArchiveSkip] = Field(default_factory=list)

    @property
    def row_count(self) -> int:
        """Rows the plan deletes from Airtable (jobs and client rows)."""
        return sum(1 + len(j.clients) for j in self.jobs)

    @property
    def has_changes(self) -> bool:
        return bool(self.jobs)


def archive_format_of(path: str | Path) -> ArchiveFormat:
    """``jsonl`` for ``.jsonl``/``.ndjson`` files, else ``sqlite``."""
    return "jsonl" if Path(path).suffix.lower() in (".jsonl", ".ndjson") else "sqlite"


def _ended(row: JobRow) -> datetime | None:
    return row.end_time or row.start_time or row.created_time


def plan_archive(
    repo: Repository,
    *,
    older_than: timedelta,
    archive_path: str | Path = "jobtrack-archive.sqlite",
    archive_format: ArchiveFormat | None = None,
    now: datetime | None = None,
    on_page: Callable[[int], None] | None = None,
) -> ArchivePlan:
    """Plan the archive of every finished job that ended more than ``older_than`` ago.

    Costs ⌈J/100⌉ + ⌈C/100⌉ requests and changes nothing.  A job is left in place (listed in
    ``skipped`` with the reason) when its status is not a standard terminal one (``Running``,
    a legacy or unmappable value: run ``sync`` first), when one of its client rows is not
    finished, or when its key is shared by several job rows (``sync`` merges those first).
    """
    if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
        raise InvalidInputError(f"older_than must be a positive duration, got {show(older_than)}")
    fmt = archive_format or archive_format_of(archive_path)
    if fmt not in ("sqlite", "jsonl"):
        raise InvalidInputError(f"archive format must be 'sqlite' or 'jsonl', got {show(fmt)}")
    target = Path(archive_path).expanduser().resolve()
    if not target.parent.is_dir():
        raise InvalidInputError(f"the archive's directory {str(target.parent)!r} does not exist")
    jobs_spec, clients_spec = repo.schema.jobs, repo.schema.client_runs
    job_records = repo.list_records("jobs", on_page=on_page)
    client_records = repo.list_records("client_runs", on_page=on_page)
    # The cutoff on the server's clock (learnt from the reads' Date headers), not this
    # machine's, which may be hours off.
    now = (now or repo.conn.server_now()).astimezone(UTC)
    cutoff = now - older_than

    by_job: dict[str, list[RecordDict]] = {}
    for record in client_records:
        key = str(record["fields"].get(clients_spec.key_name) or "")
        by_job.setdefault(key[:14], []).append(record)
    by_key: dict[str, list[RecordDict]] = {}
    for record in job_records:
        by_key.setdefault(str(record["fields"].get(jobs_spec.key_name) or ""), []).append(record)

    planned: list[ArchiveJob] = []
    skipped: list[ArchiveSkip] = []
    for key, records in sorted(by_key.items()):
        row = JobRow.from_record(records[0], jobs_spec)
        ended = _ended(row)
        if not key or ended is None or ended >= cutoff:
            continue
        if len(records) > 1:
            skipped.append(ArchiveSkip(key=key, reason=f"{len(records)} job rows share this key"))
            continue
        if row.status is None or not row.status.is_terminal:
            shown = map_status(row.status_raw).status
            reason = (
                "still Running"
                if shown is Status.RUNNING or row.status is Status.RUNNING
                else f"status {row.status_raw!r} is not a standard terminal status (run sync)"
            )
            skipped.append(ArchiveSkip(key=key, reason=reason))
            continue
        clients = by_job.get(f"{key}-", [])
        unfinished = [
            c
            for c in clients
            if (s := ClientRunRow.from_record(c, clients_spec).status) is None or not s.is_terminal
        ]
        if unfinished:
            names = ", ".join(str(c["fields"].get(clients_spec.key_name)) for c in unfinished)
            skipped.append(ArchiveSkip(key=key, reason=f"client rows not finished: {names}"))
            continue
        planned.append(
            ArchiveJob(
                job=_row(records[0], key),
                status=row.status.value,
                ended=to_airtable(ended),
                clients=[
                    _row(c, str(c["fields"].get(clients_spec.key_name)))
                    for c in oldest_first(clients)
                ],
            )
        )
    return ArchivePlan(
        base_id=repo.conn.base_id,
        generated_at=to_airtable(now),
        cutoff=to_airtable(cutoff),
        archive_path=str(target),
        archive_format=fmt,
        jobs=planned,
        skipped=skipped,
    )


def _row(record: Mapping[str, Any], key: str) -> ArchiveRow:
    return ArchiveRow(record_id=str(record["id"]), key=key, fingerprint=fingerprint(record))


def save_archive_plan(plan: ArchivePlan, path: str | Path) -> Path:
    """Write ``plan`` as JSON to ``path`` (replacing it atomically)."""
    target = write_atomically(path, plan.model_dump_json(indent=2) + "\n")
    return target


def is_archive_plan(data: Mapping[str, Any]) -> bool:
    """Whether parsed plan JSON is an archive plan (rather than a sync plan)."""
    return data.get("kind") == PLAN_KIND


def load_archive_plan(path: str | Path) -> ArchivePlan:
    """Read a plan written by :func:`save_archive_plan`; :class:`ArchivePlanFormatError` when
    the file is not one (or of an unknown ``format_version``)."""
    try:
        data = load_json_file(path, what="archive plan")
    except InvalidInputError as exc:
        raise ArchivePlanFormatError(str(exc)) from None
    if not isinstance(data, dict) or not is_archive_plan(data):
        raise ArchivePlanFormatError(f"{str(path)!r} is not an archive plan")
    if data.get("format_version") != ARCHIVE_FORMAT_VERSION:
        raise ArchivePlanFormatError(
            f"archive plan {str(path)!r} has format_version {show(data.get('format_version'))}; "
            f"this version reads {ARCHIVE_FORMAT_VERSION}"
        )
    # The CLI's --json output names the kind of base it was made from: informative only.
    data = {k: v for k, v in data.items() if k != "base_kind"}
    try:
        return ArchivePlan.model_validate(data)
    except ValidationError as exc:
        raise ArchivePlanFormatError(
            f"archive plan {str(path)!r} is malformed ({exc.error_count()} problem(s))"
        ) from None


# --- the archive ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedRecord:
    """A row as the archive holds it: Airtable's raw record and when it was archived."""

    table: TableKey
    record: dict[str, Any]
    fingerprint: str
    archived_at: str


class ArchiveStore:
    """A local archive file: SQLite (default) or JSON Lines.  Nothing in it is ever replaced
    or removed: adding an identical copy again is a no-op, and a row archived again after it
    changed gets a second version (readers show the newest).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.sqlite"
    >>> with ArchiveStore(path, base_id="appAAAAAAAAAAAAAA") as store:
    ...     _ = store.add("jobs", [{"id": "recA", "createdTime": "x", "fields": {"Run ID": "k"}}])
    ...     [r.record["id"] for r in store.records("jobs")]
    ['recA']
    """

    def __init__(
        self, path: str | Path, *, base_id: str, archive_format: ArchiveFormat | None = None
    ) -> None:
        self.path = Path(path).expanduser()
        self.format: ArchiveFormat = archive_format or archive_format_of(self.path)
        self.base_id = base_id
        if not self.path.parent.is_dir():
            raise InvalidInputError(
                f"the archive's directory {str(self.path.parent)!r} does not exist"
            )
        self._db: sqlite3.Connection | None = None
        if self.format == "sqlite":
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._db:
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"
                )
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS records (table_key TEXT NOT NULL, "
                    "record_id TEXT NOT NULL, record TEXT NOT NULL, fingerprint TEXT NOT NULL, "
                    "archived_at TEXT NOT NULL, PRIMARY KEY (table_key, record_id, fingerprint))"
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('base_id', ?)", (base_id,)
                )
            (stored,) = self._db.execute("SELECT value FROM meta WHERE key='base_id'").fetchone()
        else:
            stored = self._jsonl_base_id()
        if stored not in (None, base_id):
            self.close()
            raise InvalidInputError(
                f"the archive {str(self.path)!r} holds rows of base {stored!r}, not {base_id!r}"
            )

    def _jsonl_base_id(self) -> str | None:
        for line in self._lines():
            if line.get("meta") == "base":
                return str(line.get("base_id"))
        return None

    def _lines(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for n, text in enumerate(f, 1):
                if not text.strip():
                    continue
                try:
                    yield json.loads(text)
                except ValueError:
                    # A line cut short by a crash mid-append: every complete line is intact.
                    if text.endswith("\n"):
                        raise InvalidInputError(
                            f"the archive {str(self.path)!r} has a corrupt line {n}"
                        ) from None

    def add(self, table: TableKey, records: Iterable[Mapping[str, Any]]) -> int:
        """Store ``records`` durably (fsynced) before returning; the count stored."""
        now = to_airtable(utcnow())
        rows = [
            (table, str(r["id"]), json.dumps(dict(r), ensure_ascii=False), fingerprint(r), now)
            for r in records
        ]
        if self._db is not None:
            with self._db:
                self._db.executemany("INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?)", rows)
            return len(rows)
        if self.path.exists():
            self._drop_partial_tail()
        # Empty counts as new: the crash may have cut the base line itself.
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8") as f:
            if new_file:
                f.write(json.dumps({"meta": "base", "base_id": self.base_id}) + "\n")
            for t, _rid, text, fp, at in rows:
                line = {"table": t, "record": json.loads(text), "fingerprint": fp}
                f.write(json.dumps({**line, "archived_at": at}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return len(rows)

    def _drop_partial_tail(self) -> None:
        """Cut a last line left without its newline by a crash mid-append: it was never a
        whole record (nothing was deleted on its account), and appending after it would
        fuse it with the next record into one corrupt line."""
        with self.path.open("rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            block = 1 << 16
            end = size
            while end > 0:
                start = max(0, end - block)
                f.seek(start)
                chunk = f.read(end - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    f.truncate(start + cut + 1)
                    break
                end = start
            else:
                f.truncate(0)
            f.flush()
            os.fsync(f.fileno())

    def versions(
        self, table: TableKey, record_ids: Iterable[str] | None = None
    ) -> list[ArchivedRecord]:
        """Every copy of every record of ``table`` the archive holds (only of ``record_ids``
        when given), oldest first.  A copy is never replaced: archiving a row again after it
        changed adds a second version."""
        wanted = set(record_ids) if record_ids is not None else None
        if self._db is not None:
            query = "SELECT record, fingerprint, archived_at, rowid FROM records WHERE table_key=?"
            if wanted is None:
                rows = self._db.execute(query, (table,)).fetchall()
            else:
                # The rows of one apply, not the whole archive (which only grows), in chunks
                # within SQLite's limit on bound parameters.
                ids, rows = sorted(wanted), []
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    rows += self._db.execute(
                        f"{query} AND record_id IN ({','.join('?' * len(chunk))})",
                        (table, *chunk),
                    ).fetchall()
            rows.sort(key=lambda r: (r[2], r[3]))
            return [ArchivedRecord(table, json.loads(r), fp, at) for r, fp, at, _ in rows]
        return [
            ArchivedRecord(table, line["record"], line["fingerprint"], line["archived_at"])
            for line in self._lines()
            if line.get("table") == table and (wanted is None or line["record"]["id"] in wanted)
        ]

    def records(self, table: TableKey) -> list[ArchivedRecord]:
        """The newest copy of each archived record of ``table``, by record ID."""
        latest = {v.record["id"]: v for v in self.versions(table)}
        return [latest[k] for k in sorted(latest)]

    def fingerprints(self, table: TableKey, record_ids: Iterable[str]) -> dict[str, set[str]]:
        """Record ID → fingerprints of the stored copies of ``record_ids``, recomputed from
        what was read back (not the fingerprint stored beside them), so a damaged copy does
        not match."""
        out: dict[str, set[str]] = {}
        for v in self.versions(table, record_ids):
            out.setdefault(v.record["id"], set()).add(fingerprint(v.record))
        return out

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> ArchiveStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- apply ---------------------------------------------------------------------------------


@dataclass
class ArchiveResult:
    """What :func:`apply_archive` did, row by row."""

    archived: dict[str, list[str]] = field(default_factory=lambda: {"jobs": [], "client_runs": []})
    deleted: dict[str, list[str]] = field(default_factory=lambda: {"jobs": [], "client_runs": []})
    already_archived: list[str] = field(default_factory=list)

    @property
    def deleted_count(self) -> int:
        return sum(len(v) for v in self.deleted.values())


def _reread(repo: Repository, table: TableKey, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {r["id"]: dict(r) for r in repo.get_many(table, ids)}


def _stage(on_progress: ProgressCallback | None, stage: str) -> Callable[[int], None] | None:
    if on_progress is None:
        return None
    return lambda n: on_progress(stage, n)


def apply_archive(
    repo: Repository,
    plan: ArchivePlan,
    *,
    on_progress: ProgressCallback | None = None,
) -> ArchiveResult:
    """Archive then delete exactly the rows of ``plan``.

    Re-reads every row (⌈K/100⌉ requests) and refuses with
    :class:`~jobtrack_airtable.errors.StaleArchivePlanError`, writing nothing, if one changed
    or vanished without being in the archive.  Then stores the rows in the archive, reads the
    archive back, and deletes from Airtable only rows whose copy there is identical, client
    rows first (⌈K/10⌉ requests).
    """
    if plan.base_id != repo.conn.base_id:
        raise InvalidInputError(f"the plan is for base {plan.base_id!r}, not {repo.conn.base_id!r}")
    result = ArchiveResult()
    if not plan.jobs:
        return result
    planned: dict[TableKey, dict[str, ArchiveRow]] = {"jobs": {}, "client_runs": {}}
    for job in plan.jobs:
        planned["jobs"][job.job.record_id] = job.job
        for c in job.clients:
            planned["client_runs"][c.record_id] = c

    with ArchiveStore(
        plan.archive_path, base_id=plan.base_id, archive_format=plan.archive_format
    ) as store:
        stored = {t: store.fingerprints(t, rows) for t, rows in planned.items()}
        current: dict[TableKey, dict[str, dict[str, Any]]] = {}
        problems: list[str] = []
        for table, rows in planned.items():
            current[table] = _reread(repo, table, list(rows))
            for rid, row in rows.items():
                record = current[table].get(rid)
                if record is None:
                    if row.fingerprint in stored[table].get(rid, set()):
                        result.already_archived.append(row.key)
                    else:
                        problems.append(f"{row.key} ({rid}) is gone and not in the archive")
                elif fingerprint(record) != row.fingerprint:
                    problems.append(f"{row.key} ({rid}) changed since the plan was made")
        if problems:
            raise StaleArchivePlanError(problems)

        for table in _MOVE_ORDER:
            records = list(current[table].values())
            if records:
                store.add(table, records)
                result.archived[table] = [r["id"] for r in records]
                if on_progress:
                    on_progress(f"archived {table}", len(records))
        # Read back: delete only what the archive demonstrably holds, byte for byte.
        verified = {t: store.fingerprints(t, rows) for t, rows in planned.items()}

    # Every row is checked before the first delete, so a bad copy stops the whole apply.
    missing = [
        rid
        for table in _MOVE_ORDER
        for rid, record in current[table].items()
        if fingerprint(record) not in verified[table].get(rid, set())
    ]
    if missing:
        raise JobtrackError(
            f"the archive does not hold an exact copy of {len(missing)} row(s); nothing was "
            f"deleted: {', '.join(sorted(missing))}"
        )
    for table in _MOVE_ORDER:
        ids = list(current[table])
        if ids:
            # Progress per batch of 10: a long delete phase must not look frozen.
            repo.delete(table, ids, on_batch=_stage(on_progress, f"deleted {table}"))
            result.deleted[table] = ids
    return result


# --- reading the archive -------------------------------------------------------------------


def archived_records(path: str | Path, table: TableKey) -> list[dict[str, Any]]:
    """Raw Airtable records of ``table`` held by the archive at ``path``."""
    target = Path(path).expanduser()
    if not target.is_file():
        raise InvalidInputError(f"no archive at {str(target)!r}")
    try:
        base_id = _archive_base_id(target)
        with ArchiveStore(target, base_id=base_id) as store:
            return [r.record for r in store.records(table)]
    except (sqlite3.DatabaseError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        # Another SQLite file (a local base), or JSON Lines of another shape.
        raise InvalidInputError(
            f"{str(target)!r} is not a jobtrack archive ({type(exc).__name__}: {exc}); give "
            "a file written by `jobtrack-airtable archive --to FILE`"
        ) from None


def _archive_base_id(path: Path) -> str:
    if archive_format_of(path) == "jsonl":
        with path.open(encoding="utf-8") as f:
            first = json.loads(f.readline() or "{}")
        return str(first.get("base_id", ""))
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            row = db.execute("SELECT value FROM meta WHERE key='base_id'").fetchone()
        except sqlite3.DatabaseError:
            raise InvalidInputError(f"{str(path)!r} is not a jobtrack archive") from None
    return str(row[0]) if row else ""


def archived_runs(path: str | Path, schema: Schema) -> tuple[list[JobRow], list[ClientRunRow]]:
    """The archive's jobs (newest first) and client rows, parsed like rows read from the base."""
    jobs = [JobRow.from_record(r, schema.jobs) for r in archived_records(path, "jobs")]
    clients = [
        ClientRunRow.from_record(r, schema.client_runs)
        for r in archived_records(path, "client_runs")
    ]
    floor = datetime.min.replace(tzinfo=UTC)
    jobs.sort(key=lambda j: (j.start_time or j.created_time or floor, j.run_id or ""), reverse=True)
    return jobs, clients


def parse_age(text: str) -> timedelta:
    """``90d``, ``12w``, ``36h``, ``90m`` → a duration (the grammar of
    :mod:`jobtrack_airtable.durations`); :class:`InvalidInputError` naming the text."""
    return parse_duration(text, what="age")
