"""One machine: every thread and process shares the limit through a SQLite file.

:class:`LocalLimiter` keeps the slots of :mod:`.base`'s rule in a SQLite file (by default in
the user's cache directory); every process that opens the same path shares the budget.

The file
--------
Tables ``slots(key, token, frees_at, in_flight)``, ``holds(key, until)`` (``key = '*'``: every
key), ``meta(name, value)`` (a random ``store_id``, the ``born`` time, the ``home`` the file
was made for -- its device and inode, its directory's device and inode, its name -- and when
it ``arrived`` there), ``usage(key, month, kind, n)`` (:mod:`.usage`) and ``locks(key, token,
until)`` (:mod:`.locks`).  Each operation is one ``BEGIN IMMEDIATE``
transaction, taken under a :mod:`filelock` lock on ``<path>.lock`` (the lock only keeps the
hand-over between processes quick; SQLite's own lock is what serialises them).  Wall-clock
time is used because timestamps are compared between processes; rows from the future (a clock
that stepped back) are discarded rather than trusted.

The journal is a rollback journal (``TRUNCATE``) with ``synchronous=OFF``: a killed process
cannot corrupt the file (only an OS crash could, and then the file is rebuilt), and -- unlike
WAL, whose ``-wal``/``-shm`` files are shared by name -- a deleted or replaced file leaves no
shared side files for the old and the new file to fight over.

Surviving deletion and replacement
----------------------------------
Inside every transaction the limiter checks that ``path`` still names its store: the same
file (device and inode: an open file's inode cannot be reused), holding the same
``store_id`` (a file overwritten in place keeps its inode), not written since the last commit
by anything but SQLite (a commit writes the database and then truncates the rollback journal,
so a database newer than its empty journal was copied over; both times come from the same
file system, so no two clocks are compared).  If not, it reopens ``path`` (creating it if
needed) so that all processes converge on one file at their next request, and -- because the
new file does not know the grants of the last window -- puts every key on hold until ``window
+ quiet`` seconds after the new file arrived, then writes its own recent slots into it.  A file
that is not a SQLite database any more is moved aside (``<path>.corrupt``) and rebuilt the
same way.

The hold is put by whoever opens the new file first, including a process that starts after
the change and never saw the old file: a blank file (deleted and recreated, or a blank
database put in its place) holds when the lock file, the journal or the ledger shows the path
was used before; a limiter file made elsewhere holds because its ``home`` is not this one (its
birth time says nothing about when it was moved here); a backup copied back holds because it
is newer than the journal, or behind the ledger.

The ledger, ``<path>.seen``, holds the ``store_id`` and ``generation`` (a count of commits,
kept in ``meta``) of the last commit, written after each one under the file lock.  A file
whose store differs from the ledger's, or whose generation is behind it, is not the file the
last commit went to: the file moved away and back, a backup of the same store restored (even
onto the old inode number, even keeping its old times).  Not seen: every trace removed (the
database, its journal, its lock file and the ledger) before a newcomer's first request.

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
        self._identity: tuple[int, int] | None = None
        #: The store_id of the file last used: a different one later means the file was lost.
        self._known_store: str | None = None
        #: When this process last used that file (it was still at ``path`` then).
        self._last_seen = float("-inf")
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

    def _home(self, identity: tuple[int, int]) -> str:
        """What the file was made for: itself (device, inode) at this path, named by its
        directory's device and inode and its name -- not by a path string, which differs
        between a symlink, a bind mount and letter case for the same file."""
        parent = os.stat(self.path.parent)
        name = os.path.normcase(self.path.name).casefold()
        return f"{identity[0]}:{identity[1]}:{parent.st_dev}:{parent.st_ino}:{name}"

    def _modified_outside(self) -> bool:
        """The file was written after the last commit: not by SQLite, so by something else
        (a backup copied over it, or copied back after it was deleted).

        A commit writes the database's pages and then truncates the rollback journal, so
        after every commit the journal is empty and no older than the database.  Both times
        are stamped by the same file system, so no clock is compared with another.  Called
        inside a write transaction: no other commit can be half-done meanwhile.
        """
        try:
            db = os.stat(self.path)
        except FileNotFoundError:
            return False  # gone: the identity check sees that
        try:
            journal = os.stat(f"{self.path}-journal")
        except FileNotFoundError:
            # The journal stays (truncated) after the first commit: a store without one was
            # put here by something else, or had its journal deleted along with its state.
            return True
        return journal.st_size == 0 and db.st_mtime_ns > journal.st_mtime_ns

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
            # Traces of an earlier file at this path (the lock file is never removed on
            # Linux; the rollback journal stays, truncated, after the first write).
            used_before = any(
                os.path.exists(f"{self.path}{suffix}") for suffix in (".lock", "-journal", ".seen")
            )
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

        ``used_before``: a file was at this path before (its lock file, journal or ledger
        exists), so some process may have used it within the window.
        """
        # A lock file without its database: the file was lost, its grants are unknown.
        lost_before = used_before and self._stat() is None
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
                store_id, arrived = self._arrival(
                    conn, identity, now, hold=used_before and not lost_before
                )
                # For a process that used a file here: another store, or its own store
                # arriving again (a backup, moved away and back) -- either way a loss.
                lost = lost_before or (
                    self._known_store is not None
                    and (store_id != self._known_store or arrived == now)
                )
                if lost:
                    # A file that arrived before this process last used its old one was
                    # here before, went away and came back: when is unknown, so from now.
                    since = arrived if arrived >= self._last_seen else now
                    self._adopt(conn, since, now)
                generation = self._record(conn)
                conn.execute("COMMIT")
                self._write_ledger(store_id, generation)
            except sqlite3.DatabaseError as exc:
                conn.close()
                if _moved(exc):
                    lost_before = True  # replaced while we opened it: open what is there now
                    continue
                if isinstance(exc, sqlite3.OperationalError):
                    raise  # locked, read-only, disk full...: not a damaged file
                # Not a database (replaced by something else) or damaged: move it aside.
                os.replace(self.path, f"{self.path}.corrupt")
                lost_before = True
                continue
            except BaseException:
                conn.close()  # never leave the write lock held by a half-done open
                raise
            if identity is None or identity != self._stat() or before not in (None, identity):
                conn.close()  # replaced while we opened it: open whatever is there now
                lost_before = True
                continue
            self._identity = identity
            self._known_store = store_id
            self._last_seen = now
            return conn
        raise sqlite3.OperationalError("the file kept changing while it was being opened")

    def _arrival(
        self,
        conn: sqlite3.Connection,
        identity: tuple[int, int] | None,
        now: float,
        *,
        hold: bool,
    ) -> tuple[str, float]:
        """``(store_id, arrived)``: the file's ID and when it arrived at ``path``.

        A blank file (created here, or a blank database put in its place) arrives now; so
        does a limiter file made elsewhere (its ``home`` is another file or path) -- its
        birth time says nothing about when it was put here -- and one written since its last
        transaction (a backup copied over it, or copied back after the file was deleted).
        With ``hold`` (a file may have been here before), an arrival puts every key on hold,
        whoever opens the file first: the grants of the window before it are unknown.
        """
        home = self._home(identity) if identity else ""
        store_id = _meta(conn, "store_id")
        recorded_home = _meta(conn, "home")
        if store_id is None:
            store_id = uuid.uuid4().hex
            _set_meta(conn, "store_id", store_id)
            _set_meta(conn, "born", repr(now))
            arrived_now = True
        else:
            arrived_now = (
                recorded_home != home
                or self._modified_outside()
                or self._behind_ledger(conn, store_id)
            )
        if arrived_now:
            _set_meta(conn, "home", home)
            _set_meta(conn, "arrived", repr(now))
            if hold:
                _hold(conn, "*", now + self.window + self.quiet)
            return store_id, now
        try:
            return store_id, float(_meta(conn, "arrived") or _meta(conn, "born") or now)
        except ValueError:  # not written by this limiter: trust nothing about it
            return store_id, now

    def _adopt(self, conn: sqlite3.Connection, since: float, now: float) -> None:
        """The file replaced a lost one at ``since``: hold every key until the lost file's
        grants have left the window, and bring this process's own recent slots over."""
        until = since + self.window + self.quiet
        if until > now:
            _hold(conn, "*", until)
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
                        now = self._clock()
                        result = body(conn, now)
                        generation = self._record(conn)
                        conn.execute("COMMIT")
                        assert self._known_store is not None  # _changed: the file's store
                        self._write_ledger(self._known_store, generation)
                        self._last_seen = now
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
        inode), overwritten in place by another store or by a blank file (same inode), or
        written outside the limiter since its last transaction."""
        if self._stat() != self._identity:
            return True
        try:
            store_id = _meta(conn, "store_id")
            return (
                store_id != self._known_store
                or self._modified_outside()
                or self._behind_ledger(conn, store_id)
            )
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return True  # a blank file written over this one
            raise

    # -- the ledger: the last committed (store, generation), kept beside the file ---------

    def _ledger_path(self) -> str:
        return f"{self.path}.seen"

    def _behind_ledger(self, conn: sqlite3.Connection, store_id: str | None) -> bool:
        """The file is not the one the last commit went to: another store, or the same
        store at an earlier generation (a backup of it, or the file moved away and back)."""
        try:
            with open(self._ledger_path(), encoding="ascii") as f:
                seen_store, seen_generation = f.read().split()
            seen = int(seen_generation)
        except (OSError, ValueError):
            return False  # no ledger (yet), or a torn one: nothing to compare with
        return seen_store != store_id or _generation(conn) < seen

    def _record(self, conn: sqlite3.Connection) -> int:
        """Count this commit (inside its transaction) and return its generation, for the
        ledger that :meth:`_write_ledger` writes after COMMIT, still under the file lock (a
        crash in between leaves the ledger behind the file: harmless)."""
        generation = _generation(conn) + 1
        _set_meta(conn, "generation", str(generation))
        return generation

    def _write_ledger(self, store_id: str, generation: int) -> None:
        try:
            with open(self._ledger_path(), "w", encoding="ascii") as f:
                f.write(f"{store_id} {generation}\n")
        except OSError:  # a read-only directory: the ledger is a check, not the store
            pass

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


def _generation(conn: sqlite3.Connection) -> int:
    value = _meta(conn, "generation")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))


def _hold(conn: sqlite3.Connection, key: str, until: float) -> None:
    # Holds only grow: a second 429 inside a penalty must not shorten it.
    conn.execute(
        "INSERT INTO holds VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET until = MAX(until, ?)",
        (key, until, until),
    )
