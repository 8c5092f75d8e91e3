"""Fleet mode: one rate limit per base shared by workers on many machines, through Redis.

Selected by configuration (SPEC §3.4)::

    JOBTRACK_LIMITER_URL=redis://:password@redis.internal:6379/0   # or rediss:// for TLS
    JOBTRACK_LIMITER_FALLBACK=local                                # or "fail"

:class:`RedisLimiter` implements the same :class:`~.limiter.Limiter` interface and the same
sliding-window-log semantics as :class:`~.limiter.LocalLimiter` (at most ``limit =
max(1, floor(rate))`` grants per key in any window of ``limit / rate + margin`` seconds, 5 per
1.1 s by default), with the log kept in a Redis sorted set per base::

    jobtrack:ratelimit:{base_id}     member: a unique grant ID, score: grant time (µs, Redis TIME)

Each attempt is **one Lua script** (:data:`ACQUIRE_SCRIPT`) run atomically by Redis: it reads
the server's own clock (``TIME``, so the workers' clocks do not matter), drops expired grants,
and either records a grant or answers how long to wait -- no read-then-write race between
machines.  Waiting happens in the worker, outside Redis.

When Redis cannot be reached (connection refused, timeout, authentication, a read-only
replica...), ``fallback`` decides:

* a :class:`~.limiter.Limiter` (``JOBTRACK_LIMITER_FALLBACK=local``, the default): requests go
  through that per-machine limiter instead, and one warning is logged per outage -- tracking
  never stops a scoring job;
* ``None`` (``JOBTRACK_LIMITER_FALLBACK=fail``): :meth:`RedisLimiter.acquire` raises
  :class:`~.errors.LimiterUnavailableError` and no request is sent.

Either way Redis is tried again at most every ``retry_interval`` seconds (5 by default) and used
again as soon as it answers.  URLs are always shown with the password masked.

The ``redis`` package is optional (``pip install 'jobtrack-airtable[redis]'``); this module
imports without it and refuses with a :class:`~.errors.ConfigError` naming the extra only when a
Redis limiter is actually built.

>>> redact_url("redis://:s3cret@redis.internal:6379/0")
'redis://:***@redis.internal:6379/0'
>>> redis_key("appAAAAAAAAAAAAAA")
'jobtrack:ratelimit:appAAAAAAAAAAAAAA'
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit, urlunsplit

from .errors import ConfigError, LimiterUnavailableError
from .limiter import DEFAULT_MARGIN, Limiter, LocalLimiter
from .settings import Settings

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # the 'redis' extra is not installed: fine until a Redis limiter is built
    redis = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from redis import Redis

__all__ = [
    "ACQUIRE_SCRIPT",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_RETRY_INTERVAL",
    "INSTALL_HINT",
    "RedisLimiter",
    "build_redis_limiter",
    "redact_url",
    "redis_key",
]

log = logging.getLogger(__name__)

#: Prefix of every Redis key this library writes; the base ID follows it.
DEFAULT_KEY_PREFIX = "jobtrack:ratelimit:"

#: Seconds between two attempts to reach Redis while it is down.
DEFAULT_RETRY_INTERVAL = 5.0

#: Connect/read timeout of one Redis call.  Short: a limiter that hangs for the default
#: minutes would stall the scoring job it is meant to protect.
DEFAULT_SOCKET_TIMEOUT = 2.0

#: What users without the extra are told to run.
INSTALL_HINT = "pip install 'jobtrack-airtable[redis]'"

#: The atomic acquire step.  KEYS[1]: the base's sorted set.  ARGV: limit, window (µs), a
#: unique member.  Returns 0 when a grant was recorded, else the µs to wait before retrying.
#: All arithmetic stays in integers passed straight to redis.call: Lua 5.1 would format a
#: concatenated 16-digit number as "%.14g" and lose the microseconds.
ACQUIRE_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 5: allow TIME
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
-- Expired grants, and grants "from the future" left by a server clock that stepped back.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[1], now + window + 1, '+inf')
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  -- Idle bases leave nothing behind.
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
-- The oldest of the last `limit` grants must leave the window first.
local oldest = redis.call('ZRANGE', KEYS[1], -limit, -limit, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 1000 then wait = 1000 end
return wait
"""


_QUERY_PASSWORD_RE = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


