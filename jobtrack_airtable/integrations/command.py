"""Any command recorded as a job: for cron and Kubernetes CronJobs (``jobtrack-airtable run
--stream N -- CMD …``).

The command runs with its output passed through; its exit status decides the job's status
(0: the SPEC's rule on its client rows, which ends ``No Leads To Score`` when it recorded
none; anything else: ``Failed``).  The job's run ID is in the command's environment
(``JOBTRACK_RUN_ID``), so a command using the library opens its client runs with
``tracker.client(os.environ["JOBTRACK_RUN_ID"], cid)``.  On failure the last lines of its
standard error go to System Notes.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

from ..errors import InvalidInputError, show
from ..rows import JobRow
from ..statuses import Status
from ..worker.tracker import Tracker

__all__ = ["STDERR_TAIL_LINES", "CommandResult", "record_command"]

#: Lines of a failed command's standard error kept in System Notes.
STDERR_TAIL_LINES = 20
#: Characters of that tail at most (System Notes is shared with every other line).
STDERR_TAIL_CHARS = 4000


class CommandResult:
    """What :func:`record_command` did: the command's exit code, the job's run ID and the job
    row written (``None`` when the base failed and ``JOBTRACK_ON_TRACKING_ERROR=warn``)."""

    def __init__(self, exit_code: int, run_id: str, row: JobRow | None, seconds: float) -> None:
        self.exit_code = exit_code
        self.run_id = run_id
        self.row = row
        self.seconds = seconds

    @property
    def status(self) -> str:
        """The job's status as written, or ``"not recorded"``."""
        return self.row.status.value if self.row and self.row.status else "not recorded"

    def __repr__(self) -> str:
        return (
            f"CommandResult(exit_code={self.exit_code}, run_id={self.run_id!r}, "
            f"status={self.status!r})"
        )


def _tee(source: IO[bytes], sink: IO[bytes], tail: collections.deque[bytes]) -> None:
    for line in iter(source.readline, b""):
        sink.write(line)
        sink.flush()
        tail.append(line)


def record_command(
    tracker: Tracker, argv: Sequence[str], *, stream: int = 1, note: str | None = None
) -> CommandResult:
    """Run ``argv`` as a job of ``stream``: start the job (2 requests), run the command
    (output passed through), complete or fail the job (⌈N/100⌉ + 2 requests)."""
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidInputError(
            f"the command must be a non-empty list of strings, got {show(argv)}"
        )
    job = tracker.job(stream=stream, note=note)
    started = time.monotonic()
    tail: collections.deque[bytes] = collections.deque(maxlen=STDERR_TAIL_LINES)
    try:
        proc = subprocess.Popen(
            list(argv),
            stderr=subprocess.PIPE,
            env={**os.environ, "JOBTRACK_RUN_ID": str(job.run_id)},
        )
    except OSError as exc:
        row = job.fail(f"could not run {argv[0]!r}: {exc}")
        return CommandResult(127, str(job.run_id), row, time.monotonic() - started)
    assert proc.stderr is not None
    # Standard error still reaches the terminal (or the CronJob's log), line by line.
    copier = threading.Thread(target=_tee, args=(proc.stderr, sys.stderr.buffer, tail), daemon=True)
    copier.start()
    try:
        code = proc.wait()
    except BaseException as exc:  # Ctrl-C, SIGTERM turned into an exception: the job fails
        proc.kill()
        proc.wait()
        job.fail(exc)
        raise
    copier.join()
    seconds = time.monotonic() - started
    if code == 0:
        row = job.complete(note=f"command {argv[0]!r} exited 0 after {seconds:.1f} s")
        return CommandResult(code, str(job.run_id), row, seconds)
    text = b"".join(tail).decode("utf-8", "replace")[-STDERR_TAIL_CHARS:].rstrip()
    reason = f"command {argv[0]!r} exited {code} after {seconds:.1f} s"
    row = job.complete(Status.FAILED, note=f"{reason}; stderr tail:\n{text}" if text else reason)
    return CommandResult(code, str(job.run_id), row, seconds)
