"""Whole-table reads answered from a refreshed mirror (``usage``, ``archive``, ``runs list``).

:class:`MirroredRepository` is a :class:`~jobtrack_airtable.transport.repository.Repository`
whose listings of a whole tracking table -- no formula, no sort, no cap -- come from the
mirror, decoded exactly as a listing would return them (``fields=`` keeps only those fields,
as Airtable does).  Everything else (formulas, writes) goes to the base as before: what the
mirror cannot answer is never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyairtable.api.types import RecordDict

from ...transport.client import Connection
from ...transport.repository import PageCallback, Repository
from ..sync.model import TABLE_ORDER
from . import Mirror

__all__ = ["MirroredRepository"]


class MirroredRepository(Repository):
    """A repository reading whole tracking tables from ``mirror`` (refresh it first)."""

    def __init__(self, conn: Connection, mirror: Mirror) -> None:
        super().__init__(conn)
        self.mirror = mirror

    def list_records(
        self,
        table: str,
        *,
        formula: str | None = None,
        fields: Sequence[str] | None = None,
        sort: Sequence[str] | None = None,
        max_records: int | None = None,
        on_page: PageCallback | None = None,
    ) -> list[RecordDict]:
        if formula or sort or max_records or table not in TABLE_ORDER:
            return super().list_records(
                table,
                formula=formula,
                fields=fields,
                sort=sort,
                max_records=max_records,
                on_page=on_page,
            )
        records: list[Any] = list(self.mirror.records(table))
        if fields:
            wanted = set(fields)
            for record in records:
                record["fields"] = {k: v for k, v in record["fields"].items() if k in wanted}
        if on_page is not None:
            on_page(len(records))
        return records
