"""``benchmarks/chaos.py``: its checks (fast, default run) and its ``--quick`` run (slow).

The quick run -- issue 10's guarantees under real concurrency, SIGKILLs, admin races, clock
skew and load -- takes about a minute and saturates the CPUs for part of it, so it is marked
``slow`` (``pytest -m slow tests/test_chaos.py``).  It runs the script as a user does, in a
subprocess, and asserts on its summary line, which must parse and report every scenario held.
The fast tests pin what the verdicts rest on: the summary line, the invariants read from a
real local server's storage, and the SIGKILL scenario's bound on lost metrics.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks._chaos_checks import (
    CRR,
    JOBS,
    LoggedRun,
    Outcome,
    check_invariants,
    check_logged_run,
    parse_summary,
    summary_line,
)
from benchmarks.chaos import SCENARIOS
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.transport.codec import codec_for

ROOT = Path(__file__).resolve().parents[1]


def test_summary_line_round_trips() -> None:
    held, broke = Outcome(1, "a"), Outcome(2, "b")
    broke.add(duplicates=3, errors_422=1)
    assert held.held and not broke.held
    line = summary_line([held, broke])
    assert line == (
        "scenarios=2 held=1 broke=1 lost=0 duplicates=3 stuck_running=0 wrong_aggregates=0 429s=0"
    )
    assert parse_summary(f"noise\n{line}\n") == {
        "scenarios": 2,
        "held": 1,
        "broke": 1,
        "lost": 0,
        "duplicates": 3,
        "stuck_running": 0,
        "wrong_aggregates": 0,
        "rate_limited": 0,
    }


def _crr(run_id: str, status: str, examined: int) -> dict[str, object]:
    return codec_for(CRR).names(
        {
            "run_id": run_id,
            "client_id": run_id[14:],
            "status": status,
            "profiles_examined": examined,
        }
    )


def test_invariants_are_read_from_the_servers_storage(local_airtable: LocalAirtable) -> None:
    store = local_airtable.store
    good = codec_for(JOBS).names(
        {
            "run_id": "261130-100000",
            "status": "Completed",
            "clients_processed": 2,
            "clients_with_errors": 1,
            "profiles_examined": 7,
        }
    )
    wrong = codec_for(JOBS).names(
        {"run_id": "261130-110000", "status": "Failed", "clients_processed": 5}
    )
    running = codec_for(JOBS).names({"run_id": "261130-120000", "status": "Running"})
    store.create_records(None, JOBS.name, [good, wrong, running, running], limit=None)
    store.create_records(
        None,
        CRR.name,
        [
            _crr("261130-100000-Ann", "Completed", 3),
            _crr("261130-100000-Bob", "Failed", 4),
            _crr("261130-110000-Ann", "Completed", 0),
            _crr("261130-130000-Ann", "Completed", 1),  # no job row
        ],
        limit=None,
    )
    inv = check_invariants(local_airtable)
    assert inv.duplicates == 1  # the second 261130-120000
    assert inv.stuck_running == 2  # both 261130-120000 rows
    # 261130-110000: clients_processed 5 != 1; 261130-130000: no job row.  The good job and
    # the Running one (no aggregates expected yet) count nothing.
    assert inv.wrong_aggregates == 2, inv.details


def test_a_killed_run_must_hold_what_was_due_to_be_written() -> None:
    adds = [(float(t), {"profiles_examined": 10 * t}) for t in range(1, 10)]
    killed = LoggedRun(opened=0.0, adds=adds)

    def row(examined: int) -> dict[str, object]:
        return {"fields": {CRR.name_of("profiles_examined"): examined}}

    def check(run: LoggedRun, stored: dict[str, object] | None, killed_at: float | None) -> Any:
        return check_logged_run("r", run, stored, killed_at, interval=1.0, slack=2.0)

    # Killed at t=10, interval 1 s + slack 2 s: everything logged by t=7 was due.
    assert check(killed, row(70), 10.0) == ([], True)
    assert check(killed, row(90), 10.0) == ([], True)
    assert check(killed, row(60), 10.0) == (
        ["r: profiles_examined 60 < 70 (lost beyond the flush interval)"],
        True,
    )
    assert check(killed, row(91), 10.0)[0] == ["r: profiles_examined 91 > 90 (counted twice)"]
    assert check(killed, None, 10.0)[0] == ["r: row missing"]
    # Opened 2.5 s before the kill: neither its row nor its totals were due yet.
    young = LoggedRun(opened=7.5, adds=[(8.0, {"profiles_examined": 1})])
    assert check(young, None, 10.0) == ([], False)
    assert check(young, row(0), 10.0) == ([], False)
    # Closed 0.5 s before the kill: only what was logged by t=7 was due; closed by t=7: all.
    late = LoggedRun(0.0, adds, closed={"profiles_examined": 90}, closed_at=9.5)
    assert check(late, row(70), 10.0) == ([], True)
    early = LoggedRun(0.0, adds, closed={"profiles_examined": 90}, closed_at=6.0)
    assert check(early, row(80), 10.0)[0] == [
        "r: profiles_examined 80 < 90 (lost beyond the flush interval)"
    ]
    # A worker that ran to the end owes exactly its closing totals.
    assert check(early, row(90), None) == ([], False)
    assert check(early, row(80), None)[0] != []
    assert check(early, None, None)[0] == ["r: row missing"]
    assert check(killed, row(90), None)[0] == ["r: left open by a worker that was not killed"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_chaos_run_holds() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--quick", "--seed", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = proc.stdout + proc.stderr
    summary = parse_summary(proc.stdout)
    assert summary["scenarios"] == len(SCENARIOS), output
    assert summary["broke"] == 0, output
    assert summary["held"] == len(SCENARIOS), output
    assert proc.returncode == 0, output
