"""``sync`` plans from the mirror, ``sync --full`` reads in full, ``mirror status`` and
``mirror rebuild`` (issue 23): the real CLI over HTTP against the local server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from jobtrack_airtable.cli import app
from jobtrack_airtable.testing import TrackingServer
from tests.helpers import SyncBase
from tests.test_mirror import _seed


def cli(srv: TrackingServer, *args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def env(
    local_airtable: TrackingServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> TrackingServer:
    monkeypatch.setenv("AIRTABLE_API_KEY", local_airtable.token)
    monkeypatch.setenv("AIRTABLE_BASE_ID", local_airtable.base_id)
    monkeypatch.setenv("JOBTRACK_ENDPOINT_URL", local_airtable.url)
    monkeypatch.setenv("JOBTRACK_MIRROR_DIR", str(tmp_path / "mirrors"))
    b = SyncBase(local_airtable)
    _seed(b, clients=120)
    b.conn.close()
    return local_airtable


def test_sync_plans_from_the_mirror_and_full_reads_in_full(env: TrackingServer) -> None:
    first = cli(env, "sync", "--json")
    assert first.exit_code == 2, first.output
    assert "is missing: rebuilding it from a full read" in first.stderr
    assert "Mirror: full read (the mirror is new), 125 rows" in first.stderr

    env.request_log.clear()
    again = cli(env, "sync", "--json")
    assert again.exit_code == 2
    assert env.request_log.total == 4
    assert "Mirror: 0 changed and 0 deleted row(s) read; deletions from webhook payloads." in (
        again.stderr
    )
    full = cli(env, "sync", "--json", "--full")
    assert "Mirror: full read (a full read was asked for), 125 rows" in full.stderr

    def plan(result: Result) -> object:
        # Each run plans at its own "now" (in generated_at and the notes it writes): the rows,
        # what changes in them and the guards are what must agree.
        data = json.loads(result.stdout)
        rows = [
            (r["table"], r["action"], r["record_id"], r["key"], [c["field"] for c in r["changes"]])
            for r in data["records"]
        ]
        return rows, data["guards"]

    assert plan(first) == plan(again) == plan(full)


def test_mirror_status_and_rebuild(env: TrackingServer, tmp_path: Path) -> None:
    never = cli(env, "mirror", "status")
    assert never.exit_code == 0, never.output
    assert "Last refresh: never" in never.stdout
    env.request_log.clear()
    rebuilt = cli(env, "mirror", "rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "Mirror: full read (a full read was asked for), 125 rows" in rebuilt.stderr
    # The schema, the webhooks (listed, one made), 1 + 2 pages.
    assert env.request_log.total == 6
    env.request_log.clear()
    status = cli(env, "mirror", "status", "--json")
    assert env.request_log.total == 0
    data = json.loads(status.stdout)
    assert data["rows"] == {"jobs": 5, "client_runs": 120}
    assert data["deletions"] == "webhook"
    assert data["path"].startswith(str(tmp_path / "mirrors"))
    text = cli(env, "mirror", "status").stdout
    assert "Rows: jobs 5, client_runs 120" in text
    assert "Deletions: webhook payloads" in text


def test_the_embedded_base_has_no_mirror(base: Path) -> None:
    result = CliRunner().invoke(app, ["--local", str(base), "mirror", "status"])
    assert result.exit_code == 0, result.output
    assert "has no mirror" in result.stderr


def _answer(command: str, stdout: str) -> object:
    data = json.loads(stdout)
    if command == "usage":
        return data["records"]["total"], data["records"]["by_table"]
    if command == "archive":
        return data["jobs"], data["skipped"]
    return data


@pytest.mark.parametrize(
    "args",
    [
        ["usage", "--json"],
        ["runs", "list", "--json", "--limit", "100"],
        ["archive", "--older-than", "30d", "--json"],
    ],
)
def test_whole_table_commands_answer_from_the_mirror_as_from_a_full_read(
    env: TrackingServer, tmp_path: Path, args: list[str]
) -> None:
    if args[0] == "archive":
        args = [*args, "--to", str(tmp_path / "archive.sqlite")]
    full = cli(env, *args, "--full")
    assert full.exit_code in (0, 2), full.output
    assert "Mirror: full read (a full read was asked for)" in full.stderr
    env.request_log.clear()
    mirrored = cli(env, *args)
    assert mirrored.exit_code == full.exit_code, mirrored.output
    assert "Mirror: 0 changed and 0 deleted row(s) read" in mirrored.stderr
    assert env.request_log.total == 4  # the refresh; the answer came from the mirror
    assert _answer(args[0], mirrored.stdout) == _answer(args[0], full.stdout)
