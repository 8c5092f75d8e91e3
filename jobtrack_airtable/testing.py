"""A local tracking base for tests, examples and the embedded base: the generic local
Airtable server (:class:`~jobtrack_airtable.local.LocalAirtable`) holding this project's two
tables, with library settings pointing at it.

The server itself knows nothing of the tracking schema; this module turns a
:class:`~jobtrack_airtable.schema.Schema` into Airtable table models
(:func:`tracking_tables`) and seeds them.  Importing it loads the server (werkzeug), so the
worker core never imports it.

>>> with TrackingServer(rate_limit=None) as srv:
...     srv.table("jobs").create({"Run ID": "250930-141522"})["fields"]["Run ID"]
'250930-141522'
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyairtable

from .local.server import LocalAirtable
from .schema import Schema, TableSpec, field_model, load_schema
from .settings import Settings

__all__ = ["TrackingServer", "tracking_tables"]


def _table_model(spec: TableSpec) -> dict[str, Any]:
    primary_first = sorted(spec.enabled_fields(), key=lambda f: not f.primary)
    models = [field_model(f, computed=True) for f in primary_first]
    return {"name": spec.name, "fields": [m for m in models if m is not None]}


def tracking_tables(schema: Schema | str | Path | None = None) -> list[dict[str, Any]]:
    """The schema's tables (enabled fields, primary first, formulas included) as Airtable
    table models, ready for ``LocalAirtable(tables=...)`` or ``Store.ensure_tables``.

    >>> [t["name"] for t in tracking_tables()]
    ['Job Tracking', 'Client Run Results']
    """
    if not isinstance(schema, Schema):
        schema = load_schema(schema)
    return [_table_model(spec) for spec in schema.tables.values()]


class TrackingServer(LocalAirtable):
    """:class:`LocalAirtable` with the tracking tables of ``schema`` (the default schema
    when ``None``; ``create_tables=False`` for an empty base).  Every other option is
    :class:`LocalAirtable`'s.
    """

    def __init__(
        self,
        *,
        schema: Schema | str | Path | None = None,
        create_tables: bool = True,
        **options: Any,
    ) -> None:
        if not isinstance(schema, Schema):
            schema = load_schema(schema)
        self.schema = schema
        tables = tracking_tables(schema) if create_tables else None
        super().__init__(tables=tables, **options)

    _outbox_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def outbox_path(self) -> Path:
        """The outbox file of the trackers of :meth:`settings` (one per server, removed
        with it)."""
        if self._outbox_dir is None:
            self._outbox_dir = tempfile.TemporaryDirectory(prefix="jobtrack-outbox-")
        return Path(self._outbox_dir.name) / "outbox.sqlite"

    def add_base(self, base_id: str) -> None:
        """Create another base holding the tracking tables (fleets across bases)."""
        self.store.ensure_tables(base_id, tracking_tables(self.schema))

    def table(self, name: str) -> pyairtable.Table:
        """A pyairtable ``Table`` by schema key (``"jobs"``), table name or table ID."""
        if name in self.schema.tables:
            name = self.schema.tables[name].name
        return super().table(name)

    def settings(self, **overrides: Any) -> Settings:
        """Library settings pointing at this server: its URL, token and base, no ``.env``
        read.  The client-side limiter runs at the server's rate (off when the server has no
        limit), so a worker talks to it exactly as it would to Airtable.

        >>> with TrackingServer(rate_limit=None) as srv:                 # doctest: +SKIP
        ...     tracker = Tracker.from_settings(srv.settings())
        """
        values: dict[str, Any] = {
            "api_key": self.token,
            "base_id": self.base_id,
            "endpoint_url": self.url,
            "rate_limit": self.rate_limiter.rate or 0,
            # The server's own outbox: its entries never meet another server's base.
            "outbox_url": f"sqlite:///{self.outbox_path}",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)
