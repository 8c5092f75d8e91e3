"""Pass 3: rows sharing a natural key (after conversion) merge into the oldest row.

Merge rules, per field sync writes:

* the newest non-empty value wins (newest ``createdTime``, then record ID);
* ``status``: a terminal status is final (SPEC §1.3), so the newest *terminal* value wins over
  a newer ``Running``; unmappable values are skipped (and flagged);
* ``system_notes`` are appended, never overwritten (SPEC §1.1): the distinct notes of all
  rows, oldest first, one per line;
* computed fields and fields the schema does not know are not written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ....errors import show
from ....statuses import map_status
from ..model import TABLE_ORDER
from ..state import Entity, PlanState, Row, is_empty

__all__ = ["merge"]


def merge(state: PlanState) -> None:
    for table in TABLE_ORDER:
        position: dict[str, int] = {}  # natural key → its entity's index in ``entities``
        entities = state.entities[table]
        grouped: list[int] = []
        for row in state.rows[table]:
            index = position.get(row.key) if row.key is not None else None
            if index is None:
                # A row is its own entity until a duplicate turns up: no object of its own.
                if row.key is not None:
                    position[row.key] = len(entities)
                entities.append(row)
                continue
            first = entities[index]
            if first.duplicates is None:
                first.duplicates = []
                grouped.append(index)
            first.duplicates.append(row)
        for index in grouped:
            entities[index] = _merge(state, entities[index])


def _merge(state: PlanState, first: Row) -> Row:
    """The entity of ``first``'s key, with its duplicates merged into the oldest row."""
    members = sorted([first, *(first.duplicates or ())], key=lambda r: r.order)
    first.duplicates = None
    entity = survivor = members[0]
    survivor.duplicates = members[1:]
    key = entity.key
    # The survivor's own reasons and problems as a row are its first ones as the entity.
    entity.reasons = list(survivor.reasons) if survivor.reasons else None
    entity.attention = list(survivor.attention) if survivor.attention else None
    for row in members:
        state.fingerprint(row)
    layout = entity.layout
    newest_first = members[::-1]
    for key_, i in layout.index.items():
        if key_ == "status":
            value = _merge_status(entity, i, newest_first)
        elif key_ == "system_notes":
            texts: list[Any] = []
            for row in members:
                text = row.value(i)
                if not is_empty(text) and text not in texts:
                    texts.append(text)
            value = (
                "\n".join(texts)
                if texts and all(isinstance(t, str) for t in texts)
                else (texts[-1] if texts else None)
            )
        else:
            value = next((r.value(i) for r in newest_first if not is_empty(r.value(i))), None)
        if value != survivor.value(i) or type(value) is not type(survivor.value(i)):
            entity.set(key_, value)
    others = ", ".join(r.id for r in members[1:])
    entity.reason(
        f"{len(members) - 1} duplicate row(s) with Run ID {key!r} merged into this, the "
        f"oldest row (newest non-empty value per field): {others}"
    )
    state.ctx.note(entity, f"merged duplicate row(s) {others} into this row")
    return entity


def _merge_status(entity: Entity, i: int, newest_first: Sequence[Row]) -> Any:
    terminal = running = None
    for row in newest_first:
        value = row.value(i)
        if is_empty(value):
            continue
        mapped = map_status(value).status
        if mapped is None:
            if row is not entity.survivor:
                entity.flag(
                    f"duplicate {row.id} holds unmappable Status {show(value)}; "
                    "not used in the merge"
                )
            continue
        if mapped.is_terminal and terminal is None:
            terminal = value
        elif not mapped.is_terminal and running is None:
            running = value
    if terminal is not None:
        return terminal
    if running is not None:
        return running
    return entity.survivor.value(i)
