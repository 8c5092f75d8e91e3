"""The local Airtable-compatible server (SPEC §3.5).

Modules: :mod:`.storage` (data model, persistence), :mod:`.app` (HTTP API), :mod:`.query`
(reads, formula fields, paging), :mod:`.formulas` (formula evaluator), :mod:`.faults` (fault
injection), :mod:`.ratelimit` (per-base limit and penalty), :mod:`.requestlog`,
:mod:`.server` (:class:`LocalAirtable`), ``__main__`` (``serve`` CLI).

>>> from jobtrack_airtable.local import LocalAirtable
>>> with LocalAirtable(rate_limit=None) as srv:
...     srv.table("jobs").all()
[]
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
        from .server import LocalAirtable

        return LocalAirtable
    if name == "FaultInjector":
        from .faults import FaultInjector

        return FaultInjector
    raise AttributeError(name)
