"""Detection: from the two tables as read to a :class:`~.model.Plan`.  Pure: no I/O.

The plan is computed *as a whole*, in passes over the rows as they will be after the earlier
fixes, so that one apply converges and planning again plans nothing.  Each pass is a function
over one typed :class:`~.state.PlanState`, one module each under :mod:`.passes` (ingest,
identify, merge, fix, liveness, aggregates, diff; see there for what each does).

Two ways in:

* :func:`build_plan` -- every record at once (tests, tools);
* :class:`StreamingPlanner` -- records page by page as they are read (:func:`.apply.plan_sync`):
  each page becomes compact rows at once and its raw dicts are dropped, so the per-row work
  runs while the next pages are read and memory holds one small object per row; the other
  passes run in :meth:`StreamingPlanner.finish`.

Notes sync writes are appended to ``System Notes`` as ``[<now>] sync: <why>`` lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ...schema import Schema
from .model import Plan, TableKey
from .passes.aggregates import aggregates
from .passes.diff import diff, to_plan
from .passes.fix import fix
from .passes.identify import identify
from .passes.ingest import ingest
from .passes.liveness import liveness
from .passes.merge import merge
from .state import Context, PlanState, layouts_of

__all__ = ["StreamingPlanner", "build_plan"]


class StreamingPlanner:
    """Plan over records fed in pages: :meth:`add` each page as it arrives, then
    :meth:`finish` with the time to judge liveness by (taken after the reads).

    >>> planner = StreamingPlanner(load_schema())                 # doctest: +SKIP
    >>> for page in pages: planner.add("client_runs", page)       # doctest: +SKIP
    >>> plan = planner.finish(now=now, stale_after=stale_after, base_id=base_id)  # doctest: +SKIP
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.state = PlanState(layouts_of(schema))

    def add(self, table: TableKey, records: Iterable[Mapping[str, Any]]) -> None:
        """Ingest one page (or any number of records) of ``table``."""
        ingest(self.state, table, records)

    def reset(self, table: TableKey) -> None:
        """Forget what was ingested of ``table`` (its listing restarts from the top)."""
        self.state.rows[table] = []

    def finish(self, *, now: datetime, stale_after: timedelta, base_id: str) -> Plan:
        """Run the remaining passes and return the plan."""
        state = self.state
        state.begin_passes(Context.of(self.schema, now, stale_after, base_id))
        for run in (identify, merge, fix, liveness, aggregates, diff):
            run(state)
        return to_plan(state)


def build_plan(
    jobs_records: Iterable[Mapping[str, Any]],
    client_records: Iterable[Mapping[str, Any]],
    *,
    schema: Schema,
    now: datetime,
    stale_after: timedelta,
    base_id: str,
) -> Plan:
    """Plan every fix for the two tables as read (raw pyairtable records), without I/O.

    ``now`` (timezone-aware) dates the plan and its notes and ages ``Running`` rows against
    ``stale_after``.  Time and memory are linear in the number of rows.

    >>> from datetime import UTC, datetime, timedelta
    >>> from jobtrack_airtable.schema import load_schema
    >>> jobs = [{"id": "recJOB00000000001", "createdTime": "2025-09-30T14:15:22.000Z",
    ...          "fields": {"Run ID": "250930-141522.0", "Status": "Success"}}]
    >>> plan = build_plan(jobs, [], schema=load_schema(),
    ...                   now=datetime(2025, 10, 1, tzinfo=UTC), stale_after=timedelta(hours=2),
    ...                   base_id="appAAAAAAAAAAAAAA")
    >>> [(c.field, c.old, c.new) for c in plan.records[0].changes][:2]
    [('run_id', '250930-141522.0', '250930-141522'), ('status', 'Success', 'Completed')]
    >>> plan.summary.update
    1
    """
    # Checked before any row is looked at, so bad arguments fail the same way every time.
    Context.of(schema, now, stale_after, base_id)
    planner = StreamingPlanner(schema)
    planner.add("jobs", jobs_records)
    planner.add("client_runs", client_records)
    return planner.finish(now=now, stale_after=stale_after, base_id=base_id)
