"""One machine: every thread and process shares the limit through a SQLite file.

:class:`LocalLimiter` keeps the slots of :mod:`.base`'s rule in a SQLite file (by default in
the user's cache directory); every process that opens the same path shares the budget.

The file
--------
Tables ``slots(key, token, frees_at, in_flight)``, ``holds(key, until)`` (``key = '*'``: every
key), ``meta(name, value)`` (a random ``store_id``), ``usage(key, month, kind, n)``
(:mod:`.usage`) and ``locks(key, token, until)`` (:mod:`.locks`).  Each operation is one
``BEGIN IMMEDIATE`` transaction, taken under a :mod:`filelock` lock on ``<path>.lock`` (the
lock only keeps the hand-over between processes quick; SQLite's own lock is what serialises
them).  Wall-clock time is used because timestamps are compared between processes; rows from
the future (a clock that stepped back) are discarded rather than trusted.

The journal is a rollback journal (``TRUNCATE``) with ``synchronous=OFF``: a killed process
cannot corrupt the file (only an OS crash could, and then the file is rebuilt), and -- unlike
WAL, whose ``-wal``/``-shm`` files are shared by name -- a deleted or replaced file leaves no
shared side files for the old and the new file to fight over.

Surviving deletion and replacement
----------------------------------
Inside every transaction the limiter checks that ``path`` still names the store it used last:
the same file (device and inode: an open file's inode cannot be reused) holding the same
``store_id`` (a file overwritten in place keeps its inode).  If not, it reopens ``path``
(creating it if needed) so that all processes converge on one file at their next request,
and -- because the new file does not know the grants of the last window -- puts every key on
hold for ``window + quiet`` seconds from then, and writes its own recent slots into it.  A
file that is not a SQLite database any more is moved aside (``<path>.corrupt``) and rebuilt
the same way.  A process that starts after the change and never saw the old file holds too
when it is the one that creates the new store where one was before (the lock file or the
journal exists): a deleted file, a blank database or an empty file put in its place.

What is not seen (decided in issue 20: ``docs/architecture.md``, "Key decisions"): a
*valid* limiter file put at the path -- one from elsewhere, a backup, the file moved away and
back -- and first used by a process that never saw the old one is trusted until a process
that used the old one makes its next request (and holds); a backup of this very store copied
over it in place is not seen at all.  The last window's grants may then be repeated once: one
penalty at most, whose 429s are the requests in flight when it starts (at most ``limit``),
and the first 429 holds the base for every process on the file.  Closing those cases took a
ledger beside the file and the file's recorded home and arrival time: ~250 lines, and a file
write per request.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "rl.sqlite"
>>> limiter = LocalLimiter(rate=5, path=path)
>>> for _ in range(5):
...     limiter.acquire("appAAAAAAAAAAAAAA")  # the first five do not wait
>>> limiter.close()
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import filelock
import platformdirs

from .. import forks
from ..errors import ConfigError
from .base import (
    DEFAULT_LEASE,
    DEFAULT_MARGIN,
    DEFAULT_QUIET,
    MAX_HOLD,
    Slot,
    check_seconds,
    slot_rule,
)
from .usage import month_of

__all__ = ["LocalLimiter", "default_limiter_path"]

T = TypeVar("T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS slots (key TEXT NOT NULL, token TEXT PRIMARY KEY,"
    " frees_at REAL NOT NULL, in_flight INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS slots_key ON slots (key, frees_at)",
    "CREATE TABLE IF NOT EXISTS holds (key TEXT PRIMARY KEY, until REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS usage (key TEXT NOT NULL, month TEXT NOT NULL,"
    " kind TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (key, month, kind))",
    "CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, token TEXT NOT NULL,"
    " until REAL NOT NULL)",
)

#: SQLITE_READONLY_DBMOVED: the database file was moved or replaced under the connection.
_SQLITE_READONLY_DBMOVED = 1032

#: Times a transaction is retried when the file changes under it, before giving up.
_REOPEN_ATTEMPTS = 5


def default_limiter_path() -> Path:
    """The per-user SQLite file shared by every process of this user on this machine.

    (``-v2``: the slot table replaced the grant log of earlier versions.)
    """
    return Path(platformdirs.user_cache_dir("jobtrack-airtable")) / "ratelimit-v2.sqlite"


class _FileChanged(Exception):
    """``path`` no longer names the file the connection has open."""


class LocalLimiter:
    """The slot rule of :mod:`.base`, shared by all threads and processes on one machine.

    ``rate`` requests/second per key; ``path`` the SQLite file (default
    :func:`default_limiter_path`); ``margin``, ``lease``, ``quiet`` as in :mod:`.base`.  The
    file is opened lazily and reopened after ``fork``.
    """

    def __init__(
        self,
        rate: float = 5.0,
        path: Path | str | None = None,
        *,
        margin: float = DEFAULT_MARGIN,
        lease: float = DEFAULT_LEASE,
        quiet: float = DEFAULT_QUIET,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit, self.window = slot_rule(rate, margin)
        self.rate = float(rate)
        self.lease = max(check_seconds("lease", lease), self.window)
        self.quiet = check_seconds("quiet", quiet)
        self.path = Path(path).expanduser() if path is not None else default_limiter_path()
        self._clock = clock
        self._sleep = sleep
        self._thread_lock = threading.Lock()
        # After a fork: a parent thread may have held it mid-transaction (the connection
        # itself is reopened by the pid check).
        forks.register(self, LocalLimiter._fresh_lock)
        self._conn: sqlite3.Connection | None = None
        self._file_lock: filelock.BaseFileLock | None = None
        self._pid: int | None = None
        #: (device, inode) of the file the connection has open.
        self._identity: tuple[int, int] | None = None
        #: The store last used (its file's identity and its store_id), kept across close():
        #: another one at ``path`` later means that store was lost.
        self._known: tuple[tuple[int, int], str] | None = None
        #: This process's own recent slots, token -> (key, frees_at, in_flight): written into
        #: a new file when the old one was lost.
        self._mine: dict[str, tuple[str, float, bool]] = {}
        self._instance = uuid.uuid4().hex[:12]
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"LocalLimiter(rate={self.rate:g}, window={self.window:g}s, path={str(self.path)!r})"

    # -- the file -------------------------------------------------------------------------

    def _lock_path(self) -> str:
        return f"{self.path}.lock"

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _drop(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None
        self._identity = None

    def _open(self) -> sqlite3.Connection:
        # Connections and lock handles must not cross fork(): reopen in a child process.
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Traces of an earlier store at this path (the lock file is never removed on
            # Linux; the rollback journal stays, truncated, after the first write).
            used_before = any(os.path.exists(f"{self.path}{s}") for s in (".lock", "-journal"))
            # thread_local=False: the per-process threading lock already serialises threads;
            # a short poll keeps cross-process hand-over quick (each hold is ~1 ms).
            file_lock = filelock.FileLock(
                self._lock_path(), thread_local=False, poll_interval=0.005
            )
            with file_lock:
                conn = self._connect(used_before=used_before)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the rate-limiter file {str(self.path)!r}: {exc} "
                "(set JOBTRACK_LIMITER_URL=sqlite:///a/writable/path or JOBTRACK_RATE_LIMIT=0)"
            ) from exc
        self._conn, self._file_lock, self._pid = conn, file_lock, os.getpid()
        return conn

    def _connect(self, *, used_before: bool) -> sqlite3.Connection:
        """Open (creating or rebuilding) the file; called under the file lock.

        ``used_before``: a store was at this path before (its lock file or journal exists),
        so some process may have used it within the window.
        """
        for _ in range(_REOPEN_ATTEMPTS):
            # Stat before and after: a file swapped in between may not be the one opened.
            before = self._stat()
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=TRUNCATE")
                conn.execute("PRAGMA synchronous=OFF")
                for statement in _SCHEMA:
                    conn.execute(statement)
                identity = self._stat()
                conn.execute("BEGIN IMMEDIATE")
                now = self._clock()  # after BEGIN, which may wait for another process
                store_id = _meta(conn, "store_id")
                created = store_id is None
                if store_id is None:
                    store_id = uuid.uuid4().hex
                    _set_meta(conn, "store_id", store_id)
                # Lost: this process used another store here, or nobody knows (a store created
                # where one was before, whoever creates it): the last window's grants are
                # unknown, so every key waits them out.
                if (created and used_before) or (
                    self._known is not None and self._known != (identity, store_id)
                ):
                    self._adopt(conn, now)
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                conn.close()
                if _moved(exc):
                    used_before = True  # replaced while we opened it: open what is there now
                    continue
                if isinstance(exc, sqlite3.OperationalError):
                    raise  # locked, read-only, disk full...: not a damaged file
                # Not a database (replaced by something else) or damaged: move it aside.
                os.replace(self.path, f"{self.path}.corrupt")
                used_before = True
                continue
            except BaseException:
                conn.close()  # never leave the write lock held by a half-done open
                raise
            if identity is None or identity != self._stat() or before not in (None, identity):
                conn.close()  # replaced while we opened it: open whatever is there now
                used_before = True
                continue
            self._identity = identity
            self._known = (identity, store_id)
            return conn
        raise sqlite3.OperationalError("the file kept changing while it was being opened")

    def _adopt(self, conn: sqlite3.Connection, now: float) -> None:
        """The file replaced a lost one: hold every key until the lost file's grants have
        left the window, and bring this process's own recent slots over."""
        _hold(conn, "*", now + self.window + self.quiet)
        for token, (key, frees_at, in_flight) in self._mine.items():
            if frees_at > now:
                conn.execute(
                    "INSERT OR REPLACE INTO slots VALUES (?, ?, ?, ?)",
                    (key, token, frees_at, int(in_flight)),
                )

    def _transaction(self, body: Callable[[sqlite3.Connection, float], T]) -> T:
        """Run ``body(conn, now)`` in one immediate transaction on the file ``path`` names."""
        for _ in range(_REOPEN_ATTEMPTS):
            conn = self._open()
            assert self._file_lock is not None
            try:
                with self._file_lock:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        if self._changed(conn):
                            raise _FileChanged
                        result = body(conn, self._clock())
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:  # SQLite may have rolled back already
                            conn.execute("ROLLBACK")
                        raise
            except _FileChanged:
                self._drop()
                continue
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and not _moved(exc):
                    raise
                self._drop()  # moved or gone bad under us: reopened (or rebuilt) next
                continue
            return result
        raise ConfigError(
            f"the rate-limiter file {str(self.path)!r} keeps being replaced; "
            "point JOBTRACK_LIMITER_URL at a file nothing else touches"
        )

    def _changed(self, conn: sqlite3.Connection) -> bool:
        """``path`` no longer names this connection's store: deleted, replaced (another
        inode), or overwritten in place by another store or by a blank file (same inode)."""
        if self._stat() != self._identity:
            return True
        try:
            store_id = _meta(conn, "store_id")
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return True  # a blank file written over this one
            raise
        return self._known is None or store_id != self._known[1]

    # -- the rule -------------------------------------------------------------------------

    def _try_reserve(self, conn: sqlite3.Connection, now: float, key: str) -> tuple[str, float]:
        # Expired slots, and slots/holds "from the future" left by a clock that stepped back.
        conn.execute(
            "DELETE FROM slots WHERE frees_at <= ? OR frees_at > ?",
            (now, now + self.lease + self.window),
        )
        conn.execute("DELETE FROM holds WHERE until <= ? OR until > ?", (now, now + MAX_HOLD))
        (hold,) = conn.execute(
            "SELECT MAX(until) FROM holds WHERE key IN (?, '*')", (key,)
        ).fetchone()
        if hold is not None:
            return "", hold - now
        rows = conn.execute(
            "SELECT frees_at FROM slots WHERE key = ? ORDER BY frees_at LIMIT ?",
            (key, self.limit),
        ).fetchall()
        if len(rows) < self.limit:
            token = f"{os.getpid()}:{self._instance}:{next(self._seq)}"
            conn.execute("INSERT INTO slots VALUES (?, ?, ?, 1)", (key, token, now + self.lease))
            self._mine[token] = (key, now + self.lease, True)
            return token, 0.0
        # A released slot frees at its time; one still in flight frees no earlier than one
        # window from now (its release is at least "now"), so look again then.
        return "", max(min(rows[0][0] - now, self.window), 0.001)

    def _release(
        self,
        conn: sqlite3.Connection,
        now: float,
        slot: Slot,
        penalty: float,
        usage: Sequence[str],
    ) -> None:
        frees_at = now + self.window
        # INSERT OR REPLACE: the row is missing when the file was replaced meanwhile, or the
        # lease ran out; either way the request must count from now.
        conn.execute(
            "INSERT OR REPLACE INTO slots VALUES (?, ?, ?, 0)", (slot.key, slot.token, frees_at)
        )
        if penalty > 0:
            _hold(conn, slot.key, now + penalty)
        if usage:
            month = month_of(now)
            conn.executemany(
                "INSERT INTO usage VALUES (?, ?, ?, 1) "
                "ON CONFLICT (key, month, kind) DO UPDATE SET n = n + 1",
                [(slot.key, month, kind) for kind in usage],
            )
        self._mine[slot.token] = (slot.key, frees_at, False)
        for token in [t for t, (_, f, _) in self._mine.items() if f <= now]:
            del self._mine[token]

    # -- Limiter --------------------------------------------------------------------------

    def reserve(self, key: str) -> Slot:
        """Block until a slot on ``key`` is free, then occupy it."""
        while True:
            with self._thread_lock:
                token, wait = self._transaction(lambda c, now: self._try_reserve(c, now, key))
            if token:
                return Slot(key, token)
            # Sleep without holding either lock so other keys and processes proceed.
            self._sleep(wait)

    def release(self, slot: Slot, *, penalty: float = 0.0, usage: Sequence[str] = ()) -> None:
        """The request of ``slot`` finished now; see :meth:`.base.Limiter.release`."""
        if not slot.token:
            return
        with self._thread_lock:
            self._transaction(lambda c, now: self._release(c, now, slot, penalty, usage))

    def acquire(self, key: str) -> None:
        """Count one request on ``key`` that is sent and finished now (waits for a slot)."""
        self.release(self.reserve(key))

    def try_lock(self, keys: Sequence[str], token: str, ttl: float) -> bool:
        """Take every lock of ``keys`` for ``token`` (for ``ttl`` seconds at most), or none of
        them when another token holds one (see :mod:`.locks`)."""

        def body(conn: sqlite3.Connection, now: float) -> bool:
            conn.execute("DELETE FROM locks WHERE until < ?", (now,))
            marks = ",".join("?" * len(keys))
            (taken,) = conn.execute(
                f"SELECT COUNT(*) FROM locks WHERE key IN ({marks}) AND token != ?",
                (*keys, token),
            ).fetchone()
            if taken:
                return False
            conn.executemany(
                "INSERT OR REPLACE INTO locks (key, token, until) VALUES (?, ?, ?)",
                [(k, token, now + ttl) for k in keys],
            )
            return True

        with self._thread_lock:
            return self._transaction(body)

    def unlock(self, keys: Sequence[str], token: str) -> None:
        """Release the locks of ``keys`` that ``token`` holds."""

        def body(conn: sqlite3.Connection, now: float) -> None:
            conn.executemany(
                "DELETE FROM locks WHERE key = ? AND token = ?", [(k, token) for k in keys]
            )

        with self._thread_lock:
            self._transaction(body)

    def usage(self, key: str, month: str) -> dict[str, int]:
        """``{kind: n}`` counted for ``key`` in ``month`` (``"2026-12"``, UTC)."""
        with self._thread_lock:
            rows = self._transaction(
                lambda c, now: c.execute(
                    "SELECT kind, n FROM usage WHERE key = ? AND month = ?", (key, month)
                ).fetchall()
            )
        return {str(kind): int(n) for kind, n in rows}

    def _fresh_lock(self) -> None:
        self._thread_lock = threading.Lock()

    def close(self) -> None:
        """Close the SQLite connection (reopened on the next use)."""
        with self._thread_lock:
            self._drop()
            self._file_lock = None


def _meta(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def _moved(exc: sqlite3.DatabaseError) -> bool:
    """SQLite refused a write because the file was renamed or replaced under the connection."""
    return getattr(exc, "sqlite_errorcode", None) == _SQLITE_READONLY_DBMOVED


def _set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))


def _hold(conn: sqlite3.Connection, key: str, until: float) -> None:
    # Holds only grow: a second 429 inside a penalty must not shorten it.
    conn.execute(
        "INSERT INTO holds VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET until = MAX(until, ?)",
        (key, until, until),
    )
