"""The embedded local base: what every command talks to when no Airtable credentials are set.

An admin trying the tool should not need an Airtable account.  With no ``AIRTABLE_API_KEY`` /
``AIRTABLE_BASE_ID`` (or with an explicit ``--local PATH``), :func:`open_backend` starts the
local Airtable-compatible server (:class:`~jobtrack_airtable.local.LocalAirtable`) in-process:

* persisted to ``local-base.sqlite`` in the per-user data directory
  (``platformdirs.user_data_dir("jobtrack-airtable")``) or to the path given;
* seeded with the demo dataset (:mod:`.demo`) the first time the file is created, inserted
  directly through the server's storage API so every row keeps its demo created time;
* listening on 127.0.0.1, an ephemeral port, with a random token and the fixed local base ID
  :data:`EMBEDDED_BASE_ID` (the same default as ``jobtrack-airtable local serve``, so
  ``local serve --data <that file>`` serves the very same base);
* with its rate limit off, and the client-side limiter off too: the base is private to this
  process, so throttling would only make the tool feel slow.

The rest of the library then talks to it over real HTTP through an ordinary
:class:`~jobtrack_airtable.transport.client.Connection`, exactly as it would talk to Airtable.
A file lock next to the data file keeps two commands from loading the same file and overwriting each
other's writes.  On exit the connection is closed and the server stopped; the server persists
every write before acknowledging it, so nothing is left to flush.

This module never prints: :attr:`Backend.notice` carries the one line the CLI shows.

>>> import tempfile, pathlib
>>> from jobtrack_airtable.settings import Settings
>>> path = pathlib.Path(tempfile.mkdtemp()) / "base.json"
>>> with open_backend(Settings(_env_file=None), local=path) as backend:
...     backend.embedded is not None, backend.conn.base_id
(True, 'appJobtrackLocal1')
>>> path.exists()
True
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

import filelock
import platformdirs
from pydantic import SecretStr

from ..errors import ConfigError
from ..local.server import DEFAULT_BASE_ID
from ..local.storage import Store
from ..schema import Schema, load_schema
from ..settings import Settings
from ..testing import TrackingServer, tracking_tables
from ..timeutil import utcnow
from ..transport.client import DEFAULT_ENDPOINT_URL, Connection
from ..transport.codec import codec_for
from .demo import demo_records

__all__ = [
    "APP_NAME",
    "EMBEDDED_BASE_ID",
    "Backend",
    "EmbeddedBase",
    "check_local_path",
    "count_records",
    "default_local_path",
    "lock_local_base",
    "open_backend",
    "seed_file",
    "seed_store",
]

APP_NAME = "jobtrack-airtable"
#: The embedded base's fixed ID (the local server's default), so paths and plans stay stable.
EMBEDDED_BASE_ID = DEFAULT_BASE_ID
#: How long a command waits for another command using the same local base file.
LOCK_TIMEOUT_SECONDS = 30.0


#: The default file name, in the per-user data directory.
DEFAULT_NAME = "local-base.sqlite"


def default_local_path() -> Path:
    """Where the embedded base lives by default: ``<user data dir>/local-base.sqlite``."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / DEFAULT_NAME


# -- seeding --------------------------------------------------------------------------------


def seed_store(
    store: Store, base_id: str, schema: Schema, *, now: datetime | None = None
) -> dict[str, int]:
    """Insert the demo dataset into ``store`` (whose base must hold the schema's tables).

    Logical field keys become Airtable names through ``schema`` (fields the schema disables
    are dropped), and each row gets its demo created time, which stale detection falls back on.
    Legacy select values of the dataset (``Success``, ``Recovery``…) are inserted with
    typecast, as a real legacy base would hold them as options.  Returns the number of rows
    inserted per table key.
    """
    now = now if now is not None else utcnow()
    counts: dict[str, int] = {}
    for record in demo_records(now=now):
        spec = schema.table(record.table)
        fields = codec_for(spec).names(record.fields)
        # One call per row: created_time is per call, and the store is in memory here, so the
        # per-call cost is a dict insert rather than a file write.
        store.create_records(
            base_id,
            spec.name,
            [fields],
            typecast=True,
            created_time=record.created_time,
            limit=None,
        )
        counts[record.table] = counts.get(record.table, 0) + 1
    return counts


def seed_file(
    path: str | Path,
    schema: Schema,
    *,
    base_id: str = EMBEDDED_BASE_ID,
    now: datetime | None = None,
) -> dict[str, int]:
    """Create (or replace) the local base file ``path`` holding the schema's tables filled
    with the demo dataset.  Returns the rows inserted per table key.

    The dataset is built in memory and copied to the file once: one transaction, not a few
    hundred.
    """
    with Store() as store:
        store.ensure_tables(base_id, tracking_tables(schema))
        counts = seed_store(store, base_id, schema, now=now)
        store.save_as(path)
    return counts


