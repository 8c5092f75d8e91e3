"""Client-side rate limiting: keep every thread and process sharing a base under Airtable's
per-base limit (5 requests/second, SPEC §2.1, §3.4), so 429s -- and their 30 s penalty -- do
not happen in normal operation.

* :class:`Limiter` -- the interface: ``acquire(key)`` blocks until one request on ``key``
  (a base ID) may be sent.
* :class:`NullLimiter` -- no limiting (``JOBTRACK_RATE_LIMIT=0``).
* :class:`LocalLimiter` -- shared by every thread and process of one machine through a SQLite
  file guarded by a file lock.
* :class:`LimitedAdapter` -- a ``requests`` transport adapter that calls ``acquire`` before
  *every* HTTP request, so pagination pages and retries are counted too.
* :func:`build_limiter` -- picks the implementation from :class:`~.settings.Settings`.

>>> limiter = NullLimiter()
>>> limiter.acquire("appAAAAAAAAAAAAAA")  # returns at once
>>> base_key("https://api.airtable.com/v0/appAAAAAAAAAAAAAA/Job%20Tracking?offset=x")
'appAAAAAAAAAAAAAA'

Why not pyrate-limiter's ``SQLiteBucket``
-----------------------------------------
pyrate-limiter 4.5's SQLite bucket was the first choice and was measured before being set
aside.  With ``use_file_lock=True``, two processes of four threads each at 5/s let 7
acquisitions into one 1-second window in one run of three: after a blocked wait the limiter
advances the item's timestamp by the *planned* sleep (``item.timestamp += delay``) instead of
re-reading the clock, so time spent queueing for the file lock behind other processes is not
counted and entries are recorded earlier than they happened.  Its count query also ignores the
item name, so every key in one table shares one budget (one table per base would be needed),
and each process runs a background leaker thread.  The sliding-window log below is ~60 lines,
reads the clock under the lock, and holds the invariant directly.

The mechanism
-------------
A SQLite table ``grants(key, ts)`` holds the wall-clock time of every grant of the last
window.  ``acquire`` takes a per-process ``threading.Lock`` and then a :mod:`filelock` lock on
``<db>.lock`` (so one thread of one process at a time), reads the clock, drops expired rows,
and either records a grant (fewer than ``limit`` grants in the window) or computes when the
oldest grant leaves the window and sleeps *outside* the locks before trying again.  Wall-clock
time (not ``time.monotonic``) is used because the timestamps are compared between processes;
rows that lie in the future after the clock stepped back are discarded rather than trusted.

Safety margin: the window is ``limit / rate`` seconds *plus* ``margin`` (default 0.1 s).  A
server that enforces a strict sliding 1-second window sees a request when it *arrives*, and
network jitter can bring two requests that left 1.0 s apart closer together; 100 ms of slack
absorbs that at a cost of ~9% throughput (5 requests per 1.1 s), cheap next to a 30 s penalty.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import SplitResult, unquote, urlsplit

import filelock
import platformdirs
import requests
from requests.adapters import HTTPAdapter

from .errors import ConfigError
from .settings import Settings

__all__ = [
    "DEFAULT_MARGIN",
    "LimitedAdapter",
    "Limiter",
    "LocalLimiter",
    "NullLimiter",
    "base_key",
    "build_limiter",
    "default_limiter_path",
]

#: Extra seconds added to every window so latency jitter cannot push a 6th request into the
#: server's 1-second window.
DEFAULT_MARGIN = 0.1

#: Key used for requests that do not name a base (``/v0/meta/whoami``, ``/v0/meta/bases``).
NO_BASE_KEY = "_no_base"


@runtime_checkable
class Limiter(Protocol):
    """Blocks callers so that at most the configured rate of requests per key goes out.

    ``key`` is a base ID: Airtable's limit is per base, shared by every token using it.
    """

    def acquire(self, key: str) -> None:
        """Block until one request on ``key`` may be sent, and count it."""
        ...

    def close(self) -> None:
        """Release resources (files, connections).  Idempotent."""
        ...


class NullLimiter:
    """A limiter that never blocks (``JOBTRACK_RATE_LIMIT=0``).

    >>> NullLimiter().acquire("appAAAAAAAAAAAAAA")
    """

    def acquire(self, key: str) -> None:
        """Return immediately."""

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "NullLimiter()"


def default_limiter_path() -> Path:
    """The per-user SQLite file shared by every process of this user on this machine."""
    return Path(platformdirs.user_cache_dir("jobtrack-airtable")) / "ratelimit.sqlite"


class LocalLimiter:
    """Sliding-window-log limiter shared by all threads and processes on one machine.

    At most ``limit = max(1, floor(rate))`` grants per key fall in any window of
    ``limit / rate + margin`` seconds (5 per 1.1 s by default).  Processes coordinate through
    the SQLite file at ``path`` (default :func:`default_limiter_path`) and a file lock next to
    it; every process that uses the same path shares the budget.  The file is opened lazily
    and reopened after ``fork``.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rl.sqlite"
    >>> limiter = LocalLimiter(rate=5, path=path)
    >>> for _ in range(5):
    ...     limiter.acquire("appAAAAAAAAAAAAAA")  # the first five do not wait
    >>> limiter.close()
    """

    def __init__(
        self,
        rate: float = 5.0,
        path: Path | str | None = None,
        *,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of requests/second, not {rate!r}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be >= 0 seconds, not {margin!r}")
        self.rate = float(rate)
        self.limit = max(1, math.floor(rate))
        self.window = self.limit / self.rate + margin
        self.path = Path(path).expanduser() if path is not None else default_limiter_path()
        self._clock = clock
        self._sleep = sleep
        self._thread_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._file_lock: filelock.BaseFileLock | None = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        return f"LocalLimiter(rate={self.rate:g}, window={self.window:g}s, path={str(self.path)!r})"

    # -- storage --------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        # Connections and lock handles must not cross fork(): reopen in a child process.
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # thread_local=False: the per-process threading lock already serialises threads;
            # a short poll keeps cross-process hand-over quick (each hold is ~1 ms).
            file_lock = filelock.FileLock(
                f"{self.path}.lock", thread_local=False, poll_interval=0.005
            )
            with file_lock:
                conn = sqlite3.connect(
                    self.path, timeout=30.0, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS grants (key TEXT NOT NULL, ts REAL NOT NULL)"
                )
                conn.execute("CREATE INDEX IF NOT EXISTS grants_key_ts ON grants (key, ts)")
                conn.execute("CREATE INDEX IF NOT EXISTS grants_ts ON grants (ts)")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the rate-limiter file {str(self.path)!r}: {exc} "
                "(set JOBTRACK_LIMITER_URL=sqlite:///a/writable/path or JOBTRACK_RATE_LIMIT=0)"
            ) from exc
        self._conn, self._file_lock, self._pid = conn, file_lock, os.getpid()
        return conn

    def _try_grant(self, key: str) -> float:
        """Record a grant and return 0, or return the seconds to wait before trying again."""
        conn = self._open()
        assert self._file_lock is not None
        with self._file_lock:
            now = self._clock()
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Expired rows, and rows "from the future" left by a clock that stepped back.
                conn.execute(
                    "DELETE FROM grants WHERE ts <= ? OR ts > ?",
                    (now - self.window, now + self.window),
                )
                recent = conn.execute(
                    "SELECT ts FROM grants WHERE key = ? ORDER BY ts DESC LIMIT ?",
                    (key, self.limit),
                ).fetchall()
                if len(recent) < self.limit:
                    conn.execute("INSERT INTO grants (key, ts) VALUES (?, ?)", (key, now))
                    wait = 0.0
                else:
                    # The oldest of the last `limit` grants must leave the window first.
                    wait = max(recent[-1][0] + self.window - now, 0.001)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return wait

    # -- Limiter --------------------------------------------------------------------------

    def acquire(self, key: str) -> None:
        """Block until a request on ``key`` fits under the rate, then count it."""
        while True:
            with self._thread_lock:
                wait = self._try_grant(key)
            if wait <= 0:
                return
            # Sleep without holding either lock so other keys and processes proceed.
            self._sleep(wait)

    def close(self) -> None:
        """Close the SQLite connection (reopened on the next ``acquire``)."""
        with self._thread_lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
            self._file_lock = None


# --- which base a URL is for ----------------------------------------------------------------

_BASE_ID_RE = re.compile(r"^app[A-Za-z0-9]+$")


def base_key(url: str) -> str:
    """The base ID a request URL is addressed to -- the limiter key.

    Recognises ``/v0/{baseId}/...`` and ``/v0/meta/bases/{baseId}/...`` anywhere in the path
    (an endpoint URL may add a prefix); other requests share the key ``"_no_base"``.

    >>> base_key("http://127.0.0.1:8080/v0/meta/bases/appAAAAAAAAAAAAAA/tables")
    'appAAAAAAAAAAAAAA'
    >>> base_key("https://api.airtable.com/v0/meta/whoami")
    '_no_base'
    """
    parts = [unquote(p) for p in urlsplit(url).path.split("/") if p]
    for i, part in enumerate(parts):
        if part != "v0":
            continue
        rest = parts[i + 1 :]
        if rest[:2] == ["meta", "bases"] and len(rest) > 2 and _BASE_ID_RE.match(rest[2]):
            return rest[2]
        if rest and _BASE_ID_RE.match(rest[0]):
            return rest[0]
    return NO_BASE_KEY


class LimitedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that asks ``limiter`` for a slot before sending each request.

    Mounted on ``api.session`` by :func:`~.client.build_api`; because it sits at the transport
    level, every page of a listing and every retry is counted, not just top-level calls.

    >>> import requests
    >>> session = requests.Session()
    >>> session.mount("https://", LimitedAdapter(NullLimiter()))
    """

    def __init__(self, limiter: Limiter, **kwargs: Any) -> None:
        # max_retries stays at requests' default of 0: tenacity owns every retry.
        super().__init__(**kwargs)
        self.limiter = limiter

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self.limiter.acquire(base_key(request.url or ""))
        return super().send(request, *args, **kwargs)


