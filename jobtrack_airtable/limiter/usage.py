"""Request counting per base and calendar month (placeholder; filled in by the usage work)."""

from __future__ import annotations

import time

__all__ = ["month_of"]


def month_of(timestamp: float) -> str:
    """The UTC calendar month of a Unix ``timestamp``, as ``"YYYY-MM"``.

    >>> month_of(0.0)
    '1970-01'
    """
    return time.strftime("%Y-%m", time.gmtime(timestamp))
