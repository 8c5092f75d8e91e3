"""The mirror's SQLite file: one per base, a documented schema an admin may query.

See ``docs/mirror.md`` for the tables.  A file that is missing, not SQLite (corrupt), made for
another base, or of another :data:`SCHEMA_VERSION` is never trusted: :meth:`MirrorFile.open`
starts it afresh and says why in :attr:`MirrorFile.notice` (one line), and the next refresh
is a full read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..sync.model import TABLE_ORDER, TableKey

__all__ = ["SCHEMA_VERSION", "MirrorFile"]

#: Bump whenever the file's meaning changes: an older file is rebuilt, never read.
SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE mirror_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE records (
    tbl          TEXT    NOT NULL CHECK (tbl IN ('jobs', 'client_runs')),
    id           TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    run_id       TEXT,
    created_time TEXT    NOT NULL,
    modified_at  TEXT    NOT NULL,
    fields       TEXT    NOT NULL,
    PRIMARY KEY (tbl, id)
) WITHOUT ROWID;
CREATE INDEX records_by_seq ON records (tbl, seq);
CREATE INDEX records_by_run_id ON records (tbl, run_id);
CREATE TABLE refreshes (
    started_at  TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    changed     INTEGER NOT NULL,
    deleted     INTEGER NOT NULL,
    deletions   TEXT    NOT NULL
);
"""


class MirrorFile:
    """One base's mirror file, opened (and, when untrustworthy, started afresh).

    ``notice`` is ``None`` for a file that was valid, else one line saying why it was
    started afresh (the CLI shows it; the library never prints).
    """

    def __init__(self, path: Path, base_id: str) -> None:
        self.path = path
        self.base_id = base_id
        self.notice: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the mirror directory {str(path.parent)!r}: {exc}"
            ) from None
        reason = self._problem()
        if reason is not None:
            self.notice = f"mirror {str(path)!r} {reason}: rebuilding it from a full read"
            self._start_afresh()
        self.db = self._connect()

    # -- opening ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _problem(self) -> str | None:
        """Why the file cannot be trusted, or ``None``."""
        if not self.path.exists():
            return "is missing"
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                meta = dict(db.execute("SELECT key, value FROM mirror_meta").fetchall())
                db.execute("SELECT tbl, id, seq, fields FROM records LIMIT 1").fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            return "is corrupt (not a mirror database)"
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            return f"has schema version {version!r}, not {SCHEMA_VERSION}"
        if meta.get("base_id") != self.base_id:
            return f"was made for base {meta.get('base_id')!r}, not {self.base_id!r}"
        return None

    def _start_afresh(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.executescript(_DDL)
            db.executemany(
                "INSERT INTO mirror_meta VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("base_id", self.base_id)],
            )
        finally:
            db.close()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> MirrorFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One refresh at a time per file, across processes (a cron and an admin)."""
        with open(f"{self.path}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- state ------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM mirror_meta").fetchall())

    def set_meta(self, values: Mapping[str, str | None]) -> None:
        for key, value in values.items():
            if value is None:
                self.db.execute("DELETE FROM mirror_meta WHERE key = ?", (key,))
            else:
                self.db.execute("INSERT OR REPLACE INTO mirror_meta VALUES (?, ?)", (key, value))

    def counts(self) -> dict[TableKey, int]:
        rows = dict(self.db.execute("SELECT tbl, count(*) FROM records GROUP BY tbl").fetchall())
        return {t: int(rows.get(t, 0)) for t in TABLE_ORDER}

    def ids(self, table: TableKey) -> set[str]:
        return {r for (r,) in self.db.execute("SELECT id FROM records WHERE tbl = ?", (table,))}

    # -- rows -------------------------------------------------------------------------------

    def clear(self) -> None:
        self.db.execute("DELETE FROM records")

    def upsert(
        self, table: TableKey, records: Iterable[Mapping[str, Any]], key_name: str, seen_at: str
    ) -> int:
        """Store ``records`` (decoded, as listed); a known row keeps its place.  Returns how
        many there were."""
        (top,) = self.db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()
        rows = []
        for n, record in enumerate(records, start=top + 1):
            fields = record.get("fields") or {}
            key = fields.get(key_name)
            rows.append(
                (
                    table,
                    record["id"],
                    n,
                    key if isinstance(key, str) else None,
                    record.get("createdTime") or "",
                    seen_at,
                    json.dumps(fields, ensure_ascii=False, separators=(",", ":")),
                )
            )
        self.db.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tbl, id) DO UPDATE "
            "SET run_id = excluded.run_id, modified_at = excluded.modified_at, "
            "fields = excluded.fields",
            rows,
        )
        return len(rows)

    def delete(self, ids: Iterable[str]) -> int:
        """Forget rows by record ID (whichever table holds them); returns how many it held."""
        gone = 0
        for record_id in ids:
            # Both tables named, so the primary key (tbl, id) finds the row without a scan.
            gone += self.db.execute(
                "DELETE FROM records WHERE tbl IN ('jobs', 'client_runs') AND id = ?", (record_id,)
            ).rowcount
        return gone

    def records(self, table: TableKey) -> Iterator[dict[str, Any]]:
        """Every row of ``table`` as pyairtable returns it, in listing order."""
        cursor = self.db.execute(
            "SELECT id, created_time, fields FROM records WHERE tbl = ? ORDER BY seq", (table,)
        )
        for record_id, created, fields in cursor:
            yield {"id": record_id, "createdTime": created, "fields": json.loads(fields)}

    def log_refresh(
        self, started_at: str, kind: str, changed: int, deleted: int, deletions: str
    ) -> None:
        self.db.execute(
            "INSERT INTO refreshes VALUES (?, ?, ?, ?, ?)",
            (started_at, kind, changed, deleted, deletions),
        )
        # A history for `mirror status` and the curious, not an ever-growing log.
        self.db.execute(
            "DELETE FROM refreshes WHERE rowid NOT IN "
            "(SELECT rowid FROM refreshes ORDER BY rowid DESC LIMIT 1000)"
        )