def redis_key(base_id: str, prefix: str = DEFAULT_KEY_PREFIX) -> str:
    """The Redis key holding the grants of ``base_id``.

    >>> redis_key("appBBBBBBBBBBBBBB", prefix="fleet-a:")
    'fleet-a:appBBBBBBBBBBBBBB'
    """
    return f"{prefix}{base_id}"


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, safe for logs and errors.

    >>> redact_url("rediss://worker:pa55@cache:6380/2")
    'rediss://worker:***@cache:6380/2'
    >>> redact_url("redis://127.0.0.1:6379/0?password=pa55&db=1")
    'redis://127.0.0.1:6379/0?password=***&db=1'
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if password is not None:
        # Rebuild from the raw netloc: .port would raise on a bad port number.
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    # redis-py also takes the password as a query option (?password=...).
    query = _QUERY_PASSWORD_RE.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _scrub(text: str, secret: str | None) -> str:
    # redis-py's messages name host and port, not the password; scrub it anyway in case a
    # future version (or a proxy's reply) echoes it.
    return text.replace(secret, "***") if secret else text


def _require_redis() -> None:
    if redis is None:
        raise ConfigError(
            "JOBTRACK_LIMITER_URL points at Redis, but the 'redis' package is not installed: "
            f"run {INSTALL_HINT}"
        )


