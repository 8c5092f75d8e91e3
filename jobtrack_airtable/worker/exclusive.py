"""Completing an *exclusive* job without reading its client rows back.

A job's aggregates come from its client rows.  Reading them back costs ⌈N/100⌉ requests
(50 for a 5,000-client job), and it is what keeps a job right when other writers touch its
rows: by design a job's Run ID is handed to other workers, who open client runs of it
(``Tracker.client(job_run_id, …)``), and ``sync`` or a forced reopen may change a row.  A
process can never see from its own writes that nobody else added a row, so the read-back is
skipped only on the caller's word: ``tracker.job(exclusive=True)`` promises that every
client run of the job is opened through that :class:`Job` object, in this process.

Even then, the rows Airtable acknowledged are used only when they are the whole truth as
this process knows it: every run was opened as a new row, its last write (the close) was
acknowledged with a terminal status, nothing of it is pending, refused or waiting out a
settle window, and the outbox holds no entry of the job's client rows.  Otherwise the
completion reads the rows back as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..outbox import OutboxStore
from ..outbox.store import entry_key
from ..rows import ClientRunRow

if TYPE_CHECKING:
    from .client_run import ClientRun

__all__ = ["acknowledged_rows"]


def acknowledged_rows(
    runs: Iterable[ClientRun], outbox: OutboxStore, base_id: str, job_run_id: str
) -> list[ClientRunRow] | None:
    """The job's client rows as Airtable acknowledged them to this process, or ``None``
    when that is not known to be all of it (the caller reads them back)."""
    rows: list[ClientRunRow] = []
    for run in runs:
        with run._lock:
            row = run._row
            if (
                row is None
                or row.status is None
                or not row.status.is_terminal
                or run.dirty()
                or run.refusal is not None
                or run.refusal_pending() is not None
                or run._settle_until
            ):
                return None
        rows.append(row)
    if outbox.entries(entry_key(base_id, "client_runs", f"{job_run_id}-")):
        return None
    return rows
