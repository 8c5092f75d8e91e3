"""Pass 4: per-row fixes on the merged rows, stored values checked, staleness.

* Run ID rewritten to the natural key; ``client_id`` set to the Run ID's client (the Run ID is
  the identity); an Apify run ID from an Apify-tagged Run ID kept in ``apify_run_id`` when that
  is empty; legacy statuses mapped, unmappable ones flagged, not guessed;
* the row as it will be is read by the metrics row readers: invalid stored values and
  scored > examined become attention items;
* a ``Running`` row whose liveness signal is older than the threshold gets its stale reason
  (:func:`~jobtrack_airtable.statuses.staleness`, on the server's clock).
"""

from __future__ import annotations

from dataclasses import replace

from ....errors import show
from ....rows import ClientRunRow, JobRow
from ....schema import TableSpec
from ....statuses import Status, map_status, staleness
from ..model import TABLE_ORDER
from ..state import BASE_LEN, PREFIX_LEN, ClientTotals, Context, Entity, PlanState, is_empty

__all__ = ["client_row", "fix"]


def client_row(entity: Entity) -> ClientRunRow:
    """The client row as it will be, with its final status (for aggregation)."""
    row = ClientRunRow.from_record(entity.record(), entity.layout.spec)
    return row if row.status is entity.status else replace(row, status=entity.status)


def fix(state: PlanState) -> None:
    ctx = state.ctx
    for table in TABLE_ORDER:
        natural = ctx.layouts[table].spec.natural_key
        for entity in state.entities[table]:
            if entity.key is not None:
                entity.set(natural, entity.key)
            if table == "client_runs" and entity.key is not None:
                _client_fields(entity)
            _status(entity)
            _check(state, ctx, entity)


def _client_fields(entity: Entity) -> None:
    client = entity.key[PREFIX_LEN:] if entity.key is not None else ""
    layout = entity.layout
    if layout.has("client_id") and entity.get("client_id") != client:
        old = entity.get("client_id")
        name = layout.spec.name_of("client_id")  # the base's name, in text for humans
        entity.reason(
            f"{name} {show(old)} disagrees with the Run ID's client "
            f"{client!r}: the Run ID is the identity, so {name} is set to it"
            if not is_empty(old)
            else f"{name} is empty: set to the Run ID's client {client!r}"
        )
        entity.set("client_id", client)
    if layout.has("apify_run_id") and is_empty(entity.get("apify_run_id")):
        apify = next((r.apify for r in reversed(entity.members) if r.apify), None)
        if apify:
            entity.set("apify_run_id", apify)
            entity.reason(
                f"Apify run ID {apify!r} from the Apify-tagged Run ID kept in "
                f"{layout.spec.name_of('apify_run_id')}"
            )


def _status(entity: Entity) -> None:
    raw_status = entity.get("status")
    mapping = map_status(raw_status)
    if mapping.status is None:
        if is_empty(raw_status):
            # A run opened without a status (the 1-request open writes none; its first write
            # sets Running): a worker killed before that write leaves it so.  It is a run that
            # never said it ended: live while fresh, failed once stale (see _check).
            entity.status = Status.RUNNING
            return
        else:
            entity.flag(
                f"Status {show(raw_status)} is unmappable ({mapping.reason}); "
                "left unchanged, not guessed"
            )
    elif mapping.is_legacy:
        entity.set("status", mapping.status.value)
        entity.reason(f"legacy status {show(raw_status)} mapped to {mapping.status.value!r}")
    entity.status = mapping.status


def _check(state: PlanState, ctx: Context, entity: Entity) -> None:
    spec = entity.layout.spec
    parsed: ClientRunRow | JobRow
    if entity.table == "client_runs":
        parsed = ClientRunRow.from_record(entity.record(), spec)
        problems = [*parsed.problems, *parsed.metrics.sanity_warnings(spec)]
        if entity.key is not None:
            # Parsed once: the job's aggregate is summed here (liveness groups by this base).
            base = entity.key[:BASE_LEN]
            totals = state.client_totals.get(base)
            if totals is None:
                totals = state.client_totals[base] = ClientTotals()
            totals.add(parsed)
    else:
        parsed = JobRow.from_record(entity.record(), spec)
        state.job_rows[entity.id] = parsed
        problems = list(parsed.problems)
    for problem in problems:
        if problem not in (entity.attention or ()):
            entity.flag(problem)
    if entity.status is Status.RUNNING:
        found = staleness(
            Status.RUNNING,
            last_updated=parsed.last_updated,
            start_time=parsed.start_time,
            created_time=parsed.created_time,
            threshold=ctx.stale_after,
            now=ctx.now,
            labels=_stamp_labels(spec),
        )
        if found is None:
            entity.stale = None
        elif is_empty(entity.get("status")):
            entity.stale = f"Status is empty (the run's first write never came); {found.reason}"
        else:
            entity.stale = found.reason


def _stamp_labels(spec: TableSpec) -> tuple[str, str]:
    """The base's names of the Last Updated and Start Time fields, for reasons' text."""
    defaults = {"last_updated": "Last Updated", "start_time": "Start Time"}
    names = [spec.name_of(k) if spec.has(k) else v for k, v in defaults.items()]
    return names[0], names[1]
