"""The one transport adapter: how every request of the library goes out.

:class:`AirtableAdapter` is a ``requests`` adapter mounted on the pyairtable ``Api``'s session
(as pyairtable's own ``api/retrying.py`` mounts its urllib3 retry), so pyairtable's paging
(``iterate``/``all``) and batching (``batch_*``) run above it unchanged.  For each HTTP
request it:

* waits for a slot of the rate limiter and gives it back once the response headers are in
  (a 429 gives it back with the penalty, putting the base on hold for everyone who shares
  the limiter; a 429 of a spent monthly quota does not: waiting never brings it back);
* counts the request in the limiter store's monthly usage (a retry as a retry);
* learns the server's clock from the response's ``Date`` (SPEC §2.10);
* retries rate limits (429), transient server errors (5xx) and network failures under the
  :class:`~.recovery.RetryPolicy`, with the errors of :func:`~.recovery.classify`; the last
  failure is raised as its classified error;
* tells an :class:`Outcome` being :func:`watch`-ed in the calling thread whether an attempt
  was given up on while the server may still apply it (a read timeout, a 504), as opposed to
  a write that was merely slow (waiting for the limiter, a 429's penalty, backoff).

Every write this library sends is safe to repeat: upserts on the natural key, updates and
deletes by record ID; the one plain create (a job-start claim row) is followed by a read that
deletes the extra copies a repeated create leaves (:meth:`.repository.Repository.claim`).

>>> import requests
>>> from jobtrack_airtable.limiter import NullLimiter
>>> session = requests.Session()
>>> session.mount("https://", AirtableAdapter(NullLimiter()))
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from ..errors import QUOTA_ERROR_TYPE
from ..limiter.base import Limiter, Slot, base_key, check_seconds
from ..limiter.usage import usage_kinds
from .recovery import DEFAULT_POLICY, RETRYABLE, RetryPolicy, classify, redact, retrying
from .server_clock import ServerClock

__all__ = ["AirtableAdapter", "Outcome", "quota_spent", "watch"]

log = logging.getLogger(__name__)

#: Answers that say a gateway gave up waiting for the server, which may still apply the request.
GATEWAY_TIMEOUTS = frozenset({504})


@dataclass
class Outcome:
    """What the HTTP attempts made under one :func:`watch` met on the wire."""

    attempts: int = 0
    #: Writes sent whose answer never came in time (requests' ``ReadTimeout``) or came from
    #: a gateway that gave up (504): the server may still apply them, after later writes.
    #: A wait for the limiter or a 429 penalty, however long, is not one: nothing was in
    #: flight meanwhile.  A connection closed before the answer is not one either: the
    #: server is done with the request (applied or not) before the retry is sent.
    unanswered: int = 0

    @property
    def maybe_late(self) -> bool:
        """Whether the server may still apply one of the attempts (verify after a window)."""
        return self.unanswered > 0


_watching = threading.local()


@contextmanager
def watch() -> Iterator[Outcome]:
    """Collect the :class:`Outcome` of every request the calling thread sends in the block
    (nested watches each see them all).

    >>> with watch() as outcome:
    ...     pass
    >>> outcome.maybe_late
    False
    """
    outcome = Outcome()
    stack: list[Outcome] = getattr(_watching, "stack", None) or []
    _watching.stack = [*stack, outcome]
    try:
        yield outcome
    finally:
        _watching.stack = stack


def _writes(method: str, url: str) -> bool:
    """Whether the request can change a row (a read applied late changes nothing; pyairtable
    lists by ``POST …/listRecords`` when the query is long)."""
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        return False
    return not urlsplit(url).path.rstrip("/").endswith("/listRecords")


def _note(*, unanswered: bool) -> None:
    for outcome in getattr(_watching, "stack", ()):
        outcome.attempts += 1
        if unanswered:
            outcome.unanswered += 1


class AirtableAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that paces, counts, clocks and retries each request (see the
    module docs).  ``penalty_seconds`` is how long a 429 holds the base (Airtable's 30 s: the
    policy's rate-limit wait)."""

    def __init__(
        self,
        limiter: Limiter,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        clock: ServerClock | None = None,
        penalty_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        # max_retries stays at requests' default of 0: the policy below owns every retry.
        super().__init__(**kwargs)
        self.limiter = limiter
        self.policy = policy
        self.clock = clock if clock is not None else ServerClock()
        penalty = policy.rate_limit_wait if penalty_seconds is None else penalty_seconds
        self.penalty_seconds = check_seconds("penalty_seconds", penalty)

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        method, url = request.method or "GET", request.url or ""
        key = base_key(url)
        attempts = 0
        answered: tuple[BaseException, requests.Response] | None = None
        try:
            for attempt in retrying(
                self.policy, op=f"{method} {redact(unquote(urlsplit(url).path))}"
            ):
                with attempt:
                    attempts += 1
                    slot = self.limiter.reserve(key)
                    sent = time.monotonic()
                    try:
                        response = super().send(request, *args, **kwargs)
                    except BaseException as exc:
                        # Failed before a response: maybe counted by the server, maybe not --
                        # count it.
                        self._release(
                            slot, 0.0, usage_kinds(method, url, status=None, retry=attempts > 1)
                        )
                        # Only a read timeout leaves the request in flight on the server: a
                        # connect timeout never sent it, a closed connection ended it there.
                        timed_out = isinstance(exc, requests.exceptions.ReadTimeout)
                        _note(unanswered=timed_out and _writes(method, url))
                        raise
                    status = response.status_code
                    _note(unanswered=status in GATEWAY_TIMEOUTS and _writes(method, url))
                    quota = status == 429 and quota_spent(response)
                    self._release(
                        slot,
                        # A spent monthly quota is no rate limit: holding the base 30 s would
                        # only delay the meta reads that still answer, and never bring the
                        # quota back.
                        self.penalty_seconds if status == 429 and not quota else 0.0,
                        usage_kinds(
                            method, url, status=status, retry=attempts > 1, quota_spent=quota
                        ),
                    )
                    date = response.headers.get("Date")
                    if date:
                        self.clock.learn(
                            date, round_trip=timedelta(seconds=time.monotonic() - sent)
                        )
                    if status == 429 or status >= 500:
                        failure = requests.HTTPError(response=response, request=request)
                        error = classify(failure)
                        if isinstance(error, RETRYABLE):
                            response.close()  # its body is read: the connection is free
                            answered = (error, response)
                            raise error from failure
        except RETRYABLE as exc:
            # Out of attempts on an answer (429, 5xx): hand the last one up, as an adapter
            # does, for pyairtable to raise and the caller to classify.
            if answered is not None and answered[0] is exc:
                return answered[1]
            raise
        return response

    def _release(self, slot: Slot, penalty: float, usage: tuple[str, ...]) -> None:
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
