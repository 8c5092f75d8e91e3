"""Build the pyairtable client the rest of the library talks through.

:func:`build_api` returns a :class:`pyairtable.Api` configured the way SPEC §2.8 requires:

* ``retry_strategy=None`` -- pyairtable's own retry gives up on a 429 within ~3 s (inside the
  30 s penalty) and replays POSTs on read timeouts;
* an explicit ``(connect, read)`` timeout -- pyairtable's default is to wait forever;
* ``endpoint_url`` when configured (the local server, a proxy);
* an :class:`~.adapter.AirtableAdapter` on ``api.session``: every request, page and retry
  passes the client-side rate limiter, is counted, teaches the server clock, and is retried
  under the :class:`~.recovery.RetryPolicy` there, in one place.

:class:`Connection` bundles that ``Api`` with the base ID, the schema, the limiter and
the retry policy: the one object the repository takes.

>>> from jobtrack_airtable.settings import Settings
>>> settings = Settings(api_key="patFAKEFAKEFAKEFAK.0123456789abcdef", base_id="appAAAAAAAAAAAAAA",
...                     rate_limit=0)
>>> conn = Connection.from_settings(settings)
>>> conn.table("jobs")
<Table base='appAAAAAAAAAAAAAA' name='Job Tracking'>
>>> "patFAKE" in repr(conn)
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyairtable
from requests.adapters import HTTPAdapter

from .. import forks
from ..airtable import API_URL
from ..errors import ConfigError
from ..limiter import Limiter, build_limiter
from ..schema import Schema, load_schema
from ..settings import Settings
from .adapter import AirtableAdapter
from .recovery import DEFAULT_POLICY, RetryPolicy
from .server_clock import ServerClock

__all__ = ["DEFAULT_ENDPOINT_URL", "Connection", "build_api"]

DEFAULT_ENDPOINT_URL = API_URL

#: Connecting should be quick even when a response may legitimately take long (big pages).
MAX_CONNECT_TIMEOUT = 10.0


def _missing_credentials(settings: Settings, *, need_base: bool) -> list[str]:
    missing = []
    if settings.api_key is None or not settings.api_key.get_secret_value():
        missing.append("AIRTABLE_API_KEY")
    if need_base and not settings.base_id:
        missing.append("AIRTABLE_BASE_ID")
    return missing


def _refuse(missing: list[str]) -> ConfigError:
    return ConfigError(
        f"Airtable credentials are missing: set {' and '.join(missing)} "
        "(in the environment or a .env file)"
    )


def build_api(
    settings: Settings | None = None,
    *,
    limiter: Limiter | None = None,
    token: str | None = None,
    endpoint_url: str | None = None,
    timeout: float | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    clock: ServerClock | None = None,
    penalty_seconds: float | None = None,
) -> pyairtable.Api:
    """A :class:`pyairtable.Api` with no built-in retries, an explicit timeout and the
    :class:`~.adapter.AirtableAdapter` (limiter, ``policy``'s retries, ``clock``) mounted on
    its session.

    ``settings`` defaults to :class:`Settings` read from the environment; ``token``,
    ``endpoint_url`` and ``timeout`` override it; ``limiter`` defaults to
    :func:`~.limiter.build_limiter` of the settings; ``penalty_seconds`` is how long a 429
    puts the base on hold for everyone sharing the limiter (the policy's rate-limit wait:
    Airtable's 30 s by default).  Raises
    :class:`~.errors.ConfigError` naming ``AIRTABLE_API_KEY`` when no token is available.

    >>> from jobtrack_airtable.limiter import NullLimiter
    >>> api = build_api(Settings(rate_limit=0), token="patFAKEFAKEFAKEFAK.0123456789abcdef",
    ...                 endpoint_url="http://127.0.0.1:8765", timeout=5)
    >>> api.timeout, str(api.endpoint_url)
    ((5.0, 5.0), 'http://127.0.0.1:8765')
    """
    settings = settings if settings is not None else Settings()
    if token is None:
        if _missing_credentials(settings, need_base=False):
            raise _refuse(["AIRTABLE_API_KEY"])
        assert settings.api_key is not None
        token = settings.api_key.get_secret_value()
    elif not token:
        raise _refuse(["AIRTABLE_API_KEY"])
    seconds = float(timeout if timeout is not None else settings.timeout)
    if not seconds > 0:
        raise ConfigError(f"timeout must be > 0 seconds, not {seconds!r}")
    url = (endpoint_url or settings.endpoint_url or DEFAULT_ENDPOINT_URL).rstrip("/")

    api = pyairtable.Api(
        token,
        # pyairtable annotates tuple[int, int]; requests takes floats fine.
        timeout=(min(MAX_CONNECT_TIMEOUT, seconds), seconds),  # type: ignore[arg-type]
        retry_strategy=None,
        endpoint_url=url,
    )
    adapter = AirtableAdapter(
        limiter if limiter is not None else build_limiter(settings),
        policy=policy,
        clock=clock,
        penalty_seconds=penalty_seconds,
    )
    api.session.mount("https://", adapter)
    api.session.mount("http://", adapter)
    return api


@dataclass(frozen=True, eq=False, repr=False)
class Connection:
    """Everything the repository needs to talk to the tracking base.

    Build it with :meth:`from_settings` / :meth:`from_env`; its ``repr`` shows the base,
    endpoint and limiter, never the token.

    >>> conn = Connection.from_settings(Settings(
    ...     api_key="patFAKEFAKEFAKEFAK.0123456789abcdef", base_id="appAAAAAAAAAAAAAA",
    ...     rate_limit=0))
    >>> conn.table("client_runs").name
    'Client Run Results'
    """

    api: pyairtable.Api
    base_id: str
    schema: Schema
    settings: Settings
    limiter: Limiter
    policy: RetryPolicy = DEFAULT_POLICY
    #: The server's clock, learnt from every response's ``Date`` header (SPEC §2.10).
    clock: ServerClock = field(default_factory=ServerClock)

    def __post_init__(self) -> None:
        # The adapter does the talking: it retries under this connection's policy and
        # teaches this connection's clock.
        adapter = self.api.session.get_adapter(self.endpoint_url)
        if isinstance(adapter, AirtableAdapter):
            adapter.policy = self.policy
            adapter.clock = self.clock
        forks.register(self, Connection._fresh_connections)

    def _fresh_connections(self) -> None:
        """After a fork: new connection pools.  An inherited keep-alive socket is shared with
        the parent, so each process could read the other's responses; the old pools are
        dropped, never shut down (that would end the parent's connections too)."""
        for adapter in set(self.api.session.adapters.values()):
            if isinstance(adapter, HTTPAdapter):
                adapter.init_poolmanager(
                    adapter._pool_connections,
                    adapter._pool_maxsize,
                    block=adapter._pool_block,
                )
                adapter.proxy_manager = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        schema: Schema | None = None,
        limiter: Limiter | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        clock: ServerClock | None = None,
    ) -> Connection:
        """Connect as ``settings`` say; :class:`~.errors.ConfigError` naming every missing
        variable (``AIRTABLE_API_KEY``, ``AIRTABLE_BASE_ID``) when credentials are absent."""
        missing = _missing_credentials(settings, need_base=True)
        if missing:
            raise _refuse(missing)
        assert settings.base_id is not None
        schema = schema if schema is not None else load_schema(settings.schema_file)
        limiter = limiter if limiter is not None else build_limiter(settings)
        # The policy's rate-limit wait is the penalty the server imposes (30 s on Airtable,
        # less on a local server): the limiter holds the base that long after a 429.
        api = build_api(settings, limiter=limiter, policy=policy)
        return cls(
            api=api,
            base_id=settings.base_id,
            schema=schema,
            settings=settings,
            limiter=limiter,
            policy=policy,
            clock=clock if clock is not None else ServerClock(),
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> Connection:
        """:meth:`from_settings` of :class:`Settings` read from the environment and ``.env``;
        ``kwargs`` go to :meth:`from_settings` (``schema``, ``limiter``, ``policy``,
        ``clock``)."""
        return cls.from_settings(Settings(), **kwargs)

    def table(self, key: str) -> pyairtable.Table:
        """The pyairtable ``Table`` for the schema table ``key`` (``"jobs"``,
        ``"client_runs"``), addressed by its pinned table ID (``schema pin``), else by its
        configured Airtable name."""
        return self.api.table(self.base_id, self.schema.table(key).address)

    def server_now(self) -> datetime:
        """The server's current time (the local clock corrected by the offset learnt from
        responses' ``Date`` headers): the clock to stamp and judge liveness with, since
        workers' own clocks may be hours off."""
        return self.clock.now()

    @property
    def endpoint_url(self) -> str:
        return str(self.api.endpoint_url)

    def close(self) -> None:
        """Close the HTTP session and the limiter."""
        self.api.session.close()
        self.limiter.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Connection(base_id={self.base_id!r}, endpoint_url={self.endpoint_url!r}, "
            f"limiter={self.limiter!r}, policy={self.policy!r})"
        )
