"""A local mirror of the tracking tables: cost proportional to change (issue 23).

Every row of both tables lives in one SQLite file per base (``docs/mirror.md`` documents its
schema: query it with ``sqlite3`` or Datasette), refreshed incrementally -- changed rows by a
last-modified filter, deleted rows from a webhook's payloads (a key-only scan when webhooks
are unavailable) -- so that re-planning an unchanged 50,000-row base costs 4 requests
instead of 502.

>>> from jobtrack_airtable.mirror import Mirror                 # doctest: +SKIP
>>> mirror = Mirror.for_repo(repo)                              # doctest: +SKIP
>>> plan = plan_sync(repo, mirror=mirror)                       # doctest: +SKIP
>>> mirror.status().deletions                                   # doctest: +SKIP
'webhook'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs

from ...errors import InvalidInputError, show
from ...schema import Schema
from ...settings import BASE_ID_RE
from ...timeutil import parse_airtable, utcnow
from ...transport.client import DEFAULT_ENDPOINT_URL
from ...transport.meta import fetch_meta
from ...transport.repository import Repository
from ..sync.model import TABLE_ORDER, Plan, TableKey
from ..sync.reader import Page
from .deletions import DEFAULT_SCAN_INTERVAL
from .plans import PlanCache, PlanRun
from .refresh import OVERLAP, RefreshResult, refresh
from .store import SCHEMA_VERSION, MirrorFile

__all__ = [
    "MIRROR_DIR_ENV",
    "OVERLAP",
    "SCHEMA_VERSION",
    "Mirror",
    "MirrorStatus",
    "PlanRun",
    "RefreshResult",
    "default_mirror_path",
]

#: Where mirror files go instead of ``<user data dir>/mirror``.
MIRROR_DIR_ENV = "JOBTRACK_MIRROR_DIR"
_PAGE = 1000


def default_mirror_path(base_id: str, endpoint_url: str | None = None) -> Path:
    """``<dir>/<base>.sqlite`` with ``<dir>`` ``$JOBTRACK_MIRROR_DIR``, else
    ``<user data dir>/mirror``.  A base behind another endpoint than Airtable's (the local
    server, a proxy) is another base, whatever its ID: its file name carries the endpoint's
    hash.

    >>> default_mirror_path("appAAAAAAAAAAAAAA").name
    'appAAAAAAAAAAAAAA.sqlite'
    >>> default_mirror_path("appAAAAAAAAAAAAAA", "http://127.0.0.1:8765").name
    'appAAAAAAAAAAAAAA-72b0e86b.sqlite'
    >>> default_mirror_path("../../etc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidInputError: not an Airtable base ID ...: '../../etc'
    """
    if not isinstance(base_id, str) or not BASE_ID_RE.match(base_id):
        raise InvalidInputError(
            f"not an Airtable base ID (app + 14 letters/digits): {show(base_id)}"
        )
    folder = os.environ.get(MIRROR_DIR_ENV)
    root = (
        Path(folder).expanduser()
        if folder
        else Path(platformdirs.user_data_dir("jobtrack-airtable")) / "mirror"
    )
    endpoint = (endpoint_url or DEFAULT_ENDPOINT_URL).rstrip("/")
    if endpoint == DEFAULT_ENDPOINT_URL:
        return root / f"{base_id}.sqlite"
    tag = hashlib.sha256(endpoint.encode()).hexdigest()[:8]
    return root / f"{base_id}-{tag}.sqlite"


@dataclass(frozen=True)
class MirrorStatus:
    """What ``jobtrack-airtable mirror status`` shows."""

    path: str
    base_id: str
    rows: dict[TableKey, int]
    last_refresh: str | None
    last_full: str | None
    #: Seconds between the last refresh and the server's "now" (``None`` if never).
    lag_seconds: float | None
    #: ``"webhook"``, ``"scan"``, or ``None`` before the first refresh.
    deletions: str | None
    #: Why webhooks are not used, when they are not.
    deletions_reason: str | None
    last_scan: str | None
    webhook_expires: str | None
    #: How often the key-only scan runs when webhooks are unavailable.
    scan_interval: timedelta = DEFAULT_SCAN_INTERVAL

    def describe_deletions(self) -> str:
        if self.deletions == "webhook":
            return f"webhook payloads (webhook expires {self.webhook_expires})"
        if self.deletions == "scan":
            return (
                f"key-only scan at most every {self.scan_interval} (last {self.last_scan}): "
                f"{self.deletions_reason or 'webhooks unavailable'}; rows deleted since the "
                "last scan may still be in the mirror"
            )
        return "not yet refreshed"


class Mirror:
    """One base's mirror (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        base_id: str,
        *,
        scan_interval: timedelta = DEFAULT_SCAN_INTERVAL,
        overlap: timedelta = OVERLAP,
    ) -> None:
        for name, value in (("scan_interval", scan_interval), ("overlap", overlap)):
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise InvalidInputError(f"{name} must be a positive timedelta, not {show(value)}")
        self.file = MirrorFile(Path(path).expanduser(), base_id)
        #: Each group's plan, kept beside the rows (incremental planning, :meth:`plan`).
        self.plans = PlanCache(self.file)
        self.scan_interval = scan_interval
        #: How far before the last refresh's server time changed rows are read again: the
        #: server clock's error as this process knows it, and commit latency.
        self.overlap = overlap
        #: What the last :meth:`refresh` did (``None`` before one).
        self.last: RefreshResult | None = None

    @classmethod
    def for_repo(cls, repo: Repository, path: str | Path | None = None) -> Mirror:
        """The mirror of ``repo``'s base, at ``path`` or :func:`default_mirror_path`."""
        base_id = repo.conn.base_id
        if path is None:
            path = default_mirror_path(base_id, repo.conn.endpoint_url)
        return cls(path, base_id)

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def notice(self) -> str | None:
        """One line when the file was not trusted and was started afresh."""
        return self.file.notice

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(
        self, repo: Repository, *, meta: Mapping[str, Any] | None = None, full: bool = False
    ) -> RefreshResult:
        """Bring the mirror up to date (``meta``: the base's schema if already read, else 1
        request reads it)."""
        if repo.conn.base_id != self.file.base_id:
            raise InvalidInputError(
                f"this mirror is of base {self.file.base_id!r}, not {repo.conn.base_id!r}"
            )
        if meta is None:
            meta = fetch_meta(repo.conn)
        self.last = refresh(
            repo, self.file, meta, full=full, scan_interval=self.scan_interval, overlap=self.overlap
        )
        return self.last

    def rebuild(self, repo: Repository) -> RefreshResult:
        """A full read into the mirror (``mirror rebuild``)."""
        return self.refresh(repo, full=True)

    def records(self, table: TableKey) -> Iterator[dict[str, Any]]:
        """Every row of ``table`` as pyairtable would list it (decoded, logical names)."""
        return self.file.records(table)

    def pages(self, tables: Sequence[TableKey] = TABLE_ORDER) -> Iterator[Page]:
        """The rows as :func:`~jobtrack_airtable.sync.reader.read_tables` would yield them."""
        for table in tables:
            chunk: list[Any] = []
            for record in self.file.records(table):
                chunk.append(record)
                if len(chunk) == _PAGE:
                    yield Page("page", table, chunk)
                    chunk = []
            if chunk:
                yield Page("page", table, chunk)

    def refreshed_pages(
        self, repo: Repository, meta: Mapping[str, Any], *, full: bool = False
    ) -> Iterator[Page]:
        """Refresh, then every row as a full read would page it (``plan_sync`` plans from
        :meth:`plan` instead, incrementally)."""
        self.refresh(repo, meta=meta, full=full)
        return self.pages()

    def plan(self, schema: Schema, *, now: datetime, stale_after: timedelta, base_id: str) -> Plan:
        """The sync plan of the mirror's rows at ``now`` (refresh first), re-planning only
        the groups that what changed or the clock touched (:mod:`.plans`); byte-for-byte
        what :func:`~jobtrack_airtable.admin.sync.build_plan` gives for every row.
        ``self.plans.last`` says what it re-examined."""
        return self.plans.plan(schema, now=now, stale_after=stale_after, base_id=base_id)

    def status(self, repo: Repository | None = None) -> MirrorStatus:
        """Rows, last refresh, lag and how deletions are found (no request is made)."""
        meta = self.file.meta()
        last = meta.get("last_refresh")
        lag = None
        if last is not None:
            now = repo.conn.server_now() if repo is not None else utcnow()
            lag = max(0.0, (now - parse_airtable(last)).total_seconds())
        return MirrorStatus(
            path=str(self.path),
            base_id=self.file.base_id,
            rows=self.file.counts(),
            last_refresh=last,
            last_full=meta.get("last_full"),
            lag_seconds=lag,
            deletions=meta.get("deletions"),
            deletions_reason=meta.get("deletions_reason"),
            last_scan=meta.get("last_scan"),
            webhook_expires=meta.get("webhook_expires"),
            scan_interval=self.scan_interval,
        )
