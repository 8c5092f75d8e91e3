"""One grammar for every duration a user types: options (``archive --older-than``,
``sync --stale-after``, ``check --stuck-after``) and configuration keys (``check``'s
``stuck_after``, ``lookback``, ``max_runtime``…).

A duration is one or more ``<number><unit>`` parts, units ``s``, ``m``, ``h``, ``d``, ``w``
(case-insensitive, spaces allowed between parts): ``90s``, ``90m``, ``36h``, ``7d``, ``2w``,
``1h30m``, ``1.5h``.  A bare number is refused unless the caller names the unit it has always
meant (``sync --stale-after 120`` is minutes, as it was before the grammar existed).

>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)
>>> parse_duration("90m") == parse_duration("1.5h")
True
>>> parse_duration("120", bare_unit="m")
datetime.timedelta(seconds=7200)
>>> parse_duration("soon", what="--older-than")
Traceback (most recent call last):
...
jobtrack_airtable.durations.DurationError: invalid --older-than 'soon': give a duration like \
90s, 30m, 2h, 7d, 2w or 1h30m
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any, Literal

from .errors import InvalidInputError, show

__all__ = ["DurationError", "format_duration", "parse_duration"]

Unit = Literal["s", "m", "h", "d", "w"]

_SECONDS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = r"(\d+(?:\.\d+)?)\s*([smhdw])"
_WHOLE_RE = re.compile(rf"^\s*(?:{_PART}\s*)+$", re.IGNORECASE)
_PART_RE = re.compile(_PART, re.IGNORECASE)
_BARE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
#: Far beyond any real retention or threshold; keeps timedelta from overflowing.
_MAX = timedelta(days=10_000 * 365)
_HINT = "give a duration like 90s, 30m, 2h, 7d, 2w or 1h30m"


class DurationError(InvalidInputError):
    """A duration that does not follow the grammar, or is out of range; names the value.
    ``reason`` is the message without the value (for callers that name it themselves)."""

    def __init__(self, what: str, value: Any, reason: str) -> None:
        super().__init__(f"invalid {what} {show(value)}: {reason}")
        self.reason = reason


def parse_duration(
    value: Any,
    *,
    what: str = "duration",
    bare_unit: Unit | None = None,
    allow_zero: bool = False,
) -> timedelta:
    """``value`` as a positive :class:`~datetime.timedelta` (zero too with ``allow_zero``).

    ``bare_unit`` is the unit a plain number means; without it a plain number is refused
    (``"90"`` could be seconds, minutes or days)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DurationError(what, value, _HINT)
    text = str(value)
    seconds: float
    if (bare := _BARE_RE.match(text)) is not None:
        if bare_unit is None:
            raise DurationError(what, value, f"a unit is needed; {_HINT}")
        seconds = float(bare.group(1)) * _SECONDS[bare_unit]
    elif _WHOLE_RE.match(text):
        seconds = sum(float(n) * _SECONDS[u.lower()] for n, u in _PART_RE.findall(text))
    else:
        raise DurationError(what, value, _HINT)
    if not math.isfinite(seconds) or seconds > _MAX.total_seconds():
        raise DurationError(what, value, "longer than 10,000 years")
    if seconds == 0 and not allow_zero:
        raise DurationError(what, value, "must be more than zero")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest spelling in the grammar: ``5400 s`` → ``'1h30m'``, ``0`` → ``'0s'``.

    >>> format_duration(timedelta(days=9)), format_duration(timedelta(seconds=90))
    ('1w2d', '1m30s')
    """
    left = round(delta.total_seconds())
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        count, left = divmod(left, _SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
