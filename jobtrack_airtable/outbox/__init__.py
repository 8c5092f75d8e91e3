"""The durable outbox (issue 19): every change of a run is stored on this machine before the
call that made it returns, and leaves only once Airtable holds it.

* :mod:`.store` -- the small protocol (``put``/``retire``/``refused``/``claim``/``drop``);
* :mod:`.sqlite` -- the default store, a WAL SQLite file shared by the machine's processes;
* :mod:`.redis` -- the store of fleets without durable disks;
* :mod:`.cadence` -- when pending changes go out: opens and closes promptly, increments at
  the pace of the machine's monthly request budget;
(``outbox status`` / ``replay`` / ``drop`` for admins: :mod:`jobtrack_airtable.admin.outbox`.)

>>> from jobtrack_airtable.settings import Settings
>>> open_outbox(Settings(_env_file=None, outbox_url="sqlite:///tmp/x/outbox.sqlite"))
SqliteOutbox('/tmp/x/outbox.sqlite', sync='normal')
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..settings import Settings
from .sqlite import SqliteOutbox, default_outbox_path
from .store import Entry, OutboxStore

__all__ = ["Entry", "OutboxStore", "SqliteOutbox", "default_outbox_path", "open_outbox"]


def open_outbox(settings: Settings) -> OutboxStore:
    """The store ``settings.outbox_url`` names (the per-user SQLite file by default)."""
    if not settings.outbox_url:
        return SqliteOutbox(sync=settings.outbox_sync)
    url = urlsplit(settings.outbox_url)
    scheme = url.scheme.lower()
    if scheme == "sqlite":
        raw = unquote(url.path)
        if url.netloc or not raw or raw == "/":
            raise ConfigError(
                "JOBTRACK_OUTBOX_URL must look like sqlite:///absolute/path.sqlite, "
                f"got {settings.outbox_url!r}"
            )
        if raw.startswith("//"):
            raw = "/" + raw.lstrip("/")
        return SqliteOutbox(Path(raw), sync=settings.outbox_sync)
    if scheme in ("redis", "rediss"):
        from .redis import RedisOutbox

        return RedisOutbox.from_url(settings.outbox_url)
    # The URL itself is not echoed: it may carry a password.
    raise ConfigError(
        f"JOBTRACK_OUTBOX_URL has an unsupported scheme {url.scheme!r} "
        "(supported: sqlite://, redis://, rediss://)"
    )
