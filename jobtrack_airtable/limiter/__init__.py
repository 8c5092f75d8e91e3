"""Client-side rate limiting: keep every thread, process and machine sharing a base under
Airtable's per-base limit (5 requests/second, SPEC §2.1, §3.4), so 429s -- and their 30 s
penalty -- do not happen in normal operation, and one 429 never becomes many.  The transport
adapter (:class:`jobtrack_airtable.transport.adapter.AirtableAdapter`) holds a slot for every HTTP
request and shares a 429's penalty.

The modules, one job each (no module imports this package, so there are no cycles):

* :mod:`.base` -- the :class:`Limiter` protocol, :class:`Slot`, :class:`NullLimiter`, the slot
  rule and why it holds under any scheduling delay, :func:`base_key`;
* :mod:`.sqlite` -- :class:`LocalLimiter`, one machine, through a SQLite file;
* :mod:`.redis` -- :class:`~.redis.RedisLimiter`, a fleet, through Redis (optional extra;
  import it from :mod:`jobtrack_airtable.limiter.redis`);
* :mod:`.usage` -- what each request counts as, per base and month, in the same stores;
* :mod:`.counts` -- :func:`usage_counts`, reading those counters back;
* :mod:`.factory` -- :func:`build_limiter`, from :class:`~jobtrack_airtable.settings.Settings`.

Why not pyrate-limiter's ``SQLiteBucket``
-----------------------------------------
pyrate-limiter 4.5's SQLite bucket was the first choice and was measured before being set
aside.  With ``use_file_lock=True``, two processes of four threads each at 5/s let 7
acquisitions into one 1-second window in one run of three: after a blocked wait the limiter
advances the item's timestamp by the *planned* sleep instead of re-reading the clock, so time
spent queueing for the file lock is not counted.  Its count query also ignores the item name
(one budget for every key), and it counts a request when it is granted, not when it finished
(:mod:`.base` explains why that is not enough under load).

>>> from jobtrack_airtable.settings import Settings
>>> build_limiter(Settings(rate_limit=0))
NullLimiter()
"""

from __future__ import annotations

from .base import (
    DEFAULT_LEASE,
    DEFAULT_MARGIN,
    DEFAULT_QUIET,
    NO_BASE_KEY,
    RATE_LIMIT_PENALTY,
    Limiter,
    NullLimiter,
    Slot,
    base_key,
)
from .counts import UsageCounts, usage_counts
from .factory import LIMITER_BACKENDS, build_limiter
from .sqlite import LocalLimiter, default_limiter_path

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MARGIN",
    "DEFAULT_QUIET",
    "LIMITER_BACKENDS",
    "NO_BASE_KEY",
    "RATE_LIMIT_PENALTY",
    "Limiter",
    "LocalLimiter",
    "NullLimiter",
    "Slot",
    "UsageCounts",
    "base_key",
    "build_limiter",
    "default_limiter_path",
    "usage_counts",
]