# --- factory -------------------------------------------------------------------------------

LimiterBuilder = Callable[[Settings, SplitResult], Limiter]


def _sqlite_builder(settings: Settings, url: SplitResult) -> Limiter:
    if url.netloc or not url.path or url.path == "/":
        raise ConfigError(
            f"JOBTRACK_LIMITER_URL {url.geturl()!r} must look like sqlite:///absolute/path.sqlite"
        )
    raw = unquote(url.path)
    # Accept both sqlite:///abs/path and SQLAlchemy's sqlite:////abs/path (POSIX keeps a
    # leading "//" as distinct), and sqlite:///C:/path on Windows.
    if raw.startswith("//"):
        raw = "/" + raw.lstrip("/")
    if re.match(r"^/[A-Za-z]:[/\\]", raw):
        raw = raw[1:]
    return LocalLimiter(settings.rate_limit, Path(raw))


def _redis_builder(settings: Settings, url: SplitResult) -> Limiter:
    # Imported on use: the redis package is an optional extra (and limiter_redis imports us).
    from .limiter_redis import build_redis_limiter

    return build_redis_limiter(settings, url)


#: URL scheme -> builder.  Add a backend by adding an entry.
LIMITER_BACKENDS: dict[str, LimiterBuilder] = {
    "sqlite": _sqlite_builder,
    "redis": _redis_builder,
    "rediss": _redis_builder,
}


