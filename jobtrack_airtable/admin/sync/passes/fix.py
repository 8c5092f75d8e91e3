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
from datetime import datetime
from typing import Any

from ....errors import show
from ....metrics import (
    COST_KEYS,
    COUNT_KEYS,
    JOB_SUM_KEYS,
    MAX_COUNT,
    TIME_KEYS,
    sanity_warnings,
)
from ....rows import ClientRunRow, JobRow
from ....schema import TableSpec
from ....statuses import Status, map_status, staleness, verdict_until
from ..model import TABLE_ORDER
from ..state import (
    BASE_LEN,
    PREFIX_LEN,
    ClientTimes,
    ClientTotals,
    Context,
    Entity,
    PlanState,
    is_empty,
    moment,
    pack,
    unpack,
)

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
    parsed: ClientRunRow | JobRow | ClientTimes
    if entity.table == "client_runs":
        quick = _quick_client(entity)
        counts: list[int] | None = None
        if quick is None:
            parsed = ClientRunRow.from_record(entity.record(), spec)
            problems = [*parsed.problems, *parsed.metrics.sanity_warnings(spec)]
        else:
            problems, counts, parsed = quick
        if entity.key is not None:
            # Parsed once: the job's aggregate is summed here (liveness groups by this base).
            base = entity.key[:BASE_LEN]
            totals = state.client_totals.get(base)
            if totals is None:
                totals = state.client_totals[base] = ClientTotals()
            if counts is None:
                assert isinstance(parsed, ClientRunRow)
                totals.add(parsed)
            else:
                totals.add_parts(counts, parsed)
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
        # What time does to this verdict, for incremental planning (see .groups).
        state.timed[entity.id] = verdict_until(
            last_updated=parsed.last_updated,
            start_time=parsed.start_time,
            created_time=parsed.created_time,
            threshold=ctx.stale_after,
            now=ctx.now,
        )
        if found is None:
            entity.stale = None
        elif is_empty(entity.get("status")):
            entity.stale = f"Status is empty (the run's first write never came); {found.reason}"
        else:
            entity.stale = found.reason


_TEXT_KEYS = frozenset(
    {"run_id", "client_id", "client_name", "status", "system_notes", "error_details"}
    | {"apify_run_id"}
)
_TIME_KEYS = frozenset(TIME_KEYS)
_COUNT_KEYS = frozenset(COUNT_KEYS)
_COST_KEYS = frozenset(COST_KEYS)
#: Costs up to this are valid whatever their float's decimal digits (MAX_COST is ~9e13).
_QUICK_COST_LIMIT = 10**12


def _quick_client(entity: Entity) -> tuple[list[str], list[int], ClientTimes] | None:
    """What :meth:`ClientRunRow.from_record` and the sanity checks find in a client row as
    it will be -- its problems, its counts towards the job's sums, its times -- for the
    common row where every value has the type and range the parse accepts without a word;
    ``None`` for any other row (the full parse then says what is wrong).  Building a record
    and a pydantic model per row was the planner's largest cost."""
    created_at = entity.survivor.created_at
    if type(created_at) is int:
        created = moment(created_at)
    elif created_at == "":
        created = None
    else:
        return None
    layout, changed, packed = entity.layout, entity.changed, entity.packed
    times = layout.times
    metrics: dict[str, Any] = {}
    stamps: dict[str, datetime] = {}
    for i, key in enumerate(layout.keys):
        held = changed is None or key not in changed
        value = packed[i] if held else changed[key]  # type: ignore[index]
        if value is None:
            continue
        if key in _TIME_KEYS:
            if not (held and i in times) and type(value) is str:
                value = pack(value)
            elif not (held and i in times):
                return None
            if type(value) is not int:
                return None
            stamps[key] = moment(value)
            continue
        if held and i in times:
            value = unpack(value)
            if value is None:
                continue
        if key in _TEXT_KEYS:
            if not isinstance(value, str):
                return None
        elif key in _COUNT_KEYS:
            if type(value) is not int or not 0 <= value <= MAX_COUNT:
                return None
            metrics[key] = value
        elif key in _COST_KEYS and (
            type(value) not in (int, float) or not 0 <= value <= _QUICK_COST_LIMIT
        ):
            return None
    counts = [metrics.get(key) or 0 for key in JOB_SUM_KEYS]
    parsed = ClientTimes(
        created, stamps.get("start_time"), stamps.get("end_time"), stamps.get("last_updated")
    )
    return sanity_warnings(metrics, layout.spec), counts, parsed


def _stamp_labels(spec: TableSpec) -> tuple[str, str]:
    """The base's names of the Last Updated and Start Time fields, for reasons' text."""
    defaults = {"last_updated": "Last Updated", "start_time": "Start Time"}
    names = [spec.name_of(k) if spec.has(k) else v for k, v in defaults.items()]
    return names[0], names[1]