#: What loading a corrupt or foreign JSON file can raise (the store wraps most of it in
#: ValueError; a well-formed JSON of the wrong shape can surface as the others).
_LOAD_ERRORS = (ValueError, TypeError, KeyError, AttributeError)


def _unreadable(path: Path, exc: BaseException) -> ConfigError:
    text = str(exc)
    if str(path) in text:
        return ConfigError(text)
    return ConfigError(f"cannot load the local base {str(path)!r}: {text}")


def count_records(path: str | Path) -> int:
    """How many records the local base file ``path`` holds (0 when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return 0
    try:
        store = Store(path)
    except _LOAD_ERRORS as exc:
        raise _unreadable(path, exc) from None
    with store:
        return sum(len(t.records) for b in store.base_ids() for t in store.tables(b))


# -- the running embedded base -------------------------------------------------------------


@contextlib.contextmanager
def lock_local_base(path: str | Path, *, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the lock of the local base file ``path`` (``<path>.lock``) for the block.

    Every user of a local base file (the embedded base, ``local seed``, ``local serve``)
    loads the whole file and rewrites it on each write, so two at once would overwrite each
    other's changes; the lock makes them take turns.  Raises :class:`~.errors.ConfigError`
    after ``timeout`` seconds (0 = do not wait), and at once when the path is a directory,
    its directory does not exist, or the lock file cannot be created there.
    """
    path = Path(path)
    check_local_path(path)
    lock = filelock.FileLock(str(path) + ".lock")
    _probe_lock_file(Path(lock.lock_file))
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise ConfigError(
            f"the local base {str(path)!r} is in use by another jobtrack-airtable command "
            f"(waited {timeout:g} s for {lock.lock_file!r})"
        ) from None
    try:
        yield
    finally:
        lock.release()


def check_local_path(path: Path) -> None:
    """Refuse a local base path that cannot be right, before anything is created: a
    directory, or a file in a directory that does not exist (a mistyped ``--local`` must not
    leave directories and a demo base behind)."""
    if path.is_dir():
        raise ConfigError(
            f"the local base {str(path)!r} is a directory; give a file path such as "
            f"{str(path / DEFAULT_NAME)!r}"
        )
    if path.exists() and not path.is_file():
        # A FIFO or a device would block (or never end) the load that follows.
        raise ConfigError(
            f"the local base {str(path)!r} is not a regular file; give the path of a base "
            f"file such as {str(path.parent / DEFAULT_NAME)!r}"
        )
    if not path.parent.is_dir():
        what = "is not a directory" if path.parent.exists() else "does not exist"
        raise ConfigError(
            f"cannot use the local base {str(path)!r}: the directory {str(path.parent)!r} "
            f"{what}; create it first or fix the path"
        )


def _probe_lock_file(lock_file: Path) -> None:
    """Open (creating) the lock file once, so a path we may not write says so at once --
    filelock would retry until its timeout and then blame another command."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(
            f"cannot create the lock file {str(lock_file)!r} of the local base: {reason}; "
            f"check that {str(lock_file.parent)!r} is a writable directory"
        ) from None
    os.close(fd)


class EmbeddedBase:
    """The local server running in-process over a local base file; a context manager.

    Entering it takes the file lock, seeds the file if it does not exist yet, starts the
    server and connects to it; leaving it closes the connection, stops the server and
    releases the lock.  :attr:`conn` is only valid inside the ``with`` block.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        settings: Settings | None = None,
        schema: Schema | None = None,
        seed: bool = True,
        now: datetime | None = None,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> None:
        # Absolute, so the notice names the file unambiguously.
        self.path = (
            Path(path).expanduser() if path is not None else default_local_path()
        ).absolute()
        #: Only the default location is created on demand; a given path's directory must exist.
        self.is_default = path is None
        self.settings = settings if settings is not None else Settings()
        self.schema = schema if schema is not None else load_schema(self.settings.schema_file)
        self.seed = seed
        self.now = now
        self.lock_timeout = lock_timeout
        #: Whether this session created and seeded the file.
        self.seeded = False
        self.server: TrackingServer | None = None
        self._conn: Connection | None = None
        self._lock: contextlib.ExitStack | None = None

    def __repr__(self) -> str:
        return f"EmbeddedBase(path={str(self.path)!r}, running={self.server is not None})"

    @property
    def conn(self) -> Connection:
        """The connection to the running server."""
        if self._conn is None:
            raise RuntimeError("the embedded base is not running (use it in a with block)")
        return self._conn

    def __enter__(self) -> EmbeddedBase:
        if self.is_default:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        stack = contextlib.ExitStack()
        stack.enter_context(lock_local_base(self.path, timeout=self.lock_timeout))
        self._lock = stack
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def _start(self) -> None:
        if self.seed and not self.path.exists():
            seed_file(self.path, self.schema, now=self.now)
            self.seeded = True
        try:
            server = TrackingServer(
                schema=self.schema,
                token=secrets.token_urlsafe(24),
                base_id=EMBEDDED_BASE_ID,
                data_path=self.path,
                rate_limit=None,
                # `schema init` creates working formula fields here (Airtable's API cannot).
                formula_fields_via_api=True,
            )
        except _LOAD_ERRORS as exc:
            # A corrupt or foreign file: say which file, never a traceback.
            raise _unreadable(self.path, exc) from None
        self.server = server.start()
        settings = self.settings.model_copy(
            update={
                "api_key": SecretStr(server.token),
                "base_id": EMBEDDED_BASE_ID,
                "endpoint_url": server.url,
                "rate_limit": 0.0,
            }
        )
        self._conn = Connection.from_settings(settings, schema=self.schema)

    def _stop(self) -> None:
        conn, self._conn = self._conn, None
        server, self.server = self.server, None
        try:
            if conn is not None:
                conn.close()
        finally:
            try:
                if server is not None:
                    # Every acknowledged write is already on disk: the store persists before
                    # answering.  Stopping closes the listener and any keep-alive connection.
                    server.stop()
            finally:
                lock, self._lock = self._lock, None
                if lock is not None:
                    lock.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()


