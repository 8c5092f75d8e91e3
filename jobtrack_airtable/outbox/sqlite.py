"""The outbox in a SQLite file (WAL), shared by the processes of one machine.

Durability: every ``put`` is its own committed transaction before ``add()`` returns.  In WAL
mode with ``synchronous=NORMAL`` (the default, ``JOBTRACK_OUTBOX_SYNC=normal``) a commit is in
the operating system's page cache when it returns: it survives the process being killed
(SIGKILL, OOM) but not a power loss or kernel crash, which may lose the last commits.  With
``synchronous=FULL`` (``JOBTRACK_OUTBOX_SYNC=full``) every commit is fsynced: it survives
both, at the cost of one fsync per change.

>>> import tempfile, pathlib
>>> store = SqliteOutbox(pathlib.Path(tempfile.mkdtemp()) / "outbox.sqlite")
>>> store.put("appX/client_runs/250930-141522-Guy", 2, "{}", "host:1:a")
2
>>> store.put("appX/client_runs/250930-141522-Guy", 1, "{new}", "host:2:b")  # a clock went back
3
>>> store.get("appX/client_runs/250930-141522-Guy").payload
'{new}'
>>> store.retire("appX/client_runs/250930-141522-Guy", 3)
>>> store.entries()
[]
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import platformdirs

from .. import forks
from ..errors import OutboxUnavailableError
from .store import Entry, now, owner_alive, same_process

__all__ = ["SqliteOutbox", "default_outbox_path"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " payload TEXT NOT NULL, owner TEXT NOT NULL, updated REAL NOT NULL, error TEXT,"
    " verify_after REAL NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS budget (name TEXT PRIMARY KEY, tokens REAL NOT NULL,"
    " at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS holds (key TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " at REAL NOT NULL)",
)

_COLUMNS = "key, version, payload, owner, updated, error, verify_after"

_TABLES = {
    "entries": set(_COLUMNS.split(", ")),
    "budget": {"name", "tokens", "at"},
    "holds": {"key", "owner", "at"},
}


def _check_tables(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a file whose tables are another program's (``CREATE TABLE IF NOT EXISTS``
    keeps them as they are)."""
    for table, columns in _TABLES.items():
        found = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not columns <= found:
            raise OutboxUnavailableError(
                f"{path} is not a jobtrack-airtable outbox: its table {table!r} has columns "
                f"{sorted(found)}, expected {sorted(columns)} (point JOBTRACK_OUTBOX_URL "
                "at another file)"
            )


def default_outbox_path() -> Path:
    """The per-user outbox file, in the data directory (a cache directory may be wiped,
    and the outbox holds data not yet on Airtable)."""
    return Path(platformdirs.user_data_dir("jobtrack-airtable")) / "outbox-v1.sqlite"


#: Connections a forked child inherited: kept referenced so that garbage collection never
#: closes them in the child (see :meth:`SqliteOutbox._db`).
_INHERITED: list[sqlite3.Connection] = []


