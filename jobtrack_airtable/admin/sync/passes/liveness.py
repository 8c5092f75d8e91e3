"""Pass 5: liveness.  Stale runs are failed, client runs still ``Running`` under a finished job
are failed, and each job row to be created (orphan client rows) gets its status.

* A ``Running`` client row past the threshold → ``Failed``.
* A ``Running`` job past the threshold → ``Failed`` only if none of its client rows is still
  running and fresh (workers update client rows, not necessarily the job row).
* Orphan client rows' job row: ``Running`` if any of them is running and fresh, else the
  completion rule (SPEC §1.4).
* A client row still ``Running`` and fresh under a finished job is left to its worker (an
  orchestrator may complete a job before its last worker closes): it is failed only once it
  goes stale, like any run, and the job's aggregates follow its close on the next sync.  So
  only silence ends a worker's run, and a worker that comes back after the threshold finds
  out on its close (it reads the row first then) instead of overwriting a ``Failed``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ....aggregation import completion_status
from ....statuses import Status
from ..state import BASE_LEN, Context, Entity, PlanState
from .fix import client_row

__all__ = ["fail", "liveness"]


def fail(ctx: Context, entity: Entity, reason: str, note: str) -> None:
    entity.status = Status.FAILED
    entity.set("status", Status.FAILED.value)
    entity.reason(reason)
    ctx.note(entity, note)


def _live(clients: Iterable[Entity]) -> bool:
    return any(c.status is Status.RUNNING and c.stale is None for c in clients)


def liveness(state: PlanState) -> None:
    ctx = state.ctx
    clients_by_base: dict[str, list[Entity]] = defaultdict(list)
    for entity in state.entities["client_runs"]:
        if entity.key is not None:
            clients_by_base[entity.key[:BASE_LEN]].append(entity)

    jobs = {e.key: e for e in state.entities["jobs"] if e.key is not None}
    for entity in state.entities["jobs"]:
        clients = clients_by_base.get(entity.key, []) if entity.key is not None else []
        if entity.stale is not None and not _live(clients):
            fail(ctx, entity, f"{entity.stale}; marked Failed", f"{entity.stale}; marked Failed")

    for entity in state.entities["client_runs"]:
        if entity.stale is not None:
            fail(ctx, entity, f"{entity.stale}; marked Failed", f"{entity.stale}; marked Failed")

    bases: list[tuple[str, list[Entity], Entity | None]] = [
        (base, clients, jobs.get(base)) for base, clients in clients_by_base.items()
    ]
    bases.extend((key, [], entity) for key, entity in jobs.items() if key not in clients_by_base)

    created: dict[str, Status] = {}
    for base, clients, job in bases:
        if job is None:
            created[base] = (
                Status.RUNNING
                if _live(clients)
                else completion_status(client_row(c) for c in clients)
            )

    state.bases = bases
    state.created_status = created
