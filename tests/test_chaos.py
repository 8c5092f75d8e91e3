"""``benchmarks/chaos.py --quick`` as a (slow) test: issue 10's guarantees under real
concurrency, SIGKILLs, admin races, clock skew and load, judged by the script's own checks.

The quick run takes about a minute and saturates the CPUs for part of it, so it is marked
``slow`` (run with ``pytest -m slow tests/test_chaos.py``).  It runs the script as a user
does, in a subprocess, and asserts on its summary line, which must parse and report every
scenario held.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._chaos_checks import Outcome, parse_summary, summary_line
from benchmarks.chaos import SCENARIOS

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
