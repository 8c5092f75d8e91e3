"""Airtable's monthly API quota (SPEC §2.2, §2.9), simulated: N data requests a month, then
429 ``PUBLIC_API_BILLING_LIMIT_EXCEEDED`` for every data request until the month resets,
while ``/v0/meta/*`` still answers.

The "month" is whatever the test or operator says it is: :meth:`MonthlyQuota.reset` starts a
new one, :meth:`MonthlyQuota.spend` uses up what is left (another integration of the
workspace spending the quota).

>>> quota = MonthlyQuota(2)
>>> [quota.take() for _ in range(3)]
[True, True, False]
>>> quota.reset(); quota.take()
True
>>> quota.spend(); quota.exhausted
True
"""

from __future__ import annotations

import threading

__all__ = ["MonthlyQuota"]


class MonthlyQuota:
    """Data requests allowed this month (``limit=None``: unlimited until :meth:`spend`).

    Refused requests are not counted (Airtable refuses them without doing the work)."""

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ValueError(f"monthly quota must be an integer or None, got {limit!r}")
        if limit is not None and limit < 0:
            raise ValueError(f"monthly quota must be >= 0, got {limit!r}")
        self.limit = limit
        self._lock = threading.Lock()
        self._used = 0
        self._spent = False
        #: Data requests refused because the quota was spent (since the server started).
        self.refused = 0

    @property
    def used(self) -> int:
        """Data requests counted this month."""
        with self._lock:
            return self._used

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self._is_spent()

    def _is_spent(self) -> bool:
        return self._spent or (self.limit is not None and self._used >= self.limit)

    def take(self) -> bool:
        """Count one data request; ``False`` (and not counted) when the quota is spent."""
        with self._lock:
            if self._is_spent():
                self.refused += 1
                return False
            self._used += 1
            return True

    def spend(self) -> None:
        """Use up the rest of this month's quota (as another integration would)."""
        with self._lock:
            self._spent = True

    def reset(self) -> None:
        """A new month: nothing used, nothing spent."""
        with self._lock:
            self._used = 0
            self._spent = False