class SqliteOutbox:
    """:class:`~.store.OutboxStore` in one SQLite file (opened lazily, reopened after fork).

    Any failure of the file (not a database, corrupt, another program's tables, a directory
    or a device at the path, a full disk) raises
    :class:`~jobtrack_airtable.errors.OutboxUnavailableError` naming the path.
    """

    def __init__(
        self, path: Path | None = None, *, sync: Literal["normal", "full"] = "normal"
    ) -> None:
        self.path = Path(path) if path is not None else default_outbox_path()
        self.sync = sync
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        forks.register(self, SqliteOutbox._fresh_lock)

    def _fresh_lock(self) -> None:
        # After a fork: a parent thread may have held it (the connection reopens by pid).
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqliteOutbox({str(self.path)!r}, sync={self.sync!r})"

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the store's lock; a failure becomes a typed error."""
        try:
            with self._lock:
                yield self._db()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxUnavailableError(f"the outbox {self.path} failed: {exc}") from None

    def _db(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid != os.getpid():
            # A connection inherited through fork is never used here, not even closed (SQLite's
            # "How To Corrupt", 2.6: no use of a connection carried across fork()); garbage
            # collection would close it, so it is kept referenced, unused.
            _INHERITED.append(self._conn)
            self._conn = None
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.sync.upper()}")
                for statement in _SCHEMA:
                    conn.execute(statement)
                _check_tables(conn, self.path)
            except BaseException:
                conn.close()
                raise
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def put(self, key: str, version: int, payload: str, owner: str) -> int:
        with self._locked() as db:
            # One statement, so the version is raised above the stored one atomically.
            row = db.execute(
                "INSERT INTO entries (key, version, payload, owner, updated)"
                " VALUES (?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET"
                " version = max(excluded.version, entries.version + 1),"
                " payload = excluded.payload, owner = excluded.owner,"
                " updated = excluded.updated RETURNING version",
                (key, version, payload, owner, now()),
            ).fetchone()
        return int(row[0])

    def retire(self, key: str, version: int, *, verify_after: float = 0.0) -> None:
        with self._locked() as db:
            if verify_after:
                db.execute(
                    "UPDATE entries SET verify_after = max(verify_after, ?), error = NULL"
                    " WHERE key = ?",
                    (verify_after, key),
                )
                return
            db.execute(
                "DELETE FROM entries WHERE key = ? AND version <= ? AND verify_after <= ?",
                (key, version, now()),
            )

    def refused(self, key: str, version: int, error: str) -> None:
        with self._locked() as db:
            db.execute(
                "UPDATE entries SET error = ? WHERE key = ? AND version >= ?",
                (error, key, version),
            )

    def get(self, key: str) -> Entry | None:
        with self._locked() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,)).fetchone()
        return Entry(*row) if row else None

    def entries(self, prefix: str = "") -> list[Entry]:
        with self._locked() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE substr(key, 1, ?) = ? ORDER BY updated, key",
                (len(prefix), prefix),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def claim(self, keys: Sequence[str], owner: str, *, expected: dict[str, str]) -> list[str]:
        claimed: list[str] = []
        with self._locked() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for key in keys:
                    cursor = db.execute(
                        "UPDATE entries SET owner = ? WHERE key = ? AND owner = ?",
                        (owner, key, expected[key]),
                    )
                    if cursor.rowcount:
                        claimed.append(key)
                db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a full disk) may have rolled back already: a ROLLBACK
                # then fails and would hide the cause.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return claimed

    def drop(self, keys: Sequence[str], *, versions: dict[str, int] | None = None) -> int:
        dropped = 0
        with self._locked() as db:
            for key in keys:
                if versions is not None:
                    cursor = db.execute(
                        "DELETE FROM entries WHERE key = ? AND version = ?", (key, versions[key])
                    )
                else:
                    cursor = db.execute("DELETE FROM entries WHERE key = ?", (key,))
                dropped += cursor.rowcount
        return dropped

    def spend(self, n: float, *, rate: float, burst: float, at: float) -> float:
        with self._locked() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT tokens, at FROM budget WHERE name = 'requests'").fetchone()
                tokens, then = row if row else (0.0, at)
                balance = min(burst, tokens + max(0.0, at - then) * rate) - n
                db.execute(
                    "INSERT OR REPLACE INTO budget (name, tokens, at) VALUES ('requests', ?, ?)",
                    (balance, max(at, then)),
                )
                db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a full disk) may have rolled back already: a ROLLBACK
                # then fails and would hide the cause.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return balance

    def hold(self, key: str, owner: str) -> str | None:
        with self._locked() as db:
            # Read and take in one write transaction: two processes cannot both take it.
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT owner FROM holds WHERE key = ?", (key,)).fetchone()
                holder = str(row[0]) if row else None
                if (
                    holder is not None
                    and holder != owner
                    and not same_process(holder)
                    and owner_alive(holder)
                ):
                    db.execute("COMMIT")
                    return holder
                db.execute(
                    "INSERT OR REPLACE INTO holds (key, owner, at) VALUES (?,?,?)",
                    (key, owner, now()),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return None

    def unhold(self, owner: str, keys: Sequence[str] | None = None) -> None:
        with self._locked() as db:
            if keys is None:
                db.execute("DELETE FROM holds WHERE owner = ?", (owner,))
                return
            for key in keys:
                db.execute("DELETE FROM holds WHERE key = ? AND owner = ?", (key, owner))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            elif self._conn is not None:
                _INHERITED.append(self._conn)
            self._conn = None
