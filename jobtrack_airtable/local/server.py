"""``LocalAirtable``: the local Airtable-compatible server, started in-process on a free port.

It serves whatever tables it is given (Airtable table models) and knows nothing of this
project's schema: :mod:`jobtrack_airtable.testing` seeds the tracking tables.

>>> things = {"name": "Things", "fields": [{"name": "Name", "type": "singleLineText"}]}
>>> with LocalAirtable(tables=[things], rate_limit=None) as srv:
...     rec = srv.table("Things").create({"Name": "a"})
...     srv.request_log.count(method="POST")
1
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pyairtable
import requests
import requests.adapters

from .app import AirtableApp
from .errors import ApiError
from .faults import FaultInjector
from .httpserver import Server
from .query import IteratorRegistry
from .quota import MonthlyQuota
from .ratelimit import RateLimiter
from .requestlog import RequestLog
from .storage import Store, is_id

DEFAULT_BASE_ID = "appJobtrackLocal1"
#: Where pyairtable sends attachment uploads (Airtable's content host, with the endpoint's
#: scheme); served here too.
CONTENT_URLS = ("https://content.airtable.com/", "http://content.airtable.com/")


class _ToServer(requests.adapters.HTTPAdapter):
    """Sends requests for ``prefix`` to the local server instead."""

    def __init__(self, prefix: str, url: str) -> None:
        super().__init__()
        self._prefix, self._url = prefix, url.rstrip("/") + "/"

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if request.url and request.url.startswith(self._prefix):
            request.url = self._url + request.url[len(self._prefix) :]
        return super().send(request, *args, **kwargs)


def check_loopback(host: str) -> None:
    """Refuse any bind address that is not loopback (``127.0.0.0/8``, ``::1``, ``localhost``).

    >>> check_loopback("127.0.0.1")
    >>> check_loopback("0.0.0.0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the local Airtable server listens on loopback only ...; refusing host '0.0.0.0'
    """
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            "the local Airtable server listens on loopback only (127.0.0.1, ::1 or "
            f"localhost); refusing host {host!r}"
        )


class LocalAirtable:
    """An Airtable-compatible HTTP server on 127.0.0.1, for tests, benchmarks and dev work.

    Parameters (all keyword-only):

    ``tables``: Airtable table models (``{"name", "fields": [{"name", "type", "options"?}]}``,
    the shape ``POST /v0/meta/bases/{base}/tables`` takes, formula fields included) created in
    the base unless it already has them; an empty base when ``None``.
    ``token``: the bearer token clients must send (random when omitted).
    ``base_id``: ``app`` + 14 alphanumerics.
    ``data_path``: persist to this JSON file (atomic writes, restart-safe); memory only when
    ``None``.
    ``rate_limit``: requests per second per base (``None`` = off; default 5), with a
    ``penalty_seconds`` lock-out after a breach (default 30).  ``token_rate_limit``: the
    per-token limit (Airtable's 50/s), off by default.
    ``iterator_idle_seconds``: how long an unused listing offset stays valid.
    ``max_body_bytes``: larger request bodies get 413.
    ``log_size``/``log_bytes``: the request log keeps at most this many entries and bytes.
    ``cpu_budget_seconds``: CPU time one listing may spend filtering and sorting (then 422).
    ``formula_fields_via_api``: let the meta API create formula fields (Airtable's refuses;
    seeding from Python through :attr:`store` can always create any field type).
    ``monotonic``: the clock (seconds) of rate-limit windows, penalties and offset expiry; a
    test that advances its own clock checks them without sleeping for them.
    ``faults``: a :class:`FaultInjector` (a fresh one seeded with ``fault_seed`` by default).
    ``monthly_quota``: data requests allowed this "month" (``None``: unlimited); once spent,
    every data request gets Airtable's 429 ``PUBLIC_API_BILLING_LIMIT_EXCEEDED`` while the
    meta API answers; :attr:`quota` spends (``quota.spend()``) or resets it (``quota.reset()``).
    ``host``/``port``: where to listen (loopback and a free port by default); a non-loopback
    host is refused (:class:`ValueError`): the server is a local stand-in, not a service.
    ``max_connections``: open connections at once (more get a 503); ``idle_timeout``: seconds
    an idle keep-alive connection (or a stalled read) is kept.

    >>> srv = LocalAirtable(rate_limit=None).start()
    >>> srv.url.startswith("http://127.0.0.1:")
    True
    >>> srv.stop()
    """

    def __init__(
        self,
        *,
        tables: Sequence[Mapping[str, Any]] | None = None,
        token: str | None = None,
        base_id: str = DEFAULT_BASE_ID,
        base_name: str | None = None,
        data_path: str | Path | None = None,
        rate_limit: int | None = 5,
        penalty_seconds: float = 30.0,
        token_rate_limit: int | None = None,
        iterator_idle_seconds: float = 300.0,
        faults: FaultInjector | None = None,
        fault_seed: int | None = None,
        monthly_quota: int | None = None,
        log_size: int = 1000,
        max_body_bytes: int = 5 * 1024 * 1024,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 32,
        idle_timeout: float = 30.0,
        cpu_budget_seconds: float | None = 10.0,
        log_bytes: int = 16 * 1024 * 1024,
        formula_fields_via_api: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        check_loopback(host)
        if not is_id(base_id, "app"):
            raise ValueError(f"base_id must be 'app' + 14 alphanumerics, got {base_id!r}")
        self.token = token or secrets.token_urlsafe(24)
        self.base_id = base_id
        self.host = host
        self._port = port
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.store = Store(data_path)
        self.base_name = base_name
        try:
            self.store.create_base(base_id, base_name)
            self.store.ensure_tables(base_id, tables or [])
        except ApiError as exc:
            self.store.close()
            raise ValueError(f"cannot create the tables: {exc.message}") from None
        except ValueError:
            self.store.close()
            raise
        self.rate_limiter = RateLimiter(
            rate_limit, penalty_seconds=penalty_seconds, clock=monotonic
        )
        self.token_limiter = RateLimiter(
            token_rate_limit, penalty_seconds=penalty_seconds, clock=monotonic
        )
        self.faults = faults if faults is not None else FaultInjector(seed=fault_seed)
        #: The simulated monthly API quota: ``quota.spend()`` / ``quota.reset()``.
        self.quota = MonthlyQuota(monthly_quota)
        self.request_log = RequestLog(maxlen=log_size, max_bytes=log_bytes)
        self.iterators = IteratorRegistry(iterator_idle_seconds, clock=monotonic)
        self.app = AirtableApp(
            self.store,
            token=self.token,
            rate_limiter=self.rate_limiter,
            token_limiter=self.token_limiter,
            faults=self.faults,
            quota=self.quota,
            request_log=self.request_log,
            iterators=self.iterators,
            max_body_bytes=max_body_bytes,
            cpu_budget_seconds=cpu_budget_seconds,
            formula_fields_via_api=formula_fields_via_api,
        )
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def set_token(self, token: str) -> None:
        """Accept ``token`` from now on, and no other (a token revoked, then restored)."""
        if not token:
            raise ValueError("a non-empty token is required")
        self.token = token
        self.app.set_token(token)

    def __repr__(self) -> str:
        # Never show the token.
        state = self.url if self._server is not None else "stopped"
        return f"<LocalAirtable base={self.base_id!r} {state}>"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        self.store.open()  # after a stop(): the base file again, as a restart would
        self.store.create_base(self.base_id, self.base_name)  # names live in memory only
        server = Server(
            (self.host, self._port),
            self.app,
            max_connections=self.max_connections,
            idle_timeout=self.idle_timeout,
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"local-airtable-{server.server_port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        # Releases the base file (another server may open it now); reads stay possible.
        self.store.close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the ``serve`` CLI)."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and clients --------------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start (a keep-alive client opens one)."""
        return self._server.connections_opened if self._server is not None else 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (pass as ``endpoint_url``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def api(self, *, timeout: tuple[float, float] = (5, 30)) -> pyairtable.Api:
        """A pyairtable ``Api`` for this server, built the way the project builds it: no
        pyairtable retries (tenacity owns retries) and an explicit timeout.  Its session
        sends what pyairtable addresses to ``content.airtable.com`` (attachment uploads) to
        this server too."""
        api = pyairtable.Api(
            self.token,
            endpoint_url=self.url,
            retry_strategy=None,
            # pyairtable annotates tuple[int, int]; requests takes floats fine.
            timeout=timeout,  # type: ignore[arg-type]
        )
        for prefix in CONTENT_URLS:
            api.session.mount(prefix, _ToServer(prefix, self.url))
        return api

    def table(self, name: str) -> pyairtable.Table:
        """A pyairtable ``Table`` of this server's base, by table name or ID."""
        return self.api().table(self.base_id, name)
