"""What admins do with an outbox (issue 19): ``outbox status``, ``outbox replay`` and
``outbox drop`` -- each one call here, the CLI only renders.

``drop`` is a planned change, like ``sync``: :func:`plan_drop` shows exactly what would be
discarded (the row state each entry still holds), :func:`apply_drop` discards those entries
at those versions only: an entry that changed since the plan stays.

>>> from jobtrack_airtable.outbox import SqliteOutbox
>>> import tempfile, pathlib
>>> store = SqliteOutbox(pathlib.Path(tempfile.mkdtemp()) / "o.sqlite")
>>> store.put("appX/client_runs/250930-141522-A", 5, '{"status": "Running"}', "h:1:a")
5
>>> plan = plan_drop(store, "appX", ["250930-141522-A"])
>>> [(item.run_id, item.version) for item in plan.items]
[('250930-141522-A', 5)]
>>> apply_drop(store, plan)
1
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..metrics import validate_metrics
from ..outbox.store import Entry, OutboxStore, entry_key, owner_alive

if TYPE_CHECKING:
    from ..transport.client import Connection

__all__ = [
    "DropPlan",
    "OutboxItem",
    "apply_drop",
    "outbox_status",
    "plan_drop",
    "replay_outbox",
]


@dataclass(frozen=True)
class OutboxItem:
    """One entry as an admin sees it: whose, how old, what it would still write."""

    run_id: str
    table: str
    version: int
    owner: str
    owner_alive: bool
    age_seconds: float
    error: str | None
    status: str | None
    totals: dict[str, Any] = field(default_factory=dict)
    notes: int = 0

    @classmethod
    def of(cls, entry: Entry, now: float) -> OutboxItem:
        try:
            state = json.loads(entry.payload)
        except ValueError:
            state = {}
        totals = _totals(state)
        return cls(
            run_id=entry.run_id,
            table=entry.table,
            version=entry.version,
            owner=entry.owner,
            owner_alive=owner_alive(entry.owner),
            age_seconds=max(0.0, now - entry.updated),
            error=entry.error,
            status=state.get("status"),
            totals=totals,
            notes=len(state.get("notes", ())),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "table": self.table,
            "version": self.version,
            "owner": self.owner,
            "owner_alive": self.owner_alive,
            "age_seconds": round(self.age_seconds, 1),
            "error": self.error,
            "status": self.status,
            "totals": self.totals,
            "pending_note_lines": self.notes,
        }


def _totals(state: dict[str, Any]) -> dict[str, Any]:
    """The run's totals as the entry would write them: stored totals (except the keys
    ``set`` made absolute) plus this process's increments."""
    try:
        absolute = set(state.get("set_keys", ()))
        base = {k: v for k, v in state.get("base", {}).items() if k not in absolute}
        values = validate_metrics(base).plus(validate_metrics(state.get("local", {}))).values()
    except (InvalidInputError, AttributeError):
        return {}
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def outbox_status(store: OutboxStore, base_id: str) -> list[OutboxItem]:
    """Every entry of ``base_id`` still waiting for Airtable, oldest change first."""
    now = time.time()
    return [OutboxItem.of(e, now) for e in store.entries(f"{base_id}/")]


def replay_outbox(conn: Connection, *, every_owner: bool = False) -> list[str]:
    """Write what the outbox of ``conn``'s settings holds for its base and no live process
    owns (``every_owner``: every entry, e.g. a host that is gone for good) now: the run IDs
    (client runs, then jobs) replayed.  Raises the refusal if Airtable still refuses (the
    entries stay)."""
    from ..worker.tracker import Tracker

    tracker = Tracker(conn, replay=False)
    try:
        runs = tracker.replay(every_owner=every_owner)
    finally:
        tracker.close()
    return [str(run.run_id) for run in runs] + tracker.replayed_jobs


@dataclass(frozen=True)
class DropPlan:
    """Entries that ``apply_drop`` would discard, at the versions shown."""

    base_id: str
    items: list[OutboxItem]

    def to_json(self) -> dict[str, Any]:
        return {"base_id": self.base_id, "drop": [i.to_json() for i in self.items]}


def plan_drop(store: OutboxStore, base_id: str, run_ids: Iterable[str] | None = None) -> DropPlan:
    """What dropping the entries of ``run_ids`` (every entry of the base when ``None``)
    would discard.  An unknown run ID is refused, naming it."""
    items = outbox_status(store, base_id)
    if run_ids is None:
        return DropPlan(base_id, items)
    wanted = list(dict.fromkeys(run_ids))
    known = {i.run_id for i in items}
    missing = [r for r in wanted if r not in known]
    if missing:
        raise InvalidInputError(f"no outbox entry for run ID(s) {', '.join(map(repr, missing))}")
    return DropPlan(base_id, [i for i in items if i.run_id in wanted])


def apply_drop(store: OutboxStore, plan: DropPlan) -> int:
    """Discard the plan's entries, each only at the planned version: how many went."""
    keys = {entry_key(plan.base_id, i.table, i.run_id): i.version for i in plan.items}
    return store.drop(list(keys), versions=keys)
