"""The local Airtable-compatible server (SPEC §3.5).

Modules: :mod:`.storage` (data model), :mod:`.persistence` (the SQLite base file),
:mod:`.index` (field indexes, filter planner), :mod:`.fieldmodels` (what the meta API
creates), :mod:`.app` (HTTP API), :mod:`.httpserver` (HTTP/1.1 keep-alive server),
:mod:`.query` (reads, formula fields, paging), :mod:`.formulas` (formula evaluator),
:mod:`.comments` (record comments), :mod:`.attachments` (attachment objects, uploads),
:mod:`.users` (the server's one user), :mod:`.faults` (fault injection),
:mod:`.ratelimit` (per-base limit and penalty),
:mod:`.requestlog`, :mod:`.server` (:class:`LocalAirtable`), ``__main__`` (``serve`` CLI).

>>> from jobtrack_airtable.local import LocalAirtable
>>> things = {"name": "Things", "fields": [{"name": "Name", "type": "singleLineText"}]}
>>> with LocalAirtable(tables=[things], rate_limit=None) as srv:
...     srv.table("Things").all()
[]

It knows nothing of this project's schema: :mod:`jobtrack_airtable.testing` serves the
tracking tables.  :mod:`.pytest_plugin` is the ``local_airtable_server`` fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import FaultInjector
    from .server import LocalAirtable

__all__ = ["FaultInjector", "LocalAirtable"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing one submodule (e.g. formulas) does not start pulling in the server.
    if name == "LocalAirtable":
        from ..extras import require

        require("local", "the local server")
        from .server import LocalAirtable

        return LocalAirtable
    if name == "FaultInjector":
        from .faults import FaultInjector

        return FaultInjector
    raise AttributeError(name)
