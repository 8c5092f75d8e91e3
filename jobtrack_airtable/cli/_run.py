"""``run``: record any command as a job, for cron and Kubernetes CronJobs, over
:func:`jobtrack_airtable.integrations.record_command`.

Exit code: the command's own (so the scheduler still sees a failure), 1 when the run could
not be recorded.
"""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from ._core import app, errors_to_exit, notice, open_base, state_of


@app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run(
    ctx: typer.Context,
    command: Annotated[
        list[str],
        typer.Argument(help="The command and its arguments, after --.", show_default=False),
    ],
    stream: Annotated[int, typer.Option("--stream", min=1, help="The job's stream.")] = 1,
    note: Annotated[
        str | None, typer.Option("--note", help="A line for the job's System Notes.")
    ] = None,
) -> None:
    """Run a command as a job: its exit code decides the status (0: Completed, or No Leads
    To Score when it recorded no client run; else Failed, with its stderr tail in System
    Notes).  The command gets the job's run ID in JOBTRACK_RUN_ID."""
    from ..integrations import record_command
    from ..worker.tracker import Tracker

    state = state_of(ctx)
    with errors_to_exit(state), open_base(state) as backend:
        tracker = Tracker(backend.conn)
        try:
            result = record_command(tracker, command, stream=stream, note=note)
        finally:
            tracker.close()
        notice(
            f"Recorded {shlex.join(command)!r} as job {result.run_id} ({result.status}, exit "
            f"{result.exit_code}, {result.seconds:.1f} s)."
        )
    raise typer.Exit(result.exit_code)
