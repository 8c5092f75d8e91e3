"""Pass 6: job aggregates, and job rows for orphan client rows.

The aggregates of every **finished** job are recomputed from its client rows as they will be
(converted IDs, merged duplicates, fixed statuses) and written where missing or different; a
``Running`` job's aggregates are its worker's to write.  Start/End Time are filled only where
empty: they record when the job ran and are never rewritten.  Client rows whose base has no
job row get one: status from :mod:`.liveness`, start = earliest client start, end = latest
client end (finished jobs only), the aggregates, and a note.  Every written aggregate is
guarded: its client rows are fingerprinted and the job's prefix watched for new rows.
"""

from __future__ import annotations

from typing import Any

from ....aggregation import JobAggregate, aggregate
from ....metrics import AGGREGATE_KEYS
from ....rows import JobRow
from ....statuses import Status
from ....timeutil import to_airtable
from ..model import Action, FieldChange, RecordChange
from ..state import Entity, PlanState, is_empty

__all__ = ["aggregates"]


def aggregates(state: PlanState) -> None:
    layout = state.ctx.layouts["jobs"]
    agg_keys = [k for k in AGGREGATE_KEYS if layout.has(k)]
    for base, clients, job in state.bases:
        agg = state.client_totals[base].aggregate(clients) if clients else aggregate(())
        if job is None:
            _create_job(state, base, clients, agg)
            continue
        if job.status is None or not job.status.is_terminal:
            continue
        counts = agg.counts()
        stored: JobRow = state.job_rows[job.id]
        missing: list[str] = []
        wrong: list[str] = []
        for key in agg_keys:
            if stored.aggregates.get(key) == counts[key]:
                continue
            name = layout.spec.name_of(key)
            (missing if is_empty(job.get(key)) else wrong).append(name)
            job.set(key, counts[key])
        # Invalid stored aggregates are rewritten here, so they need no human.
        names = [layout.spec.name_of(k) for k in agg_keys]
        job.attention = [
            a
            for a in job.attention or ()
            if not any(a.startswith(f"field {n!r} holds") for n in names)
        ] or None
        times = []
        if layout.has("start_time") and is_empty(job.get("start_time")) and agg.start_time:
            job.set("start_time", to_airtable(agg.start_time))
            times.append(layout.spec.name_of("start_time"))
        if layout.has("end_time") and is_empty(job.get("end_time")) and agg.end_time:
            job.set("end_time", to_airtable(agg.end_time))
            times.append(layout.spec.name_of("end_time"))
        n = len(clients)
        if missing:
            job.reason(f"aggregates missing: {', '.join(missing)}; computed from {n} client row(s)")
        if wrong:
            job.reason(
                f"aggregates disagree with the {n} client row(s): {', '.join(wrong)}; recomputed"
            )
        if times:
            job.reason(
                f"{' and '.join(times)} empty: taken from the client rows "
                "(earliest start, latest end)"
            )
        if missing or wrong or times:
            _guard_inputs(state, base, clients)


def _guard_inputs(state: PlanState, base: str, clients: list[Entity]) -> None:
    """A written aggregate is only right while its client rows are as read: fingerprint
    them, and every row under the job's prefix, and watch the prefix for new rows."""
    prefix = f"{base}-"
    state.guard_prefixes.add(prefix)
    for client in clients:
        for row in client.members:
            state.fingerprint(row)


def _create_job(state: PlanState, base: str, clients: list[Entity], agg: JobAggregate) -> None:
    ctx = state.ctx
    layout = ctx.layouts["jobs"]
    status = state.created_status[base]
    values: dict[str, Any] = {layout.spec.natural_key: base, "status": status.value}
    values.update({k: v for k, v in agg.counts().items() if layout.has(k)})
    if layout.has("start_time") and agg.start_time:
        values["start_time"] = to_airtable(agg.start_time)
    if layout.has("end_time") and agg.end_time and status.is_terminal:
        values["end_time"] = to_airtable(agg.end_time)
    if layout.has("system_notes"):
        values["system_notes"] = (
            f"[{ctx.stamp}] sync: job row created from {len(clients)} client run row(s) "
            "that had none"
        )
    changes = [
        FieldChange(field=key, old=None, new=values[key]) for key in layout.keys if key in values
    ]
    why = (
        "Running: a client run is still running"
        if status is Status.RUNNING
        else f"{status.value} by the completion rule"
    )
    state.records.append(
        RecordChange(
            table="jobs",
            action=Action.CREATE,
            key=base,
            changes=changes,
            reasons=[
                f"{len(clients)} client run row(s) have no job row {base!r}: created from "
                f"them ({why}; start = earliest client start, end = latest client end)"
            ],
        )
    )
    state.guard_keys["jobs"].add(base)
    _guard_inputs(state, base, clients)
