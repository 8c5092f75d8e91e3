"""Ctrl-C during a write: finish the batch in flight, send no other, say what was written and
the command that finishes the job (like Terraform's interrupt handling).

``with Interruptible(total, finish) as stop:`` installs the handler; the write's progress
callback calls :meth:`Interruptible.written` after each batch, which raises once Ctrl-C was
pressed; the block ends with the report and exit 130.  A second Ctrl-C stops at once.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from types import FrameType, TracebackType

import typer

from ._core import EXIT_INTERRUPTED, State

__all__ = ["Interruptible", "finish_command"]


class _Stop(Exception):
    """Raised between two batches once Ctrl-C was pressed."""


class Interruptible:
    """A write of ``total`` rows that Ctrl-C stops between two batches; ``finish`` is the
    command line that completes it."""

    def __init__(self, total: int, finish: str) -> None:
        self.total = total
        self.finish = finish
        self.done = 0
        self.asked = False
        self._previous: object = None

    def written(self, rows: int) -> None:
        """Count a batch that was written; stop here if Ctrl-C was pressed."""
        self.done += rows
        self.check()

    def check(self) -> None:
        """Stop here if Ctrl-C was pressed (between two batches, or before the first)."""
        if self.asked:
            raise _Stop

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        sys.stderr.write(
            "\nInterrupted: finishing the batch in flight (Ctrl-C again to stop now)\n"
        )

    def __enter__(self) -> Interruptible:
        # Signal handlers belong to the main thread (an in-process caller elsewhere keeps its own).
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
        if exc_type is None or not issubclass(exc_type, _Stop | KeyboardInterrupt):
            return
        sys.stderr.write(
            f"Interrupted: {self.done} of {self.total} row(s) written, "
            f"{self.total - self.done} not written. Every write is idempotent: finish the job "
            f"with `{self.finish}`.\n"
        )
        raise typer.Exit(EXIT_INTERRUPTED)


def finish_command(state: State, *args: str) -> str:
    """``jobtrack-airtable`` with the global options that chose the base, then ``args``."""
    words = ["jobtrack-airtable"]
    if state.local is not None:
        words += ["--local", str(state.local)]
    if state.demo:
        words.append("--demo")
    if state.env_file is not None:
        words += ["--env-file", str(state.env_file)]
    return shlex.join([*words, *args])
