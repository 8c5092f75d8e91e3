"""Fleet mode: one rate limit per base shared by workers on many machines, through Redis.

Selected by configuration (SPEC §3.4)::

    JOBTRACK_LIMITER_URL=redis://:password@redis.internal:6379/0   # or rediss:// for TLS
    JOBTRACK_LIMITER_FALLBACK=local                                # or "fail"

:class:`RedisLimiter` implements the same :class:`~.base.Limiter` interface and the same slot
rule as :class:`~.sqlite.LocalLimiter` (:mod:`.base`: at most ``limit`` slots per base, each
held until one window after its request finished), with the state in Redis::

    jobtrack:ratelimit:{base_id}          sorted set: member = slot ID, score = when it frees (µs)
    jobtrack:ratelimit:hold:{base_id}     a 429's shared penalty: hold until (µs)
    jobtrack:ratelimit:hold:*             every base on hold after Redis lost its state
    jobtrack:ratelimit:run                the Redis run (INFO run_id) this state belongs to
    jobtrack:ratelimit:usage:{base_id}:{YYYY-MM}   hash: requests by kind (:mod:`.usage`)

Reserving and releasing are **one Lua script each** (:data:`RESERVE_SCRIPT`,
:data:`RELEASE_SCRIPT`), run atomically by Redis with the server's own clock (``TIME``), so the
workers' clocks do not matter and there is no read-then-write race between machines.  Waiting
happens in the worker, outside Redis.

Redis restarts: a restart forgets the slots of the last window, whether Redis comes back empty
or loads an older snapshot. The ``run`` key names the Redis run (``INFO``'s ``run_id``, new at
every start) whose memory holds the state; the first call that finds it missing or naming
another run -- any worker's, a newcomer's too -- puts every base on hold for ``window + quiet +
retry_interval`` (about 7 s; from the start of the run when the state came back empty, else
from now): the retry interval covers workers that fell back to their machines during the outage
and grant there until their next probe finds Redis back. A flush (``FLUSHDB``) of a long-
running Redis, or the key evicted, is seen the same way but counted from the run's start, so it
is covered only near a restart: keep ``maxmemory-policy`` at ``noeviction`` or a ``volatile-*``
policy (the key has no TTL). A user that may not run ``INFO`` (an ACL without ``+info``) gets
one warning: restarts that load a snapshot then go unseen. Multi-master setups (active-active
replication), where each master has its own run ID, would hold every base on every call, and
are not supported. A failed call is retried for ``grace`` seconds (2 by default) before Redis
counts as down, so a restart does not send the fleet to per-machine fallbacks (which, together,
could exceed the base's limit). Releases that fail are kept and replayed on the next call that
reaches Redis.

When Redis stays unreachable (connection refused, timeout, authentication, a read-only
replica...) past the grace, ``fallback`` decides:

* a :class:`~.base.Limiter` (``JOBTRACK_LIMITER_FALLBACK=local``, the default): requests go
  through that per-machine limiter instead, and one warning is logged per outage -- tracking
  never stops a scoring job;
* ``None`` (``JOBTRACK_LIMITER_FALLBACK=fail``): :meth:`RedisLimiter.reserve` raises
  :class:`~jobtrack_airtable.errors.LimiterUnavailableError` and no request is sent.

Either way Redis is tried again at most every ``retry_interval`` seconds (5 by default) and used
again as soon as it answers.  URLs are always shown with the password masked.

The ``redis`` package is optional (``pip install 'jobtrack-airtable[redis]'``); this module
imports without it and refuses with a :class:`~jobtrack_airtable.errors.ConfigError` naming the
extra only when a Redis limiter is actually built.

>>> redact_url("redis://:s3cret@redis.internal:6379/0")
'redis://:***@redis.internal:6379/0'
>>> redis_key("appAAAAAAAAAAAAAA")
'jobtrack:ratelimit:appAAAAAAAAAAAAAA'
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit, urlunsplit

from .. import forks
from ..errors import ConfigError, LimiterUnavailableError
from ..settings import Settings
from .base import (
    DEFAULT_LEASE,
    DEFAULT_MARGIN,
    DEFAULT_QUIET,
    MAX_HOLD,
    Limiter,
    Slot,
    check_seconds,
    lease_for,
    slot_rule,
)
from .sqlite import LocalLimiter
from .usage import month_of

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # the 'redis' extra is not installed: fine until a Redis limiter is built
    redis = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from redis import Redis

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_RETRY_INTERVAL",
    "INSTALL_HINT",
    "RELEASE_SCRIPT",
    "RESERVE_SCRIPT",
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

#: Seconds a failing Redis is retried before it counts as down: covers a restart.
DEFAULT_GRACE = 2.0

#: Pause between two attempts within the grace.
_GRACE_STEP = 0.05

#: A fallback domain that reserved nothing for this long no longer counts as sharing a base.
MEMBER_HORIZON = 60.0

#: Connect/read timeout of one Redis call.  Short: a limiter that hangs for the default
#: minutes would stall the scoring job it is meant to protect.
DEFAULT_SOCKET_TIMEOUT = 2.0

#: What users without the extra are told to run.
INSTALL_HINT = "pip install 'jobtrack-airtable[redis]'"

#: The atomic reserve step.  KEYS: the base's slots (sorted set, score = when the slot frees,
#: µs of Redis TIME), the base's hold, the global hold, the Redis run, the base's members.  ARGV:
#: limit, window (µs), lease (µs), a unique member, quiet (µs), the longest believable hold
#: (µs), the caller's fallback domain, how long a domain stays a member (µs), the fallback's
#: retry interval (µs).  Returns
#: {0, 0, members, has_info} when a slot was taken, else {1, µs to wait, members, has_info}
#: (has_info: 0 when INFO is refused, so a restart that loads a snapshot goes unseen).  All
#: arithmetic stays in integers passed straight to redis.call:
#: Lua 5.1 would format a concatenated 16-digit number as "%.14g" and lose the microseconds.
RESERVE_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 5: allow TIME
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
-- KEYS[4] names the Redis run whose memory holds this state (INFO's run_id, new at every
-- start).
-- Missing (a restart that came back empty, a flush) or another run's (a restart that
-- loaded an older snapshot, a failover): the grants of the last window may be forgotten,
-- so every base is held (a window + quiet + retry interval) -- by whichever call sees it
-- first, a newcomer's included.  Empty: counted from the start of this run (a first use of a long-
-- running Redis costs nothing); another run's: from now, as when it came is unknown.
local info = redis.pcall('INFO', 'server')
local run_id = 'unknown'
local uptime = 0
local has_info = 0
if type(info) == 'string' then
  run_id = string.match(info, 'run_id:(%w+)') or run_id
  uptime = tonumber(string.match(info, 'uptime_in_seconds:(%d+)') or '0')
  has_info = 1
end
local run = redis.call('GET', KEYS[4])
if run ~= run_id then
  local since = now
  if not run then since = now - uptime * 1000000 end
  redis.call('SET', KEYS[4], run_id)
  -- Plus ARGV[9] (retry_interval): workers that fell back to their machines during the
  -- outage keep granting there until their next probe finds Redis back.
  local quiet_until = since + window + tonumber(ARGV[5]) + tonumber(ARGV[9])
  local current = tonumber(redis.call('GET', KEYS[3]) or '0')
  if quiet_until > now and quiet_until > current then
    redis.call('SET', KEYS[3], quiet_until, 'PX', math.ceil((quiet_until - now) / 1000) + 1000)
  end
end
-- Who shares this base: one member per fallback domain (a machine's limiter file), seen in
-- the last ARGV[8] µs.  During an outage each domain falls back to 1/members of the rate.
redis.call('ZADD', KEYS[5], now, ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - tonumber(ARGV[8]))
redis.call('PEXPIRE', KEYS[5], math.ceil(tonumber(ARGV[8]) / 1000) + 1000)
local members = redis.call('ZCARD', KEYS[5])
local hold = 0
for i = 2, 3 do
  local h = tonumber(redis.call('GET', KEYS[i]) or '0')
  -- A hold further ahead than any real one was left by a clock that stepped back.
  if h > hold and h <= now + tonumber(ARGV[6]) then hold = h end
end
if hold > now then return {1, hold - now, members, has_info} end
-- Freed slots, and slots "from the future" left by a server clock that stepped back.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[1], now + lease + window + 1, '+inf')
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
  -- Idle bases leave nothing behind.
  redis.call('PEXPIRE', KEYS[1], math.ceil((lease + window) / 1000) + 1000)
  return {0, 0, members, has_info}
end
-- A released slot frees at its score; one in flight no earlier than a window from now.
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(first[2]) - now
if wait > window then wait = window end
if wait < 1000 then wait = 1000 end
return {1, wait, members, has_info}
"""

