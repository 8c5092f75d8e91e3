"""Pick the limiter the settings ask for.

>>> from jobtrack_airtable.settings import Settings
>>> build_limiter(Settings(rate_limit=0))
NullLimiter()
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from ..errors import ConfigError
from ..settings import Settings
from .base import Limiter, NullLimiter, lease_for
from .sqlite import LocalLimiter

__all__ = ["LIMITER_BACKENDS", "LimiterBuilder", "build_limiter"]

LimiterBuilder = Callable[[Settings, SplitResult], Limiter]


def _sqlite_builder(settings: Settings, url: SplitResult) -> Limiter:
    if url.netloc or not url.path or url.path == "/":
        raise ConfigError(
            f"JOBTRACK_LIMITER_URL {url.geturl()!r} must look like sqlite:///absolute/path.sqlite"
        )
    raw = unquote(url.path)
    # Accept both sqlite:///abs/path and SQLAlchemy's sqlite:////abs/path (POSIX keeps a
    # leading "//" as distinct), and sqlite:///C:/path on Windows.
    if raw.startswith("//"):
        raw = "/" + raw.lstrip("/")
    if re.match(r"^/[A-Za-z]:[/\\]", raw):
        raw = raw[1:]
    return LocalLimiter(settings.rate_limit, Path(raw), lease=lease_for(settings))


def _redis_builder(settings: Settings, url: SplitResult) -> Limiter:
    # Imported on use: only fleet mode needs it (and it imports the optional redis package).
    from .redis import build_redis_limiter

    return build_redis_limiter(settings, url)


#: URL scheme -> builder.  Add a backend by adding an entry.
LIMITER_BACKENDS: dict[str, LimiterBuilder] = {
    "sqlite": _sqlite_builder,
    "redis": _redis_builder,
    "rediss": _redis_builder,
}


def build_limiter(settings: Settings) -> Limiter:
    """The limiter ``settings`` ask for.

    ``rate_limit == 0`` -> :class:`~.base.NullLimiter`; no ``limiter_url`` ->
    :class:`~.sqlite.LocalLimiter` at :func:`~.sqlite.default_limiter_path`; ``sqlite:///path``
    -> :class:`~.sqlite.LocalLimiter` at that path; ``redis://...`` / ``rediss://...`` ->
    :class:`~.redis.RedisLimiter` (fleet mode; needs the ``redis`` extra, else
    :class:`~jobtrack_airtable.errors.ConfigError`).  Both ``sqlite:///abs/path`` and
    ``sqlite:////abs/path`` name the absolute path ``/abs/path``.
    """
    if settings.rate_limit == 0:
        return NullLimiter()
    if not settings.limiter_url:
        return LocalLimiter(settings.rate_limit, lease=lease_for(settings))
    url = urlsplit(settings.limiter_url)
    builder = LIMITER_BACKENDS.get(url.scheme.lower())
    if builder is None:
        known = ", ".join(f"{s}://" for s in sorted(LIMITER_BACKENDS))
        # The URL itself is not echoed: a store URL may carry a password.
        raise ConfigError(
            f"JOBTRACK_LIMITER_URL has an unsupported scheme {url.scheme!r} (supported: {known})"
        )
    return builder(settings, url)
