"""Pass 7: entities → the plan's entries (field changes by logical key) and its guards.

Notes queued by the earlier passes are appended to ``system_notes`` (never overwriting); each
row with changes becomes an update (and is fingerprinted), a row with only problems an
attention entry, each merged duplicate a delete carrying the values it held.
"""

from __future__ import annotations

from ....airtable import MAX_LONG_TEXT
from ....worker.runs import CUT_MARKER, fit_notes
from ..groups import assemble, split
from ..model import TABLE_ORDER, Action, FieldChange, Plan, RecordChange
from ..state import PlanState, is_empty

__all__ = ["CUT_MARKER", "diff", "fit_notes", "to_plan"]


def diff(state: PlanState) -> None:
    for table in TABLE_ORDER:
        layout = state.ctx.layouts[table]
        natural = layout.spec.natural_key
        for entity in state.entities[table]:
            survivor = entity.survivor
            if entity.notes and layout.has("system_notes"):
                existing = entity.get("system_notes")
                lines = "\n".join(entity.notes)
                entity.set(
                    "system_notes",
                    f"{existing}\n{lines}" if isinstance(existing, str) and existing else lines,
                )
            notes = entity.changed.get("system_notes") if entity.changed else None
            if isinstance(notes, str) and len(notes) > MAX_LONG_TEXT:
                entity.set("system_notes", fit_notes(notes))
            changes = []
            for key in layout.keys:  # layout order, so plans read the same every time
                if entity.changed is None or key not in entity.changed:
                    continue
                old, new = entity.read(key), entity.changed[key]
                if is_empty(old) and is_empty(new):
                    continue
                if old != new or type(old) is not type(new):
                    changes.append(FieldChange(field=key, old=old, new=new))
            action: Action | None
            if changes:
                action = Action.UPDATE
                state.fingerprint(survivor)
                if any(c.field == natural for c in changes) and entity.key is not None:
                    state.guard_keys[table].add(entity.key)
            elif entity.attention:
                action = Action.ATTENTION
            else:
                action = None
            if action is not None:
                state.records.append(
                    RecordChange(
                        table=table,
                        action=action,
                        record_id=survivor.id,
                        key=entity.key if entity.key is not None else survivor.raw_key,
                        changes=changes,
                        reasons=(entity.reasons or []) if changes else [],
                        attention=entity.attention or [],
                    )
                )
            for dup in entity.members[1:]:
                state.records.append(
                    RecordChange(
                        table=table,
                        action=Action.DELETE,
                        record_id=dup.id,
                        key=entity.key,
                        merged_into=survivor.id,
                        changes=[
                            FieldChange(field=key, old=value, new=None)
                            for key, value in zip(layout.keys, dup.values, strict=True)
                            if not is_empty(value)
                        ],
                        reasons=[
                            f"duplicate of {survivor.id} (Run ID {entity.key!r}): merged "
                            "into it, then deleted",
                            *(dup.reasons or ()),
                        ],
                    )
                )


def to_plan(state: PlanState) -> Plan:
    """The finished plan: entries in display order, guards, the names renderers show --
    assembled from its groups' plans, as an incremental plan is (see :mod:`..groups`)."""
    rows = {t: len(state.rows[t]) for t in TABLE_ORDER}
    return assemble(state.ctx, split(state).values(), rows)
