"""The installed console script end to end, in real subprocesses (a few, they cost ~1 s each).

The in-process CliRunner tests (test_cli.py) cover the behaviour in depth; these check what only
a real process shows: the entry point, exit codes as the shell sees them, the embedded server
shut down cleanly, stderr free of tracebacks, ``local serve``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from jobtrack_airtable.cli.embedded import seed_store
from jobtrack_airtable.timeutil import utcnow

from .conftest import MakeLocalAirtable

# Real subprocesses of the installed CLI: the slow suite (the same behaviour is covered
# in-process by test_cli.py in the default run).
pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).parent / "jobtrack-airtable"
FAKE_TOKEN = "patSUBPROCESSfake.fedcba9876543210TOKEN"
SUMMARY_RE = re.compile(
    r"^Plan: \d+ to create, \d+ to update, \d+ to delete, \d+ need attention\.$"
)


def _command() -> list[str]:
    if SCRIPT.exists():
        return [str(SCRIPT)]
    return [sys.executable, "-m", "jobtrack_airtable.cli"]  # pragma: no cover


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "JOBTRACK_"))}
    # Keep the per-user data directory inside the test's tmp dir.
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def _run(
    tmp_path: Path, *args: str, module: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "jobtrack_airtable.cli"] if module else _command()
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def test_sync_plan_apply_converge(base: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    first = _run(tmp_path, "--local", str(base), "sync", "--out", str(plan))
    assert first.returncode == 2, first.stderr
    assert SUMMARY_RE.match(first.stdout.strip().splitlines()[-1])
    assert "Traceback" not in first.stderr

    applied = _run(tmp_path, "--local", str(base), "apply", str(plan))
    assert applied.returncode == 0, applied.stderr
    again = _run(tmp_path, "--local", str(base), "sync", "--json", module=True)
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["format_version"] == 2
    assert doc["summary"]["create"] == doc["summary"]["update"] == doc["summary"]["delete"] == 0


def test_first_run_uses_the_per_user_embedded_base(tmp_path: Path) -> None:
    result = _run(tmp_path, "sync")
    assert result.returncode == 2, result.stderr
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith("Using the embedded local base at ")
    assert first_line.endswith(
        "local-base.sqlite, seeded with the demo dataset"
        " (no AIRTABLE_API_KEY/AIRTABLE_BASE_ID set)."
    )
    assert list((tmp_path / "xdg").rglob("local-base.sqlite"))


def test_errors_one_line_or_traceback_with_debug(base: Path, tmp_path: Path) -> None:
    plain = _run(tmp_path, "--local", str(base), "runs", "show", "200101-000000")
    assert plain.returncode == 1
    lines = [x for x in plain.stderr.splitlines() if not x.startswith("Using the ")]
    assert lines == ["error: no run '200101-000000' in 'Job Tracking' or 'Client Run Results'"]
    debug = _run(tmp_path, "--debug", "--local", str(base), "runs", "show", "200101-000000")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr


def test_runs_list_json(base: Path, tmp_path: Path) -> None:
    result = _run(tmp_path, "--local", str(base), "runs", "list", "--limit", "3", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["count"] == 3


def test_token_never_printed_against_an_endpoint(
    make_local_airtable: MakeLocalAirtable, tmp_path: Path
) -> None:
    srv = make_local_airtable(token=FAKE_TOKEN)
    seed_store(srv.store, srv.base_id, srv.schema, now=utcnow())
    env = {
        "AIRTABLE_API_KEY": FAKE_TOKEN,
        "AIRTABLE_BASE_ID": srv.base_id,
        "JOBTRACK_ENDPOINT_URL": srv.url,
        "JOBTRACK_RATE_LIMIT": "0",
    }
    outputs = []
    for args in (("sync", "--json"), ("--debug", "runs", "show", "200101-000000")):
        result = _run(tmp_path, *args, **env)
        assert result.returncode in (1, 2), result.stderr
        outputs.append(result.stdout + result.stderr)
    wrong = _run(tmp_path, "--debug", "sync", **{**env, "AIRTABLE_API_KEY": FAKE_TOKEN + "x"})
    assert wrong.returncode == 1
    outputs.append(wrong.stdout + wrong.stderr)
    for text in outputs:
        assert FAKE_TOKEN not in text and FAKE_TOKEN[:20] not in text and "***" not in text


def start_serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``local serve --port 0 ARGS`` as a real process, and the URL its first line names."""
    proc = subprocess.Popen(
        [*_command(), "local", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
    assert match, line
    assert FAKE_TOKEN not in line
    return proc, match.group(1)


def test_local_serve(tmp_path: Path) -> None:
    data = tmp_path / "served.json"
    proc, url = start_serve(
        tmp_path, "--token", FAKE_TOKEN, "--data", str(data), "--rate-limit", "off"
    )
    try:
        response = requests.get(
            f"{url}/v0/meta/bases/appJobtrackLocal1/tables",
            headers={"Authorization": f"Bearer {FAKE_TOKEN}"},
            timeout=5,
        )
        assert response.status_code == 200
        assert {t["name"] for t in response.json()["tables"]} == {
            "Job Tracking",
            "Client Run Results",
        }
        assert (
            requests.get(f"{url}/v0/meta/bases/appJobtrackLocal1/tables", timeout=5).status_code
            == 401
        )
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Local Airtable stopped." in out
    assert data.exists()


def test_local_serve_usage_errors_are_the_clis_own(tmp_path: Path) -> None:
    result = _run(tmp_path, "local", "serve", "--port", "99999", "--token", FAKE_TOKEN)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: invalid value for --port: '99999' must be at most 65535 "
        "(see `jobtrack-airtable local serve --help`)"
    ]
    assert result.stdout == ""
    assert FAKE_TOKEN not in result.stderr