#: The atomic release step.  KEYS: the base's slots, the base's hold, the base's usage hash
#: for the month.  ARGV: the member, window (µs), lease (µs), penalty (µs, 0 = none), then the
#: usage counters to increment.
RELEASE_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
-- ZADD without XX: after a restart (or a lapsed lease) the member is gone, and the request
-- must still count from now.
redis.call('ZADD', KEYS[1], now + window, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(ARGV[3]) + window) / 1000) + 1000)
local penalty = tonumber(ARGV[4])
if penalty > 0 then
  local hold_until = now + penalty
  local current = tonumber(redis.call('GET', KEYS[2]) or '0')
  if hold_until > current then
    redis.call('SET', KEYS[2], hold_until, 'PX', math.ceil(penalty / 1000) + 1000)
  end
end
for i = 5, #ARGV do redis.call('HINCRBY', KEYS[3], ARGV[i], 1) end
if #ARGV >= 5 then redis.call('EXPIRE', KEYS[3], 400 * 86400) end
return 1
"""


_QUERY_PASSWORD_RE = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


#: All or none of KEYS for ARGV[1] (a token) for ARGV[2] ms: one script, so two machines can
#: never each take half of an overlapping set.
LOCK_SCRIPT = """
for _, k in ipairs(KEYS) do
  local holder = redis.call('GET', k)
  if holder and holder ~= ARGV[1] then return 0 end
