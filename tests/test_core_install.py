"""The core install is what a worker needs, and nothing of the CLI, the server or the ops tools.

The package's wheel is built and installed without extras into a fresh virtual environment
(its dependencies from the package index or pip's cache); a worker in that environment then
records a job against a local server started here, from the full test environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from jobtrack_airtable.testing import TrackingServer

# Builds a wheel and a virtual environment: tens of seconds.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

#: Distributions only the extras bring (cli, local, ops, redis).
EXTRA_ONLY = {
    "werkzeug", "google-re2", "sortedcontainers", "typer", "rich", "tomlkit", "plotly",
    "apprise", "redis",
}  # fmt: skip

WORKER = """
import sys
from jobtrack_airtable import Tracker

with Tracker.from_env() as tracker:
    with tracker.job(stream=1) as job:
        with job.client("Guy-Wilson") as run:
            run.add(profiles_examined=10, profiles_scored=8, profile_tokens=4200)
print(job.run_id)
"""


def _run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh environment holding the core wheel and nothing else."""
    tmp = tmp_path_factory.mktemp("core")
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp, ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp.glob("jobtrack_airtable-*.whl")
    venv.create(tmp / "venv", with_pip=True)
    python = tmp / "venv" / "bin" / "python"
    installed = _run(python, "-m", "pip", "install", "-q", wheel)
    assert installed.returncode == 0, installed.stderr
    return python


def _clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "JOBTRACK_"))}
    env.update(XDG_DATA_HOME=str(tmp / "xdg"), HOME=str(tmp / "home"), **extra)
    return env


def test_the_core_install_holds_none_of_the_extras(core_python: Path) -> None:
    listed = _run(core_python, "-m", "pip", "list", "--format", "json")
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "pyairtable" in names
    assert "tenacity" in names
    assert names & EXTRA_ONLY == set()


def test_a_core_install_records_a_job(core_python: Path, tmp_path: Path) -> None:
    with TrackingServer(rate_limit=None) as server:
        env = _clean_env(
            tmp_path,
            AIRTABLE_API_KEY=server.token,
            AIRTABLE_BASE_ID=server.base_id,
            JOBTRACK_ENDPOINT_URL=server.url,
            JOBTRACK_RATE_LIMIT="5",
        )
        result = _run(core_python, "-c", WORKER, env=env)
        assert result.returncode == 0, result.stderr
        run_id = result.stdout.strip()
        (job,) = server.table("jobs").all()
        (client,) = server.table("client_runs").all()
    assert job["fields"]["Run ID"] == run_id
    assert job["fields"]["Status"] == "Completed"
    assert client["fields"]["Run ID"] == f"{run_id}-Guy-Wilson"
    assert client["fields"]["Profiles Examined for Scoring"] == 10
    assert job["fields"]["Total Profiles Examined"] == 10


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        ("from jobtrack_airtable.cli import main; raise SystemExit(main(['--version']))", "cli"),
        ("from jobtrack_airtable.local import LocalAirtable", "local"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    core_python: Path, tmp_path: Path, code: str, extra: str
) -> None:
    result = _run(core_python, "-c", code, env=_clean_env(tmp_path))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert f"pip install 'jobtrack-airtable[{extra}]'" in last
    if extra == "cli":
        assert result.stderr.strip() == (
            "jobtrack-airtable needs the cli extra: pip install 'jobtrack-airtable[cli]'"
        )


def test_the_console_script_of_a_core_install_names_the_cli_extra(
    core_python: Path, tmp_path: Path
) -> None:
    result = _run(core_python.parent / "jobtrack-airtable", "sync", env=_clean_env(tmp_path))
    assert result.returncode == 1
    assert result.stderr == (
        "jobtrack-airtable needs the cli extra: pip install 'jobtrack-airtable[cli]'\n"
    )
    assert result.stdout == ""
