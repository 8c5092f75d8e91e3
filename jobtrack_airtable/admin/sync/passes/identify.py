"""Pass 2: the run IDs :mod:`.ingest` could not settle (legacy forms, SPEC §1.2).

Structured SR IDs take the time of day from the row's Start Time, else its created time; the
old ``C`` client prefix is stripped only when the rest is a client ID known from the data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ....errors import InvalidInputError
from ....timeutil import parse_airtable
from ...legacy import recognise
from ..model import TABLE_ORDER
from ..state import PlanState
from .ingest import key_of

__all__ = ["identify", "parse_time"]


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_airtable(value)
    except InvalidInputError:
        return None


def identify(state: PlanState) -> None:
    known = frozenset(state.known_clients)
    for table in TABLE_ORDER:
        start_index = state.ctx.layouts[table].index.get("start_time")
        for row in state.rows[table]:
            if row.identified:
                continue
            start = parse_time(row.value(start_index)) if start_index is not None else None
            start = start or parse_time(row.created)
            key_of(state, row, recognise(row.raw_key, start_time=start, known_client_ids=known))