end
for _, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) end
return 1
"""
#: Delete the KEYS that ARGV[1] still holds (a lock that expired and was taken by another
#: token is that token's now).
UNLOCK_SCRIPT = """
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 1
"""


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
    """The slot rule of :mod:`.base`, shared by every worker that uses the same Redis.

    ``url`` is a ``redis://`` or ``rediss://`` URL as redis-py understands it (or pass a
    ready ``client``).  ``rate``, ``margin``, ``lease``, ``quiet`` as for
    :class:`~.sqlite.LocalLimiter`.  Keys are ``key_prefix + base_id``.  ``fallback`` is the
    limiter used while Redis is unreachable (``None``: raise
    :class:`~jobtrack_airtable.errors.LimiterUnavailableError` instead); a failing Redis is
    retried for ``grace`` seconds before it counts as unreachable, then at most every
    ``retry_interval`` seconds.  Safe to share between threads, and usable after ``fork``
    (redis-py reopens its connections in the child).

    >>> limiter = RedisLimiter("redis://127.0.0.1:6379/0", rate=5)
    >>> limiter
    RedisLimiter(url='redis://127.0.0.1:6379/0', rate=5, window=1.05s, fallback=None)
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
        lease: float = DEFAULT_LEASE,
        quiet: float = DEFAULT_QUIET,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        grace: float = DEFAULT_GRACE,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        client: Redis | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window = slot_rule(rate, margin)
        self.rate = float(rate)
        self.lease = max(check_seconds("lease", lease), self.window)
        self.quiet = check_seconds("quiet", quiet)
        self.retry_interval = check_seconds("retry_interval", retry_interval)
        self.grace = check_seconds("grace", grace)
        if (url is None) == (client is None):
            raise ValueError("pass exactly one of url and client")
        self._window_us = round(self.window * 1_000_000)
        self._lease_us = round(self.lease * 1_000_000)
        self._quiet_us = round(self.quiet * 1_000_000)
        self.key_prefix = key_prefix
        self.fallback = fallback
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
        self._reserve_script = client.register_script(RESERVE_SCRIPT)
        self._release_script = client.register_script(RELEASE_SCRIPT)
        self._lock_script = client.register_script(LOCK_SCRIPT)
        self._unlock_script = client.register_script(UNLOCK_SCRIPT)
        # Members must be unique across processes and threads, or ZADD would overwrite a slot
        # instead of adding one; the pid is read per call so a forked child differs.
        self._instance = uuid.uuid4().hex[:12]
        self._seq = itertools.count()
        self._state_lock = threading.Lock()
        # After a fork: a parent thread may have held it (redis-py's pool reconnects itself).
        forks.register(self, RedisLimiter._fresh_lock)
        self._warned_info = False
        #: Fallback domains sharing each base at the last call (this one included).
        self._members: dict[str, int] = {}
        #: This process's fallback domain: its machine's limiter file, or the process itself.
        self._domain = _domain_of(fallback, self._instance)
        #: Per-machine limiters at a fair share of the rate, by number of members.
        self._shares: dict[int, Limiter] = {}
        #: Until then (monotonic), slots come from Redis *and* the fair share: machines still
        #: on their fallbacks do not know this one is back on Redis yet.
        self._dual_until = 0.0
        #: Fair-share slots taken alongside Redis slots during the dual period.
        self._companions: dict[str, tuple[Limiter, Slot]] = {}
        #: Releases that did not reach Redis, replayed on the next call that does.
        self._pending: list[tuple[Slot, float, tuple[str, ...]]] = []
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

    def _key(self, kind: str, key: str) -> str:
        return f"{self.key_prefix}{kind}{key}"

    # -- reaching Redis -------------------------------------------------------------------

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
                # Every other machine probes Redis within retry_interval; until then (plus
                # one window for their last fallback grants) keep to the fair share too.
                self._dual_until = self._monotonic() + self.retry_interval + self.window
        if was_down:
            log.info("rate-limiter Redis at %s is reachable again; using it", self.url)

    def _call(self, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """``(True, fn())`` once Redis answers, retrying for ``grace`` seconds (the length of
        a restart); ``(False, None)`` when it is (still) down."""
        if not self._due():
            return False, None
        with self._state_lock:
            # While down, one probe per retry interval: no grace, or every request would
            # wait it out again.
            deadline = self._monotonic() + (self.grace if self._down_reason is None else 0.0)
        while True:
            try:
                result = fn()
            except redis.RedisError as exc:
                # Connection refused/reset, timeouts, auth, READONLY, OOM, LOADING...: all
                # mean "cannot coordinate through Redis right now".
                if self._monotonic() + _GRACE_STEP < deadline:
                    self._sleep(_GRACE_STEP)
                    continue
                self._mark_down(exc)
                return False, None
            self._mark_up()
            self._replay()
            return True, result

    def _replay(self) -> None:
        with self._state_lock:
            pending, self._pending = self._pending, []
        for slot, penalty, usage in pending:
            try:
                self._run_release(slot, penalty, usage)
            except redis.RedisError:
                with self._state_lock:
                    self._pending.append((slot, penalty, usage))
                return

    # -- one attempt ----------------------------------------------------------------------

    def _run_reserve(self, key: str, member: str) -> tuple[int, int, int]:
        status, value, members, has_info = self._reserve_script(
            keys=[
                redis_key(key, self.key_prefix),
                self._key("hold:", key),
                self._key("hold:", "*"),
                self._key("", "run"),
                self._key("members:", key),
            ],
            args=[
                self.limit,
                self._window_us,
                self._lease_us,
                member,
                self._quiet_us,
                round(MAX_HOLD * 1_000_000),
                self._domain,
                round(MEMBER_HORIZON * 1_000_000),
                round(self.retry_interval * 1_000_000),
            ],
        )
        if not int(has_info) and not self._warned_info:
            self._warned_info = True
            log.warning(
                "Redis at %s refuses INFO to this user: a Redis restart that loads a snapshot "
                "will not be noticed, and its forgotten grants may cost 429s (allow +info)",
                self.url,
            )
        return int(status), int(value), int(members)

    def _run_release(self, slot: Slot, penalty: float, usage: Sequence[str]) -> None:
        month = month_of(time.time())
        self._release_script(
            keys=[
                redis_key(slot.key, self.key_prefix),
                self._key("hold:", slot.key),
                self._key("usage:", f"{slot.key}:{month}"),
            ],
            args=[slot.token, self._window_us, self._lease_us, round(penalty * 1_000_000), *usage],
        )

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

    def _share(self, key: str) -> Limiter | None:
        """The per-machine limiter at this machine's fair share of the slots (``limit //
        members`` per window) when the fallback is a :class:`~.sqlite.LocalLimiter` (same
        file, so the machine's processes share it), else the fallback itself."""
        fallback = self.fallback
        members = max(1, self._members.get(key, 1))
        if not isinstance(fallback, LocalLimiter) or members == 1:
            return fallback
        with self._state_lock:
            share = self._shares.get(members)
            if share is None:
                # floor(limit / members) slots in the same window: the shares add up to at
                # most `limit` in any window.  With more machines than slots, one slot per
                # ceil(members / limit) windows -- best effort, not a strict bound.
                slots = max(1, self.limit // members)
                windows = 1 if self.limit >= members else math.ceil(members / self.limit)
                unit = self.limit / self.rate  # the window without its margin
                share = LocalLimiter(
                    slots / (windows * unit),
                    fallback.path,
                    margin=self.window - unit,
                    lease=fallback.lease,
                    quiet=fallback.quiet,
                )
                self._shares[members] = share
        return share

    def reserve(self, key: str) -> Slot:
        """Block until a slot on ``key`` is free fleet-wide, then occupy it.

        While Redis is down, the slot comes from the fallback at this machine's fair share of
        the rate (the rate divided by the machines seen sharing the base), so the fleet as a
        whole stays under the limit.  Raises
        :class:`~jobtrack_airtable.errors.LimiterUnavailableError` when Redis is unreachable
        and there is no fallback.
        """
        while True:
            member = f"{os.getpid()}:{self._instance}:{next(self._seq)}"
            ok, result = self._call(functools.partial(self._run_reserve, key, member))
            if not ok:
                share = self._share(key)
                if share is None:
                    raise self._unavailable()
                slot = share.reserve(key)
                with self._state_lock:
                    self._companions[slot.token] = (share, slot)
                return Slot(key, slot.token, origin="fallback")
            status, wait_us, members = result
            self._members[key] = members
            if status != 0:
                self._sleep(wait_us / 1_000_000)
                continue
            if self._monotonic() < self._dual_until:
                share = self._share(key)
                if share is not None:
                    # Taken after the Redis slot: waiting for it delays the request, which
                    # only makes the Redis slot's window more conservative.
                    companion = share.reserve(key)
                    with self._state_lock:
                        self._companions[member] = (share, companion)
            return Slot(key, member)

    def release(self, slot: Slot, *, penalty: float = 0.0, usage: Sequence[str] = ()) -> None:
        """The request of ``slot`` finished now; see :meth:`.base.Limiter.release`.  A
        release Redis does not take now is replayed on the next call that reaches it."""
        with self._state_lock:
            companion = self._companions.pop(slot.token, None)
        if slot.origin == "fallback":
            if companion is not None:
                share, inner = companion
                share.release(inner, penalty=penalty, usage=usage)
            return
        if companion is not None:
            share, inner = companion
            share.release(inner, penalty=penalty)  # counted once, in Redis
        ok, _ = self._call(lambda: self._run_release(slot, penalty, usage))
        if not ok:
            with self._state_lock:
                self._pending.append((slot, penalty, tuple(usage)))

    def acquire(self, key: str) -> None:
        """Count one request on ``key`` that is sent and finished now (waits for a slot)."""
        self.release(self.reserve(key))

    def try_lock(self, keys: Sequence[str], token: str, ttl: float) -> bool:
        """Take every lock of ``keys`` for ``token`` in one atomic script, or none of them
        (see :mod:`.locks`).  While Redis is down, the fallback's locks (this machine's)."""
        names = [self._key("lock:", k) for k in keys]
        ok, taken = self._call(
            lambda: self._lock_script(keys=names, args=[token, max(1, int(ttl * 1000))])
        )
        if ok:
            return bool(taken)
        take = getattr(self.fallback, "try_lock", None)
        return bool(take(keys, token, ttl)) if take is not None else True

    def unlock(self, keys: Sequence[str], token: str) -> None:
        """Release the locks of ``keys`` that ``token`` holds (here and in the fallback)."""
        names = [self._key("lock:", k) for k in keys]
        self._call(lambda: self._unlock_script(keys=names, args=[token]))
        release = getattr(self.fallback, "unlock", None)
        if release is not None:
            release(keys, token)

    def usage(self, key: str, month: str) -> dict[str, int]:
        """``{kind: n}`` counted for ``key`` in ``month`` (``"2026-12"``, UTC) by every worker
        sharing this Redis (requests counted by a local fallback during an outage are in
        that machine's file).  Raises
        :class:`~jobtrack_airtable.errors.LimiterUnavailableError` when Redis is down."""
        try:
            counts = self._client.hgetall(self._key("usage:", f"{key}:{month}"))
        except redis.RedisError as exc:
            self._mark_down(exc)
            raise self._unavailable() from None
        return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in counts.items()}

    def _fresh_lock(self) -> None:
        self._state_lock = threading.Lock()

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
        for share in self._shares.values():
            share.close()


def _domain_of(fallback: Limiter | None, instance: str) -> str:
    host = socket.gethostname()
    if isinstance(fallback, LocalLimiter):
        return f"{host}:{fallback.path}"
    return f"{host}:{os.getpid()}:{instance}"


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
    :class:`~.sqlite.LocalLimiter` at the default per-user path unless
    ``JOBTRACK_LIMITER_FALLBACK=fail``.  Registered in
    :data:`~jobtrack_airtable.limiter.factory.LIMITER_BACKENDS`.

    >>> from urllib.parse import urlsplit
    >>> s = Settings(_env_file=None, limiter_url="redis://:pw@127.0.0.1:6379/0")
    >>> build_redis_limiter(s, urlsplit(s.limiter_url))
    RedisLimiter(url='redis://:***@127.0.0.1:6379/0', rate=5, window=1.05s, fallback=LocalLimiter)
    """
    _require_redis()
    lease = lease_for(settings)
    fallback: Limiter | None = (
        LocalLimiter(settings.rate_limit, lease=lease)
        if settings.limiter_fallback == "local"
        else None
    )
    return RedisLimiter(url.geturl(), settings.rate_limit, fallback=fallback, lease=lease)
