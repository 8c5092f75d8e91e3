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
>>> store.put("appX/client_runs/250930-141522-Guy", 1, "{old}", "host:1:a")  # older: ignored
>>> store.get("appX/client_runs/250930-141522-Guy").version
2
>>> store.retire("appX/client_runs/250930-141522-Guy", 2)
>>> store.entries()
[]
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import platformdirs

from .. import forks
from ..errors import OutboxUnavailableError
from .store import Entry, now

__all__ = ["SqliteOutbox", "default_outbox_path"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " payload TEXT NOT NULL, owner TEXT NOT NULL, updated REAL NOT NULL, error TEXT,"
    " verify_after REAL NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS budget (name TEXT PRIMARY KEY, tokens REAL NOT NULL,"
    " at REAL NOT NULL)",
)

_COLUMNS = "key, version, payload, owner, updated, error, verify_after"


def default_outbox_path() -> Path:
    """The per-user outbox file, in the data directory (a cache directory may be wiped,
    and the outbox holds data not yet on Airtable)."""
    return Path(platformdirs.user_data_dir("jobtrack-airtable")) / "outbox-v1.sqlite"


class SqliteOutbox:
    """:class:`~.store.OutboxStore` in one SQLite file (opened lazily, reopened after fork)."""

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

    def _db(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.sync.upper()}")
            for statement in _SCHEMA:
                conn.execute(statement)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def put(self, key: str, version: int, payload: str, owner: str) -> None:
        try:
            with self._lock:
                self._db().execute(
                    "INSERT INTO entries (key, version, payload, owner, updated)"
                    " VALUES (?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET"
                    " version = excluded.version, payload = excluded.payload,"
                    " owner = excluded.owner, updated = excluded.updated"
                    " WHERE excluded.version > entries.version",
                    (key, version, payload, owner, now()),
                )
        except (sqlite3.Error, OSError) as exc:
            raise OutboxUnavailableError(f"the outbox {self.path} failed: {exc}") from None

    def retire(self, key: str, version: int, *, verify_after: float = 0.0) -> None:
        with self._lock:
            db = self._db()
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
        with self._lock:
            self._db().execute(
                "UPDATE entries SET error = ? WHERE key = ? AND version >= ?",
                (error, key, version),
            )

    def get(self, key: str) -> Entry | None:
        with self._lock:
            row = (
                self._db()
                .execute(f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,))
                .fetchone()
            )
        return Entry(*row) if row else None

    def entries(self, prefix: str = "") -> list[Entry]:
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT {_COLUMNS} FROM entries WHERE substr(key, 1, ?) = ?"
                    " ORDER BY updated, key",
                    (len(prefix), prefix),
                )
                .fetchall()
            )
        return [Entry(*row) for row in rows]

    def claim(self, keys: Sequence[str], owner: str, *, expected: dict[str, str]) -> list[str]:
        claimed: list[str] = []
        with self._lock:
            db = self._db()
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
                db.execute("ROLLBACK")
                raise
        return claimed

    def drop(self, keys: Sequence[str], *, versions: dict[str, int] | None = None) -> int:
        dropped = 0
        with self._lock:
            db = self._db()
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
        with self._lock:
            db = self._db()
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
                db.execute("ROLLBACK")
                raise
        return balance

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
