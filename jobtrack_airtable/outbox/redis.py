"""The outbox in Redis, for fleets whose containers have no durable disk.

    JOBTRACK_OUTBOX_URL=redis://:password@redis.internal:6379/0   # or rediss:// for TLS

One hash per entry (``jobtrack:outbox:<base>/<table>/<run ID>``) and one sorted set indexing
them by last change; every operation that compares before it writes (a newer version only,
retire, claim, the request budget) is one Lua script, so processes on many machines race
safely.  Durability is Redis's: run it with ``appendonly yes`` -- ``appendfsync everysec``
loses at most the last second on a Redis crash or power loss, ``appendfsync always`` nothing;
without AOF a Redis restart loses the outbox.  A Redis that cannot be reached makes ``add()``
raise :class:`~jobtrack_airtable.errors.OutboxUnavailableError`: a change that cannot be made
durable is refused, never silently kept in memory only.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, OutboxUnavailableError
from .store import Entry, now

__all__ = ["RedisOutbox"]

PREFIX = "jobtrack:outbox:"
INDEX = PREFIX + "index"
BUDGET = PREFIX + "budget"

# The version is raised above the stored one (formatted with %.0f: Lua's tostring would
# print a microsecond version in exponent notation).
_PUT = """
local version = ARGV[1]
local v = redis.call('HGET', KEYS[1], 'version')
if v and tonumber(v) >= tonumber(version) then version = string.format('%.0f', tonumber(v) + 1) end
redis.call('HSET', KEYS[1], 'version', version, 'payload', ARGV[2], 'owner', ARGV[3],
           'updated', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return version
"""

_RETIRE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local until_ = tonumber(ARGV[2])
local held = tonumber(redis.call('HGET', KEYS[1], 'verify_after') or '0')
if until_ > 0 then
  if until_ > held then redis.call('HSET', KEYS[1], 'verify_after', ARGV[2]) end
  redis.call('HDEL', KEYS[1], 'error')
  return 0
end
local v = tonumber(redis.call('HGET', KEYS[1], 'version'))
if v <= tonumber(ARGV[1]) and held <= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[4])
  return 1
end
return 0
"""

_REFUSED = """
local v = redis.call('HGET', KEYS[1], 'version')
if v and tonumber(v) >= tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'error', ARGV[2]) end
return 0
"""

_CLAIM = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1])
  return 1
end
return 0
"""

_DROP = """
local v = redis.call('HGET', KEYS[1], 'version')
if not v then return 0 end
if ARGV[1] ~= '' and v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

_SPEND = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
local at = tonumber(ARGV[4])
local since = tonumber(redis.call('HGET', KEYS[1], 'at') or ARGV[4])
local accrued = math.max(0, at - since) * tonumber(ARGV[2])
local balance = math.min(tonumber(ARGV[3]), tokens + accrued) - tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'tokens', tostring(balance), 'at', tostring(math.max(at, since)))
return tostring(balance)
"""


class RedisOutbox:
    """:class:`~.store.OutboxStore` in Redis (the ``redis`` extra)."""

    def __init__(self, client: Any, *, label: str = "redis") -> None:
        self._client = client
        self._label = label
        self._scripts = {
            name: client.register_script(src)
            for name, src in {
                "put": _PUT,
                "retire": _RETIRE,
                "refused": _REFUSED,
                "claim": _CLAIM,
                "drop": _DROP,
                "spend": _SPEND,
            }.items()
        }

    @classmethod
    def from_url(cls, url: str) -> RedisOutbox:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "JOBTRACK_OUTBOX_URL points at Redis, but the 'redis' package is not "
                "installed: pip install 'jobtrack-airtable[redis]'"
            ) from None
        from ..limiter.redis import redact_url

        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        return cls(client, label=redact_url(url))

    def __repr__(self) -> str:
        return f"RedisOutbox({self._label!r})"

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        import redis

        try:
            return self._scripts[name](keys=keys, args=args)
        except redis.RedisError as exc:
            raise OutboxUnavailableError(f"the Redis outbox {self._label} failed: {exc}") from None

    def put(self, key: str, version: int, payload: str, owner: str) -> int:
        return int(self._run("put", [PREFIX + key, INDEX], [version, payload, owner, now(), key]))

    def retire(self, key: str, version: int, *, verify_after: float = 0.0) -> None:
        self._run("retire", [PREFIX + key, INDEX], [version, verify_after, now(), key])

    def refused(self, key: str, version: int, error: str) -> None:
        self._run("refused", [PREFIX + key], [version, error])

    def get(self, key: str) -> Entry | None:
        found = self._hashes([key])
        return found[0] if found else None

    def _hashes(self, keys: Sequence[str]) -> list[Entry]:
        import redis

        try:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(PREFIX + key)
            hashes = pipe.execute()
        except redis.RedisError as exc:
            raise OutboxUnavailableError(f"the Redis outbox {self._label} failed: {exc}") from None
        entries = []
        for key, h in zip(keys, hashes, strict=True):
            if not h:
                continue
            d = {k.decode(): v.decode() for k, v in h.items()}
            entries.append(
                Entry(
                    key=key,
                    version=int(d["version"]),
                    payload=d["payload"],
                    owner=d["owner"],
                    updated=float(d["updated"]),
                    error=d.get("error"),
                    verify_after=float(d.get("verify_after", 0)),
                )
            )
        return entries

    def entries(self, prefix: str = "") -> list[Entry]:
        import redis

        try:
            members = self._client.zrange(INDEX, 0, -1)
        except redis.RedisError as exc:
            raise OutboxUnavailableError(f"the Redis outbox {self._label} failed: {exc}") from None
        keys = [m.decode() for m in members if m.decode().startswith(prefix)]
        return self._hashes(keys)

    def claim(self, keys: Sequence[str], owner: str, *, expected: dict[str, str]) -> list[str]:
        return [k for k in keys if self._run("claim", [PREFIX + k], [owner, expected[k]])]

    def drop(self, keys: Sequence[str], *, versions: dict[str, int] | None = None) -> int:
        return sum(
            int(self._run("drop", [PREFIX + k, INDEX], [str(versions[k]) if versions else "", k]))
            for k in keys
        )

    def spend(self, n: float, *, rate: float, burst: float, at: float) -> float:
        # The budget is per machine, as with the SQLite store.
        key = f"{BUDGET}:{socket.gethostname()}"
        return float(self._run("spend", [key], [n, rate, burst, at]))

    def hold(self, key: str, owner: str) -> str | None:
        # Not enforced: a fleet's holders are on other hosts, whose liveness this store
        # cannot see (a dead host's lease would block its runs for good).
        return None

    def unhold(self, owner: str, keys: Sequence[str] | None = None) -> None:
        return None

    def close(self) -> None:
        self._client.close()
