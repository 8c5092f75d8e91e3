"""SIGTERM still ends a process whose main thread is blocked in C
(jobtrack_airtable.worker.shutdown).

The library drains pending writes on SIGTERM with a Python handler, which only runs when the
main thread is back in the interpreter.  These tests block the main thread inside SQLite's
busy wait (C code that never looks at signals) and check that the process still drains and
dies of SIGTERM within a few seconds, as ``Pool.terminate()`` and supervisors expect.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

CHILD = textwrap.dedent(
    """
    import sqlite3, sys, time
    from pathlib import Path
    from jobtrack_airtable.worker import shutdown

    marker = Path(sys.argv[2])
    shutdown.install(lambda reason: marker.write_text(reason))
    conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
    print("blocking", flush=True)
    conn.execute("BEGIN IMMEDIATE")  # the parent holds the lock: a 60 s wait in C
    print("not reached", flush=True)
    """
)


def _blocked_child(tmp_path: Path) -> tuple[subprocess.Popen[str], sqlite3.Connection, Path]:
    db = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    marker = tmp_path / "drained"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(marker)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "blocking"
    time.sleep(0.5)  # inside the busy wait by now
    return proc, holder, marker


def test_sigterm_ends_a_process_blocked_in_c_after_draining(tmp_path: Path) -> None:
    proc, holder, marker = _blocked_child(tmp_path)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout=50)
    finally:
        proc.kill()
        holder.close()
    assert status == -signal.SIGTERM  # died of SIGTERM, as without the library
    # Not after the 60 s busy wait: that ends over 59 s after the signal.  The bound is loose
    # because a loaded machine may take many seconds to drain and exit (10 s was luck).
    assert time.monotonic() - sent < 45
    assert marker.read_text() == "SIGTERM"  # and drained first


def test_a_forked_child_gets_sigterm_default_action_back(tmp_path: Path) -> None:
    from jobtrack_airtable.worker import shutdown

    shutdown.install(lambda reason: None)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0 if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 1
        if signal.set_wakeup_fd(-1) != -1:
            code = 2  # the parent's pipe must not receive the child's signals
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
