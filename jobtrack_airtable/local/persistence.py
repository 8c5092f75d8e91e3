"""The local server's base file: one SQLite database (standard-library ``sqlite3``, WAL).

Why SQLite: a write is one small transaction (O(log n) B-tree updates, fsynced by
``synchronous=FULL`` before the server answers), where the JSON format rewrote the whole base on
every write; a SIGKILL leaves at most a ``-wal`` file that the next open replays and removes.

One process at a time: the database runs in ``locking_mode=EXCLUSIVE``, so the first server to
open a file holds its lock until it closes, and a second one (through any path, symlinks
included: the lock is on the file itself, and paths are resolved first) is refused with
:class:`BaseFileInUseError` instead of silently losing writes.  The server keeps the records in
memory as well (its indexes serve reads); the database is the durable copy.

``":memory:"`` gives the same code path without a file (tests, the in-memory mode).

>>> db = BaseFile(None)
>>> db.load()
([], [], [])
>>> db.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SQLITE_MAGIC = b"SQLite format 3\x00"
FORMAT_VERSION = 2
#: How long opening waits for another process's lock before refusing.
LOCK_WAIT_SECONDS = 0.5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bases (id TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tables (
    id TEXT PRIMARY KEY,
    base_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    model TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    table_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_time TEXT NOT NULL,
    modified_time TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_table ON records (table_id, seq);
"""


class BaseFileInUseError(ValueError):
    """Another process has this base file open (two servers on one file would lose writes)."""


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One stored record: what :meth:`BaseFile.write` writes and :meth:`BaseFile.load` reads."""

    id: str
    table_id: str
    seq: int
    created_time: str
    modified_time: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TableRow:
    id: str
    base_id: str
    position: int
    model: dict[str, Any]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class BaseFile:
    """The SQLite database behind a :class:`~.storage.Store` (``path=None``: in memory).

    Not thread-safe by itself: the store calls it under its own lock.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path).expanduser().resolve() if path is not None else None
        if self.path is not None:
            _refuse_foreign(self.path)
        self._db = self._connect(self.path)

    # -- opening ----------------------------------------------------------------------------

    def _connect(self, path: Path | None) -> sqlite3.Connection:
        if path is None:
            db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            db.executescript(_SCHEMA)
            db.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (str(FORMAT_VERSION),))
            return db
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            str(path), timeout=LOCK_WAIT_SECONDS, check_same_thread=False, isolation_level=None
        )
        try:
            # EXCLUSIVE before WAL: no shared-memory file, and the lock is held until close.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # A write transaction takes the exclusive lock now rather than at the first write.
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)",
                (str(FORMAT_VERSION),),
            )
            if db.in_transaction:
                db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise BaseFileInUseError(
                    f"the local base file {str(path)!r} is open in another process (a second "
                    "server on one file would lose writes); stop the other one or use another "
                    "file"
                ) from None
            raise ValueError(f"cannot open the local base file {str(path)!r}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            db.close()
            raise ValueError(
                f"cannot load local Airtable data from {str(path)!r}: not a base file ({exc})"
            ) from None
        return db

    # -- reading ----------------------------------------------------------------------------

    def load(self) -> tuple[list[str], list[TableRow], list[RecordRow]]:
        """Every base ID, table and record (records in creation order)."""
        bases = [r[0] for r in self._db.execute("SELECT id FROM bases ORDER BY position")]
        tables = [
            TableRow(r[0], r[1], r[2], json.loads(r[3]))
            for r in self._db.execute(
                "SELECT id, base_id, position, model FROM tables ORDER BY position"
            )
        ]
        records = [
            RecordRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))
            for r in self._db.execute(
                "SELECT id, table_id, seq, created_time, modified_time, fields "
                "FROM records ORDER BY seq"
            )
        ]
        return bases, tables, records

    # -- writing ----------------------------------------------------------------------------

    def write(
        self,
        *,
        bases: Sequence[str] = (),
        tables: Sequence[TableRow] = (),
        upsert: Iterable[RecordRow] = (),
        delete: Iterable[str] = (),
    ) -> None:
        """One transaction: durable (fsynced) when this returns; nothing of it on error."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            _write_schema(db, bases, tables)
            db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)", _params(upsert)
            )
            db.executemany("DELETE FROM records WHERE id = ?", [(rid,) for rid in delete])
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def save_as(self, path: str | Path) -> None:
        """Copy the whole database to ``path`` atomically (temp file, fsync, rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            dest = sqlite3.connect(tmp)
            try:
                self._db.backup(dest)
                # In WAL mode already, so opening the copy later changes none of its bytes.
                dest.execute("PRAGMA journal_mode=WAL")
            finally:
                dest.close()
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def close(self) -> None:
        """Checkpoint and close (the ``-wal`` file goes away); releases the file lock."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


def _params(rows: Iterable[RecordRow]) -> list[tuple[Any, ...]]:
    return [
        (r.id, r.table_id, r.seq, r.created_time, r.modified_time, _dumps(r.fields)) for r in rows
    ]


def _write_schema(db: sqlite3.Connection, bases: Sequence[str], tables: Sequence[TableRow]) -> None:
    for base_id in bases:
        db.execute(
            "INSERT OR IGNORE INTO bases (id, position) VALUES "
            "(?, (SELECT COALESCE(MAX(position), -1) + 1 FROM bases))",
            (base_id,),
        )
    db.executemany(
        "INSERT OR REPLACE INTO tables VALUES (?, ?, ?, ?)",
        [(t.id, t.base_id, t.position, _dumps(t.model)) for t in tables],
    )


def _refuse_foreign(path: Path) -> None:
    """Refuse a file that is neither absent, empty nor a SQLite database (SQLite itself would
    take a short text file for an empty database and overwrite it)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ValueError(f"cannot load local Airtable data from {str(path)!r}: {exc}") from exc
    if head and head != SQLITE_MAGIC:
        raise ValueError(f"cannot load local Airtable data from {str(path)!r}: not a base file")
