"""The transport hook: every HTTP request waits for a limiter slot and gives it back when its
response (or failure) is in.

>>> import requests
>>> from jobtrack_airtable.limiter.base import NullLimiter
>>> session = requests.Session()
>>> session.mount("https://", LimitedAdapter(NullLimiter()))
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ..errors import QUOTA_ERROR_TYPE
from .base import RATE_LIMIT_PENALTY, Limiter, base_key, check_seconds
from .usage import usage_kinds

__all__ = ["LimitedAdapter", "quota_spent"]

log = logging.getLogger(__name__)


class LimitedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that holds a slot of ``limiter`` for the whole of each request.

    Mounted on ``api.session`` by :func:`~jobtrack_airtable.transport.client.build_api`; because it
    sits at the transport level, every page of a listing and every retry is counted, not just
    top-level calls.  The slot is reserved just before the request goes out and released
    once the response headers are back (the server has counted the request by then), so the
    window is measured from the end of the request (see :mod:`.base`).  A 429 releases the
    slot with ``penalty_seconds`` (Airtable's 30 s), putting the base on hold for everyone
    who shares the limiter.  Each request is counted in the store's monthly usage counters
    (:mod:`.usage`).
    """

    def __init__(
        self, limiter: Limiter, *, penalty_seconds: float = RATE_LIMIT_PENALTY, **kwargs: Any
    ) -> None:
        # max_retries stays at requests' default of 0: tenacity owns every retry.
        super().__init__(**kwargs)
        self.limiter = limiter
        self.penalty_seconds = check_seconds("penalty_seconds", penalty_seconds)

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        method, url = request.method or "GET", request.url or ""
        slot = self.limiter.reserve(base_key(url))
        try:
            response = super().send(request, *args, **kwargs)
        except BaseException:
            # Failed before a response: maybe counted by the server, maybe not -- count it.
            self._release(slot, 0.0, usage_kinds(method, url, status=None))
            raise
        status = response.status_code
        quota = status == 429 and quota_spent(response)
        self._release(
            slot,
            # A spent monthly quota is no rate limit: holding the base 30 s would only delay
            # the meta reads that still answer, and never bring the quota back.
            self.penalty_seconds if status == 429 and not quota else 0.0,
            usage_kinds(method, url, status=status, quota_spent=quota),
        )
        return response

    def _release(self, slot: Any, penalty: float, usage: tuple[str, ...]) -> None:
        try:
            self.limiter.release(slot, penalty=penalty, usage=usage)
        except Exception:
            # The request has been sent: a store that cannot record the release must not
            # turn its (possibly applied) result into an error.  The slot frees at its lease.
            log.warning("the rate limiter could not record a finished request", exc_info=True)


def quota_spent(response: requests.Response) -> bool:
    """Whether a 429 says the monthly quota is spent (``PUBLIC_API_BILLING_LIMIT_EXCEEDED``)
    rather than the per-second rate limit: both share the status, only the error type tells."""
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("type") == QUOTA_ERROR_TYPE
