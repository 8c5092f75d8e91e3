"""Reads answered from a refreshed mirror (``usage``, ``archive``, ``runs list``/``show``,
``report``, ``check``).

:class:`MirroredRepository` is a :class:`~jobtrack_airtable.transport.repository.Repository`
whose listings of a tracking table -- no sort, no cap -- come from the mirror, in the
listing's order, decoded exactly as a listing would return them (``fields=`` keeps only those
fields, as Airtable does).  A listing with a formula comes from the mirror only when its
caller gave the formula's meaning as ``where=`` (a test of one record: the window of
``report``/``check``, one run's rows for ``runs show``); any other formula, and every write,
goes to the base as before: what the mirror cannot answer is never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyairtable.api.types import RecordDict

from ...transport.client import Connection
from ...transport.repository import PageCallback, RecordMatch, Repository
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
        where: RecordMatch | None = None,
    ) -> list[RecordDict]:
        if (formula and where is None) or sort or max_records or table not in TABLE_ORDER:
            return super().list_records(
                table,
                formula=formula,
                fields=fields,
                sort=sort,
                max_records=max_records,
                on_page=on_page,
                where=where,
            )
        records: list[Any] = list(self.mirror.records(table))
        if formula and where is not None:
            records = [r for r in records if where(r)]
        if fields:
            wanted = set(fields)
            for record in records:
                record["fields"] = {k: v for k, v in record["fields"].items() if k in wanted}
        if on_page is not None:
            on_page(len(records))
        return records
