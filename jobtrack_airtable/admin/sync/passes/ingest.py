"""Pass 1: records as read → compact :class:`~..state.Row` s (see :mod:`..state`).

Called page by page while the next pages are read (:func:`..apply.plan_sync`), so the
per-row work -- the fingerprint, the field values, recognising run IDs already in the
standard form, collecting the client IDs the data knows -- hides behind the reads.  Legacy IDs
wait for :mod:`.identify`: resolving the old ``C`` client prefix needs every known client ID.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from ....errors import InvalidClientIdError, InvalidInputError, show
from ....run_ids import validate_client_id
from ...legacy import LegacyFormat, Recognised, recognise
from ..model import TableKey, fingerprint_digest
from ..state import Layout, PlanState, Row, is_empty, pack

__all__ = ["CURRENT_FORMATS", "ingest", "key_of", "valid_client"]

CURRENT_FORMATS = frozenset({LegacyFormat.STANDARD, LegacyFormat.CLIENT})


def valid_client(value: Any) -> bool:
    try:
        validate_client_id(value)
    except InvalidClientIdError:
        return False
    return True


@functools.lru_cache(maxsize=1 << 12)
def _valid_client_text(value: str) -> bool:
    # The same few clients on every row of every run: validated once each.
    return valid_client(value)


#: Fields whose values repeat across rows (a handful of statuses; the same clients every
#: run): one shared string each instead of one per row.
INTERNED = ("status", "client_id", "client_name")


def _packed(
    fields: Mapping[str, Any], layout: Layout, interned: list[int], numbers: dict[int, int]
) -> tuple[Any, ...]:
    values = [fields.get(n) for n in layout.names]
    for i in interned:
        value = values[i]
        if type(value) is str:
            values[i] = sys.intern(value)
    for i in layout.numbers:
        value = values[i]
        if type(value) is int:
            values[i] = numbers.setdefault(value, value)
    for i in layout.times:
        values[i] = pack(values[i])
    return tuple(values)


def key_of(state: PlanState, row: Row, found: Recognised) -> None:
    """Set ``row.key`` (and its reasons or attention) from what recognising its ID found."""
    row.identified = True
    row.apify = found.apify_run_id
    if found.base is None:
        row.flag(
            "Run ID is empty: the row cannot be matched to a run"
            if is_empty(row.raw_key)
            else f"Run ID {show(row.raw_key)} cannot be converted: {found.reason}; left as it is"
        )
        return
    if row.table == "jobs":
        if found.client_id is not None:
            row.flag(
                f"Run ID {show(row.raw_key)} is a client run ID "
                f"({found.format.value} form); a job row needs a base run ID"
            )
            return
        key = str(found.base)
    else:
        client = found.client_id
        if client is None:
            layout = state.layouts["client_runs"]
            i = layout.index.get("client_id")
            cid = row.value(i) if i is not None else None
            if not (isinstance(cid, str) and valid_client(cid)):
                row.flag(
                    f"Run ID {show(row.raw_key)} names no client and Client ID "
                    f"{show(cid)} cannot supply one; left as it is"
                )
                return
            client = cid
            row.reason(
                f"Run ID {show(row.raw_key)} has no client part "
                f"({found.format.value} form): client taken from Client ID"
            )
        key = f"{found.base}-{client}"
    # The same string object when nothing changes: no second copy of every key.
    row.key = row.raw_key if key == row.raw_key else key
    if key != row.raw_key:
        if found.format in CURRENT_FORMATS:
            why = f"Run ID normalised to {key!r}"
        else:
            why = f"legacy run ID ({found.format.value}) converted to {key!r}"
        if found.reason:
            why += f" ({found.reason})"
        row.reason(why)


def ingest(state: PlanState, table: TableKey, records: Iterable[Mapping[str, Any]]) -> None:
    """Add one page (or all) of ``table``'s records to ``state.rows``."""
    layout = state.layouts[table]
    key_name = layout.spec.key_name
    cid_index = layout.index.get("client_id") if table == "client_runs" else None
    interned = [layout.index[k] for k in INTERNED if k in layout.index]
    out = state.rows[table]
    known = state.known_clients
    contributions = state.contributions if table == "client_runs" else None
    for record in records:
        if not isinstance(record, Mapping) or not isinstance(record.get("id"), str):
            raise InvalidInputError(f"not an Airtable record: {show(record)}")
        fields = record.get("fields")
        if not isinstance(fields, Mapping):
            fields = {}
        created = record.get("createdTime")
        raw = fields.get(key_name)
        row = Row(
            layout,
            record["id"],
            pack(created) if isinstance(created, str) else "",
            _packed(fields, layout, interned, state.shared_numbers),
            fingerprint_digest(record),
            raw,
        )
        out.append(row)
        added: list[str] = []
        if cid_index is not None:
            cid = row.packed[cid_index]
            if isinstance(cid, str) and _valid_client_text(cid):
                added.append(cid)
        if isinstance(raw, str):
            found = recognise(raw)
            if found.format in CURRENT_FORMATS:
                # Final already: known client IDs only change ambiguous forms, and the start
                # time only structured SR ones.
                key_of(state, row, found)
                if table == "client_runs" and found.client_id is not None:
                    added.append(found.client_id)
        known.update(added)
        if contributions is not None and added:
            contributions[row.id] = tuple(added)
