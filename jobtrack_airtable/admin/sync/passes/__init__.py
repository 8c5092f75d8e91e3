"""The detection passes, one module each, in the order :func:`~..detect.build_plan` runs them.

Each is a function over the one typed :class:`~..state.PlanState` that adds its own product to
it, consulting only what earlier passes produced and the read-only
:class:`~..state.Context`; none does I/O.

1. :mod:`.ingest` -- records → compact rows; standard run IDs recognised on arrival, so this
   work is done while the next pages are read;
2. :mod:`.identify` -- the remaining (legacy) run IDs, with the client IDs known from the data;
3. :mod:`.merge` -- rows sharing a natural key merged into the oldest;
4. :mod:`.fix` -- per-row fixes (Run ID, Client ID, Apify run ID, statuses), stored values
   checked, staleness;
5. :mod:`.liveness` -- stale runs failed, client runs still Running under a finished job
   failed, the status of job rows to create;
6. :mod:`.aggregates` -- job aggregates recomputed, job rows created for orphan client rows;
7. :mod:`.diff` -- entities → the plan's entries and guards.
"""
