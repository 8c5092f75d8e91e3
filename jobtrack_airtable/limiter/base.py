"""What every limiter shares: the :class:`Limiter` protocol, :class:`Slot`, the timing rules
and :func:`base_key`.

The rule every store enforces (SPEC §2.1, §3.4)
-----------------------------------------------
At most ``limit = max(1, floor(rate))`` *slots* per key (a base ID) are occupied at once.  A
slot is occupied from the moment it is granted (:meth:`Limiter.reserve`, just before the request
is sent) until ``window = limit / rate + margin`` seconds after the request *finished*
(:meth:`Limiter.release`, once the response -- or the failure -- is back).

Why the window is measured from the end of the request: Airtable counts a request at some
instant ``s`` between the moment it was sent and the moment its response came back, so
``grant <= s <= release``.  Take any six requests on one base and let the sixth be the last
granted.  When it was granted, at most four of the other five held a slot, so one of them
had released at least ``window`` seconds earlier -- and that one was counted *before* it
released.  So any six requests are counted at least ``window`` >= 1 s apart: no 1-second window
at the server can ever hold six, however long a process is descheduled between grant and
send, however slow the network, however loaded the CPU.  Measuring from the grant instead (the
old design, with a 0.1 s margin for jitter) is only safe while every delay between grant and
arrival stays below the margin, and under CPU saturation it did not.  The cost: a slot is held
for the request's latency plus one window, ~5 requests per (1.05 s + latency).

``margin`` (0.05 s by default) only covers clock rate differences between the store's clock
and the server's; the proof above needs no allowance for latency.

Leases: a slot whose process dies before releasing it is freed ``lease`` seconds after it was
granted (twice the request timeout by default), so a crashed worker costs one slot for a while,
never the whole budget.

Holds: a 429 (someone else exceeded the limit, or a store lost its state) puts the key on hold
for the penalty (30 s) *in the shared store*, so every process sharing the limiter waits it
out together instead of each earning its own 429s.  A store that lost its state (its file was
deleted or replaced, Redis restarted empty) holds every key for ``window + quiet`` seconds
from the moment the new store was born, so the grants the lost store knew about have left
Airtable's window before anyone is granted again.

>>> limiter = NullLimiter()
>>> slot = limiter.reserve("appAAAAAAAAAAAAAA")
>>> limiter.release(slot)
>>> base_key("https://api.airtable.com/v0/appAAAAAAAAAAAAAA/Job%20Tracking?offset=x")
'appAAAAAAAAAAAAAA'
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from ..airtable import RATE_LIMIT_PENALTY
from ..settings import Settings

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MARGIN",
    "DEFAULT_QUIET",
    "MAX_HOLD",
    "NO_BASE_KEY",
    "RATE_LIMIT_PENALTY",
    "Limiter",
    "NullLimiter",
    "Slot",
    "base_key",
    "lease_for",
    "slot_rule",
]

#: Seconds added to every window: clock-rate differences between the store and the server.
DEFAULT_MARGIN = 0.05

#: Seconds after which a slot that was never released (its process died) is free again.
DEFAULT_LEASE = 60.0

#: Extra seconds (beyond one window) every key is held after a store lost its state, for
#: requests granted by the lost store that were still on their way.
DEFAULT_QUIET = 1.0


#: Holds ending further ahead than this are treated as left by a clock that stepped back.
MAX_HOLD = 600.0

#: Key used for requests that do not name a base (``/v0/meta/whoami``, ``/v0/meta/bases``).
NO_BASE_KEY = "_no_base"


def slot_rule(rate: float, margin: float) -> tuple[int, float]:
    """``(limit, window)`` for ``rate`` requests/second: at most ``limit`` slots, each held
    until ``window`` seconds after its request finished.

    >>> slot_rule(5, 0.05)
    (5, 1.05)
    >>> slot_rule(0.5, 0.0)
    (1, 2.0)
    """
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of requests/second, not {rate!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be >= 0 seconds, not {margin!r}")
    limit = max(1, math.floor(rate))
    return limit, limit / rate + margin


def lease_for(settings: Settings) -> float:
    """The slot lease for ``settings``: twice the request timeout (a request cannot hold a
    slot longer than its timeouts allow), at least :data:`DEFAULT_LEASE` / 6 (10 s).

    >>> lease_for(Settings(_env_file=None, timeout=30))
    60.0
    """
    return max(2.0 * settings.timeout, DEFAULT_LEASE / 6)


def check_seconds(name: str, value: float) -> float:
    """``value`` as a float, or :class:`ValueError` naming ``name`` if it is not >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be >= 0 seconds, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Slot:
    """One granted slot: the key it counts against and an ID unique across processes.

    ``origin`` tells a composite limiter (Redis with a local fallback) which store granted it.
    """

    key: str
    token: str
    origin: str = ""


@runtime_checkable
class Limiter(Protocol):
    """Blocks callers so that at most the configured rate of requests per key goes out.

    ``key`` is a base ID: Airtable's limit is per base, shared by every token using it.
    """

    def reserve(self, key: str) -> Slot:
        """Block until a slot on ``key`` is free and occupy it (call just before sending)."""
        ...

    def release(self, slot: Slot, *, penalty: float = 0.0, usage: Sequence[str] = ()) -> None:
        """The request of ``slot`` finished: the slot frees one window from now.

        ``penalty`` > 0 (the request got a 429) holds the key that many seconds for every
        process sharing the store.  ``usage`` names the counters this request adds one to
        (:mod:`.usage`).
        """
        ...

    def acquire(self, key: str) -> None:
        """``release(reserve(key))``: count one request sent now that finished at once."""
        ...

    def close(self) -> None:
        """Release resources (files, connections).  Idempotent."""
        ...


class NullLimiter:
    """A limiter that never blocks (``JOBTRACK_RATE_LIMIT=0``) and counts nothing.

    >>> NullLimiter().acquire("appAAAAAAAAAAAAAA")
    """

    def reserve(self, key: str) -> Slot:
        """Return a slot at once."""
        return Slot(key, "")

    def release(self, slot: Slot, *, penalty: float = 0.0, usage: Sequence[str] = ()) -> None:
        """Nothing to free."""

    def acquire(self, key: str) -> None:
        """Return immediately."""

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "NullLimiter()"


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
