"""A job row's changes after its start, in the outbox (issue 19).

The start itself cannot be queued: claiming a Run ID needs the server's answer (the oldest
row wins).  Everything after it -- note lines, heartbeats, the terminal status -- is stored as
one entry per job (``base/jobs/run ID``) before the call returns, and leaves only once
Airtable acknowledged it.  The entry holds the *intent*, never numbers: a completion
replayed by another process recomputes the aggregates from the client rows at replay time,
after the client-run entries it holds are written.

>>> state = JobState(run_id="250930-141522", stream=1, record_id="recA", notes=["[..] hi"])
>>> JobState.loads(state.dumps()) == state
True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["JOBS_TABLE", "FinalIntent", "JobState"]

#: The table part of a job entry's key (client runs use ``client_runs``).
JOBS_TABLE = "jobs"


@dataclass(frozen=True)
class FinalIntent:
    """How the job was asked to end: ``status`` ``None`` lets the SPEC's rule decide from
    the client rows at the time the write is made."""

    status: str | None
    force: bool = False
    note: str | None = None
    fit: bool = False
    error: str | None = None


@dataclass(frozen=True)
class JobState:
    """What a job entry holds: the row, the note lines not yet on Airtable, whether a
    heartbeat is pending, and the final intent if the job was asked to end."""

    run_id: str
    stream: int
    record_id: str | None
    notes: list[str] = field(default_factory=list)
    heartbeat: bool = False
    final: FinalIntent | None = None
    claim: str | None = None

    @property
    def status(self) -> str:
        """For ``outbox status``: the status the entry will write."""
        if self.final is None:
            return "Running"
        return self.final.status or "(by the client rows)"

    def dumps(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["status"] = self.status
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def loads(cls, payload: str) -> JobState:
        d = json.loads(payload)
        final = d.get("final")
        return cls(
            run_id=str(d["run_id"]),
            stream=int(d["stream"]),
            record_id=d.get("record_id"),
            notes=[str(line) for line in d.get("notes", ())],
            heartbeat=bool(d.get("heartbeat")),
            final=FinalIntent(**final) if final else None,
            claim=d.get("claim"),
        )