def build_limiter(settings: Settings) -> Limiter:
    """The limiter ``settings`` ask for.

    ``rate_limit == 0`` -> :class:`NullLimiter`; no ``limiter_url`` -> :class:`LocalLimiter`
    at :func:`default_limiter_path`; ``sqlite:///path`` -> :class:`LocalLimiter` at that path;
    ``redis://...`` / ``rediss://...`` -> :class:`~.limiter_redis.RedisLimiter` (fleet mode; needs
    the ``redis`` extra, else :class:`~.errors.ConfigError`).  Both
    ``sqlite:///abs/path`` and ``sqlite:////abs/path`` name the absolute path ``/abs/path``.

    >>> build_limiter(Settings(rate_limit=0))
    NullLimiter()
    """
    if settings.rate_limit == 0:
        return NullLimiter()
    if not settings.limiter_url:
        return LocalLimiter(settings.rate_limit)
    url = urlsplit(settings.limiter_url)
    builder = LIMITER_BACKENDS.get(url.scheme.lower())
    if builder is None:
        known = ", ".join(f"{s}://" for s in sorted(LIMITER_BACKENDS))
        # The URL itself is not echoed: a store URL may carry a password.
        raise ConfigError(
            f"JOBTRACK_LIMITER_URL has an unsupported scheme {url.scheme!r} (supported: {known})"
        )
    return builder(settings, url)