# -- choosing the backend --------------------------------------------------------------------


@dataclass
class Backend:
    """What a command talks to: a :class:`Connection`, and the embedded base behind it if any.

    ``notice`` is the one line to tell the user when the embedded base is used (``None``
    otherwise); ``description`` names the target for headers and JSON output, never the token.
    """

    conn: Connection
    embedded: EmbeddedBase | None
    notice: str | None
    description: str

    @property
    def kind(self) -> str:
        """``embedded`` (the local/demo base), ``airtable`` or ``endpoint`` (another
        Airtable-compatible server): what JSON output says it was made from."""
        if self.embedded is not None:
            return "embedded"
        return "airtable" if not self.is_local else "endpoint"

    @property
    def is_local(self) -> bool:
        """True when the target is not Airtable itself (embedded base or another endpoint),
        i.e. a server that accepts formula fields through the meta API."""
        return self.embedded is not None or self.conn.endpoint_url.rstrip("/") != (
            DEFAULT_ENDPOINT_URL
        )


@contextlib.contextmanager
def open_backend(
    settings: Settings,
    *,
    local: str | Path | None = None,
    demo: bool = False,
    schema: Schema | None = None,
    now: datetime | None = None,
) -> Iterator[Backend]:
    """Connect to the tracking base the way the CLI does.

    * ``local`` given: the embedded base at that path (credentials, if any, are ignored);
    * ``demo``: the embedded base at :func:`default_local_path` (credentials ignored);
    * ``JOBTRACK_ENDPOINT_URL`` without credentials: :class:`~.errors.ConfigError` (the
      admin meant that server, not the demo data);
    * both ``AIRTABLE_API_KEY`` and ``AIRTABLE_BASE_ID`` set: Airtable (or
      ``JOBTRACK_ENDPOINT_URL``);
    * only one of them set: :class:`~.errors.ConfigError` naming the other — a half-configured
      environment is a mistake, and silently using demo data would hide it;
    * neither set: the embedded base at :func:`default_local_path`.

    The connection is closed (and an embedded server stopped) when the block ends.
    """
    schema = schema if schema is not None else load_schema(settings.schema_file)
    chosen = local is not None or demo
    if not chosen and settings.endpoint_url is not None and not settings.has_credentials:
        raise ConfigError(
            f"JOBTRACK_ENDPOINT_URL is set ({settings.endpoint_url}) but AIRTABLE_API_KEY and "
            "AIRTABLE_BASE_ID are not: set both for that server, or unset JOBTRACK_ENDPOINT_URL"
        )
    if not chosen and (settings.api_key is not None or settings.base_id is not None):
        conn = Connection.from_settings(settings, schema=schema)
        try:
            yield Backend(
                conn=conn,
                embedded=None,
                notice=None,
                description=f"base {conn.base_id} at {conn.endpoint_url}",
            )
        finally:
            conn.close()
        return
    with EmbeddedBase(local, settings=settings, schema=schema, now=now) as embedded:
        why = " (no AIRTABLE_API_KEY/AIRTABLE_BASE_ID set)" if not chosen else ""
        seeded = ", seeded with the demo dataset" if embedded.seeded else ""
        yield Backend(
            conn=embedded.conn,
            embedded=embedded,
            notice=f"Using the embedded local base at {embedded.path}{seeded}{why}.",
            description=f"the embedded local base at {embedded.path}",
        )