class RedisLimiter:
    """Sliding-window-log limiter shared by every worker that uses the same Redis.

    ``url`` is a ``redis://`` or ``rediss://`` URL as redis-py understands it (or pass a
    ready ``client``).  ``rate``, ``margin`` as for :class:`~.limiter.LocalLimiter`.  Keys are
    ``key_prefix + base_id``.  ``fallback`` is the limiter used while Redis is unreachable
    (``None``: raise :class:`~.errors.LimiterUnavailableError` instead); Redis is retried at
    most every ``retry_interval`` seconds.  Safe to share between threads, and usable after
    ``fork`` (redis-py reopens its connections in the child).

    >>> limiter = RedisLimiter("redis://127.0.0.1:6379/0", rate=5)
    >>> limiter
    RedisLimiter(url='redis://127.0.0.1:6379/0', rate=5, window=1.1s, fallback=None)
    >>> limiter.acquire("appAAAAAAAAAAAAAA")               # doctest: +SKIP
    >>> limiter.close()
    """

    def __init__(
        self,
        url: str | None = None,
        rate: float = 5.0,
        *,
        fallback: Limiter | None = None,
        margin: float = DEFAULT_MARGIN,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        client: Redis | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of requests/second, not {rate!r}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be >= 0 seconds, not {margin!r}")
        if not (math.isfinite(retry_interval) and retry_interval >= 0):
            raise ValueError(f"retry_interval must be >= 0 seconds, not {retry_interval!r}")
        if (url is None) == (client is None):
            raise ValueError("pass exactly one of url and client")
        self.rate = float(rate)
        self.limit = max(1, math.floor(rate))
        self.window = self.limit / self.rate + margin
        self._window_us = round(self.window * 1_000_000)
        self.key_prefix = key_prefix
        self.fallback = fallback
        self.retry_interval = float(retry_interval)
        self._sleep = sleep
        self._monotonic = monotonic
        if client is None:
            assert url is not None
            _require_redis()
            self._password = _password_of(url)
            self.url = redact_url(url)
            try:
                _check_db(url)
                # retry: no hidden reconnect loops inside redis-py; this class decides when
                # Redis is tried again.
                client = redis.Redis.from_url(
                    url,
                    socket_connect_timeout=socket_timeout,
                    socket_timeout=socket_timeout,
                    retry=Retry(NoBackoff(), 0),
                )
                # Build (not connect) one connection now, so a bad URL option is a ConfigError
                # at startup rather than a TypeError on the first request.
                pool = client.connection_pool
                pool.connection_class(**pool.connection_kwargs)
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"JOBTRACK_LIMITER_URL {self.url!r} is not a valid Redis URL: "
                    f"{_scrub(str(exc), self._password)}"
                ) from None
        else:
            self._password = None
            self.url = f"<client {client.connection_pool!r}>"
        self._client: Redis = client
        self._script = client.register_script(ACQUIRE_SCRIPT)
        # Members must be unique across processes and threads, or ZADD would overwrite a grant
        # instead of adding one; the pid is read per call so a forked child differs.
        self._instance = uuid.uuid4().hex[:12]
        self._seq = itertools.count()
        self._state_lock = threading.Lock()
        #: Set while Redis is considered down: the exception text of the last failure.
        self._down_reason: str | None = None
        self._next_attempt = 0.0
        self._closed = False

    def __repr__(self) -> str:
        fallback = "None" if self.fallback is None else type(self.fallback).__name__
        return (
            f"RedisLimiter(url={self.url!r}, rate={self.rate:g}, window={self.window:g}s, "
            f"fallback={fallback})"
        )

    @property
    def available(self) -> bool:
        """Whether the last attempt reached Redis (``True`` before the first attempt)."""
        return self._down_reason is None

    # -- one attempt ----------------------------------------------------------------------

    def _due(self) -> bool:
        """Whether this call should talk to Redis (it is up, or a reconnect attempt is due)."""
        with self._state_lock:
            if self._down_reason is None:
                return True
            now = self._monotonic()
            if now < self._next_attempt:
                return False
            # Claim this attempt so concurrent threads do not all probe a dead server.
            self._next_attempt = now + self.retry_interval
            return True

    def _mark_down(self, exc: BaseException) -> None:
        reason = _scrub(f"{type(exc).__name__}: {exc}", self._password)
        with self._state_lock:
            first = self._down_reason is None
            self._down_reason = reason
            self._next_attempt = self._monotonic() + self.retry_interval
        if first:
            then = (
                f"falling back to {self.fallback!r}"
                if self.fallback is not None
                else "refusing requests (JOBTRACK_LIMITER_FALLBACK=fail)"
            )
            # One warning per outage, not per request: a fleet would otherwise flood its logs.
            log.warning(
                "rate-limiter Redis at %s is unreachable (%s); %s; retrying every %gs",
                self.url,
                reason,
                then,
                self.retry_interval,
            )

    def _mark_up(self) -> None:
        with self._state_lock:
            was_down = self._down_reason is not None
            self._down_reason = None
        if was_down:
            log.info("rate-limiter Redis at %s is reachable again; using it", self.url)

    def _try_grant(self, key: str) -> float | None:
        """Record a grant in Redis and return 0, return the seconds to wait, or return
        ``None`` when Redis is unavailable."""
        if not self._due():
            return None
        member = f"{os.getpid()}:{self._instance}:{next(self._seq)}"
        try:
            wait_us = self._script(
                keys=[redis_key(key, self.key_prefix)],
                args=[self.limit, self._window_us, member],
            )
        except redis.RedisError as exc:
            # Connection refused/reset, timeouts, auth, READONLY, OOM...: all mean "cannot
            # coordinate through Redis right now".
            self._mark_down(exc)
            return None
        self._mark_up()
        return int(wait_us) / 1_000_000

    def _unavailable(self) -> LimiterUnavailableError:
        with self._state_lock:
            reason = self._down_reason or "unknown error"
            retry_in = max(0.0, self._next_attempt - self._monotonic())
        return LimiterUnavailableError(
            self.url,
            f"{reason}; next attempt in {retry_in:.1f}s. JOBTRACK_LIMITER_FALLBACK=fail refuses "
            "to send requests without the shared limit (set it to 'local' to fall back to a "
            "per-machine limiter)",
        )

    # -- Limiter --------------------------------------------------------------------------

    def acquire(self, key: str) -> None:
        """Block until a request on ``key`` fits under the fleet-wide rate, then count it.

        Raises :class:`~.errors.LimiterUnavailableError` when Redis is unreachable and there
        is no fallback.
        """
        while True:
            wait = self._try_grant(key)
            if wait is None:
                if self.fallback is None:
                    raise self._unavailable()
                self.fallback.acquire(key)
                return
            if wait <= 0:
                return
            self._sleep(wait)

    def close(self) -> None:
        """Close the Redis connections and the fallback.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._client.close()
        except Exception:  # closing a client whose server is gone is not an error
            log.debug("closing the Redis client failed", exc_info=True)
        if self.fallback is not None:
            self.fallback.close()


def _check_db(url: str) -> None:
    # redis-py silently ignores a non-numeric database ("redis://host/abc" -> db 0).
    path = urlsplit(url).path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database must be a number (redis://host:6379/0), not {path!r}")


def _password_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        if parts.password:
            return unquote(parts.password)
    except ValueError:
        return None
    for value in parse_qs(parts.query).get("password", []):
        return value or None
    return None


def build_redis_limiter(settings: Settings, url: SplitResult) -> Limiter:
    """The :class:`RedisLimiter` for ``JOBTRACK_LIMITER_URL=redis://...``; its fallback is a
    :class:`~.limiter.LocalLimiter` at the default per-user path unless
    ``JOBTRACK_LIMITER_FALLBACK=fail``.  Registered in :data:`~.limiter.LIMITER_BACKENDS`.

    >>> from urllib.parse import urlsplit
    >>> s = Settings(_env_file=None, limiter_url="redis://:pw@127.0.0.1:6379/0")
    >>> build_redis_limiter(s, urlsplit(s.limiter_url))
    RedisLimiter(url='redis://:***@127.0.0.1:6379/0', rate=5, window=1.1s, fallback=LocalLimiter)
    """
    _require_redis()
    fallback: Limiter | None = (
        LocalLimiter(settings.rate_limit) if settings.limiter_fallback == "local" else None
    )
    return RedisLimiter(url.geturl(), settings.rate_limit, fallback=fallback)
