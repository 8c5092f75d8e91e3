"""Start-up cost of the CLI (issue 14 item 7): ``--help``, ``--version`` and shell completion
import neither pyairtable/requests nor the local server (werkzeug), measured with the
interpreter's own ``-X importtime`` report in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pyairtable", "requests", "werkzeug", "jobtrack_airtable.local.server")


def _imported(tmp_path: Path, *args: str, **env: str) -> tuple[set[str], str]:
    """Modules imported by ``python -X importtime -m jobtrack_airtable.cli ARGS``, and stdout."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "jobtrack_airtable.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "jobtrack_airtable.cli" in modules  # the report is there and parsed
    return modules, result.stdout


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


@pytest.mark.parametrize(
    "args",
    [("--help",), ("--version",), ("sync", "--help"), ("local", "serve", "--help")],
)
def test_help_and_version_import_no_http_or_server_code(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    modules, stdout = _imported(tmp_path, *args)
    assert stdout.strip()
    assert _heavy(modules) == []


def test_shell_completion_is_enabled_and_imports_nothing_heavy(tmp_path: Path) -> None:
    modules, stdout = _imported(
        tmp_path,
        _JOBTRACK_AIRTABLE_COMPLETE="complete_bash",
        COMP_WORDS="jobtrack-airtable ru",
        COMP_CWORD="1",
    )
    assert stdout.split() == ["run", "runs"]
    assert _heavy(modules) == []


def test_a_command_does_import_them_when_it_runs(tmp_path: Path) -> None:
    # The check above would pass vacuously if the report missed imports: a real command
    # (the embedded base over HTTP) must show pyairtable and werkzeug.
    modules, _ = _imported(
        tmp_path,
        "--local",
        str(tmp_path / "b.json"),
        "schema",
        "check",
        "--json",
        XDG_DATA_HOME=str(tmp_path),
    )
    assert {"pyairtable", "werkzeug"} <= {m.split(".")[0] for m in modules}


def test_importing_the_package_loads_no_http_client() -> None:
    heavy = ("pyairtable", "requests", "werkzeug", "typer", "rich")
    code = (
        "import sys, jobtrack_airtable; "
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
