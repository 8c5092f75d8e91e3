"""Read the monthly request counters back: :func:`usage_counts`.

>>> from jobtrack_airtable.settings import Settings
>>> import tempfile
>>> tmp = tempfile.mkdtemp()
>>> s = Settings(_env_file=None, base_id="appAAAAAAAAAAAAAA", limiter_url=f"sqlite:///{tmp}/rl")
>>> usage_counts(s, "2026-12").total
0
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError, InvalidInputError
from ..settings import Settings
from .factory import build_limiter
from .usage import month_of

__all__ = ["UsageCounts", "usage_counts"]

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class UsageCounts:
    """The requests counted for one base in one month.

    ``counts`` maps each counter (:mod:`.usage`: ``worker_reads``, ``worker_writes``,
    ``sync_reads``, ``sync_writes``, ``retries``, ``rate_limited``, ``failed``) to its count;
    counters never incremented are absent (``get`` returns 0).  ``total`` is every request
    (reads plus writes of every caller), the figure Airtable bills.
    """

    base_id: str
    month: str
    counts: Mapping[str, int] = field(default_factory=dict)

    def get(self, kind: str) -> int:
        return int(self.counts.get(kind, 0))

    @property
    def total(self) -> int:
        return sum(n for k, n in self.counts.items() if k.endswith(("_reads", "_writes")))

    @property
    def reads(self) -> int:
        return sum(n for k, n in self.counts.items() if k.endswith("_reads"))

    @property
    def writes(self) -> int:
        return sum(n for k, n in self.counts.items() if k.endswith("_writes"))


def usage_counts(
    settings: Settings, month: str | None = None, *, base_id: str | None = None
) -> UsageCounts:
    """Requests the library made to ``base_id`` (default ``settings.base_id``) in ``month``
    (``"YYYY-MM"``, UTC; default this month), as counted in the limiter store ``settings``
    name (the SQLite file of this machine, or the fleet's Redis).

    Raises :class:`~jobtrack_airtable.errors.InvalidInputError` for a malformed month and
    :class:`~jobtrack_airtable.errors.ConfigError` when no base is given or the limiter is
    off (``JOBTRACK_RATE_LIMIT=0`` counts nothing).  Sends no request to Airtable.
    """
    month = month if month is not None else month_of(time.time())
    if not isinstance(month, str) or not _MONTH_RE.match(month):
        raise InvalidInputError(f"month must look like '2026-12', not {month!r}")
    base = base_id or settings.base_id
    if not base:
        raise ConfigError("no base to count: set AIRTABLE_BASE_ID or pass base_id")
    limiter = build_limiter(settings)
    try:
        reader = getattr(limiter, "usage", None)
        if reader is None:
            raise ConfigError(
                "JOBTRACK_RATE_LIMIT=0 turns the limiter off, and with it the request counters"
            )
        counts = reader(base, month)
    finally:
        limiter.close()
    return UsageCounts(base, month, dict(counts))
