"""``jobtrack-airtable doctor`` through the real CLI against real local servers, and the
README's four example outputs (a healthy local base, a wrong token, a renamed table, a dead
Redis) reproduced line for line: the README shows real output.

Run ``python -m tests.test_cli_doctor`` to print the four outputs for the README.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from jobtrack_airtable.cli import app
from jobtrack_airtable.testing import TrackingServer

README = Path(__file__).resolve().parent.parent / "README.md"
SCENARIOS = ("healthy", "wrong-token", "renamed-table", "dead-redis")
#: A port nothing listens on (privileged, never bound by the suite).
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for var in list(os.environ):
        if var.startswith(("AIRTABLE_", "JOBTRACK_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


def _server() -> TrackingServer:
    return TrackingServer(token="patLocalDoctorDemo.0123456789", rate_limit=None).start()


def _outbox_url(tmp_path: Path) -> str:
    # Each test its own outbox: the per-user default is shared by a test worker's tests.
    return f"sqlite:///{tmp_path / 'outbox.sqlite'}"


def _env(server: TrackingServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "AIRTABLE_API_KEY": server.token,
        "AIRTABLE_BASE_ID": server.base_id,
        "JOBTRACK_ENDPOINT_URL": server.url,
        "JOBTRACK_LIMITER_URL": f"sqlite:///{tmp_path / 'limiter.sqlite'}",
        "JOBTRACK_OUTBOX_URL": _outbox_url(tmp_path),
        **extra,
    }


@pytest.fixture
def server() -> Iterator[TrackingServer]:
    srv = _server()
    yield srv
    srv.stop()


def run_scenario(name: str, tmp_path: Path, template: Path) -> tuple[str, Result]:
    """(the command line as the README shows it, the result) of one scenario."""
    runner = CliRunner()
    if name == "healthy":
        base = tmp_path / "base.sqlite"
        shutil.copyfile(template, base)
        return "jobtrack-airtable doctor --local base.sqlite", runner.invoke(
            app,
            ["doctor", "--local", str(base)],
            env={"JOBTRACK_OUTBOX_URL": _outbox_url(tmp_path)},
        )
    srv = _server()
    try:
        if name == "wrong-token":
            env = _env(srv, tmp_path, AIRTABLE_API_KEY="patWRONGtoken.0000")
            line = "AIRTABLE_API_KEY=patWRONGtoken.0000 jobtrack-airtable doctor"
        elif name == "renamed-table":
            table = srv.api().base(srv.base_id).table("Job Tracking").schema()
            table.name = "Jobs"
            table.save()
            env = _env(srv, tmp_path)
            line = "jobtrack-airtable doctor   # 'Job Tracking' renamed 'Jobs' in Airtable"
        else:
            env = _env(srv, tmp_path, JOBTRACK_LIMITER_URL=DEAD_REDIS)
            line = f"JOBTRACK_LIMITER_URL={DEAD_REDIS} jobtrack-airtable doctor"
        return line, runner.invoke(app, ["doctor"], env=env)
    finally:
        srv.stop()


def normalise(text: str, tmp_path: Path | None = None) -> str:
    """What differs between runs: ports, temporary paths, counts."""
    if tmp_path is not None:
        text = text.replace(str(tmp_path) + "/", "")
    text = re.sub(r"127\.0\.0\.1:\d{2,5}", "127.0.0.1:PORT", text)
    text = re.sub(r"\(/[^)]*/base\.sqlite\)", "(base.sqlite)", text)
    return re.sub(r"\d[\d,]*", "N", text)


def readme_block(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"<!-- doctor:{name} -->")
    block = text[start : text.index("<!-- /doctor -->", start)]
    return block.split("```text\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("name", SCENARIOS)
def test_readme_shows_the_real_doctor_output(name: str, tmp_path: Path, template: Path) -> None:
    line, result = run_scenario(name, tmp_path, template)
    shown = readme_block(name).splitlines()
    assert shown[0] == f"$ {line}"
    expected_exit = 0 if name == "healthy" else 1
    assert result.exit_code == expected_exit, result.output
    assert [normalise(x) for x in shown[1:]] == [
        normalise(x, tmp_path) for x in result.stdout.splitlines()
    ]


def test_wrong_token_names_the_variable_and_skips_the_rest(
    server: TrackingServer, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["doctor", "--json"], env=_env(server, tmp_path, AIRTABLE_API_KEY="patNOPE.1")
    )
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["healthy"] is False
    problems = [f for f in doc["findings"] if f["level"] == "problem"]
    assert [f["check"] for f in problems] == ["token"]
    assert "AIRTABLE_API_KEY" in problems[0]["fix"]
    assert "schema" not in {f["check"] for f in doc["findings"]}  # skipped, not repeated
    assert "patNOPE" not in result.output


def test_a_token_without_a_scope_names_the_commands_that_need_it(
    server: TrackingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobtrack_airtable.local import app as local_app

    monkeypatch.setattr(local_app, "TOKEN_SCOPES", ("data.records:read", "schema.bases:read"))
    result = CliRunner().invoke(app, ["doctor"], env=_env(server, tmp_path))
    assert result.exit_code == 1
    assert "✗ token        the token lacks data.records:write, needed by workers" in result.stdout
    assert "the token lacks schema.bases:write, needed by schema init" in result.stdout


def test_a_renamed_table_is_never_sent_to_schema_init(
    server: TrackingServer, tmp_path: Path
) -> None:
    table = server.api().base(server.base_id).table("Job Tracking").schema()
    table.name = "Jobs"
    table.save()
    check = CliRunner().invoke(app, ["schema", "check"], env=_env(server, tmp_path))
    assert check.exit_code == 1
    text = " ".join(check.stdout.split())
    assert "renamed in Airtable" in text and "schema pin" in text
    assert "`jobtrack-airtable schema init` creates missing tables" not in text


def test_doctor_help_has_an_example_and_exit_codes() -> None:
    result = CliRunner().invoke(app, ["doctor", "--help"], env={"COLUMNS": "200"})
    assert "Exit 0 when healthy" in result.stdout and "Example:" in result.stdout


if __name__ == "__main__":  # pragma: no cover - a helper for updating the README
    import tempfile

    from jobtrack_airtable.cli.embedded import seed_file
    from jobtrack_airtable.schema import load_schema

    work = Path(tempfile.mkdtemp())
    seed_file(work / "template.sqlite", load_schema())
    for scenario in SCENARIOS:
        (work / scenario).mkdir()
        shown, res = run_scenario(scenario, work / scenario, work / "template.sqlite")
        out = res.stdout.replace(str(work / scenario) + "/", "")
        sys.stdout.write(f"<!-- doctor:{scenario} -->\n```text\n$ {shown}\n{out}```\n")
        sys.stdout.write("<!-- /doctor -->\n\n")


def test_the_outbox_check_names_refused_changes_and_the_command_that_replays_them(
    server: TrackingServer, tmp_path: Path
) -> None:
    from jobtrack_airtable.outbox import SqliteOutbox
    from jobtrack_airtable.outbox.store import entry_key

    env = _env(server, tmp_path)
    store = SqliteOutbox(tmp_path / "outbox.sqlite")
    key = entry_key(server.base_id, "client_runs", "250930-141522-Guy-Wilson")
    store.put(key, 7, '{"status": "Completed"}', "gone-host:1:x")
    store.refused(key, 7, "UnknownFieldError: Could not find a field named 'Profiles'")
    store.close()
    result = CliRunner().invoke(app, ["doctor", "--json"], env=env)
    assert result.exit_code == 1, result.output
    (finding,) = [f for f in json.loads(result.stdout)["findings"] if f["check"] == "outbox"]
    assert finding["level"] == "problem"
    assert "1 change(s) wait" in finding["message"]
    assert "250930-141522-Guy-Wilson" in finding["message"]
    assert "outbox replay" in finding["fix"]
