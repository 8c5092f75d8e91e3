"""``sync`` plans from the mirror, ``sync --full`` reads in full, ``mirror status`` and
``mirror rebuild`` (issue 23): the real CLI over HTTP against the local server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from jobtrack_airtable.admin.mirror import default_mirror_path
from jobtrack_airtable.cli import app
from jobtrack_airtable.testing import TrackingServer
from tests.helpers import SyncBase

from .helpers import MIRROR_SPOILERS, mirror_seed


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
    mirror_seed(b, clients=120)
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


#: The commands that read a run, a period or the base's health (issue 23's second part).
_READERS = {
    "runs show": ["runs", "show", "250930-102000", "--json"],
    "report": ["report", "--json", "--since", "2025-09-01", "--until", "2026-01-01"],
    "check": ["check", "--json"],
}


def _reader_answer(command: str, result: Result) -> object:
    data = json.loads(result.stdout)
    if command == "report":
        # Made at its own "now": the on-call messages say how long ago things happened.
        data.pop("generated_at")
        data["on_call"]["attention"] = [p["key"] for p in data["on_call"]["attention"]]
    if command == "check":
        # Checked at its own "now"; what was found, and whether it is news, must agree.
        return (
            sorted((p["key"], p["kind"], p["new"]) for p in data["problems"]),
            data["rows_read"],
            data["error_rates"],
        )
    return data


def _run_reader(env: TrackingServer, tmp_path: Path, command: str, *extra: str) -> Result:
    args = list(_READERS[command])
    if command == "check":
        # Each run its own memory: a second check of one state reports problems as seen.
        args += ["--state", str(tmp_path / f"state-{len(list(tmp_path.iterdir()))}.json")]
    result = cli(env, *args, *extra)
    assert result.exit_code in (0, 2), result.output
    return result


@pytest.mark.parametrize("command", list(_READERS))
def test_run_period_and_health_commands_answer_from_the_mirror(
    env: TrackingServer, tmp_path: Path, command: str
) -> None:
    full = _run_reader(env, tmp_path, command, "--full")
    assert "is missing: rebuilding it from a full read" in full.stderr
    assert "Mirror: full read (a full read was asked for), 125 rows" in full.stderr
    env.request_log.clear()
    mirrored = _run_reader(env, tmp_path, command)
    # Unchanged since the last refresh: the refresh's 4 requests (schema, webhook payloads,
    # one empty page per table), nothing else.
    assert "Mirror: 0 changed and 0 deleted row(s) read" in mirrored.stderr
    assert env.request_log.total == 4
    assert mirrored.exit_code == full.exit_code
    assert _reader_answer(command, mirrored) == _reader_answer(command, full)
    again = _run_reader(env, tmp_path, command, "--full")
    assert "Mirror: full read (a full read was asked for)" in again.stderr
    assert _reader_answer(command, again) == _reader_answer(command, full)


def test_the_html_report_from_the_mirror_is_the_full_reads(
    env: TrackingServer, tmp_path: Path
) -> None:
    period = ["--since", "2025-09-01", "--until", "2026-01-01"]
    pages = []
    for name, extra in (("full.html", ["--full"]), ("mirror.html", [])):
        env.request_log.clear()
        result = cli(env, "report", "--html", str(tmp_path / name), *period, *extra)
        assert result.exit_code == 0, result.output
        page = (tmp_path / name).read_text(encoding="utf-8")
        pages.append(re.sub(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "generated …", page))
    assert env.request_log.total == 4
    assert "5 jobs, 120 client runs" in result.stdout
    assert pages[0] == pages[1]


@pytest.mark.parametrize("spoil", MIRROR_SPOILERS)
@pytest.mark.parametrize("command", list(_READERS))
def test_a_spoilt_mirror_is_rebuilt_with_one_line_for_these_commands_too(
    env: TrackingServer, tmp_path: Path, command: str, spoil: Any
) -> None:
    full = _run_reader(env, tmp_path, command, "--full")
    path = default_mirror_path(env.base_id, env.url)
    path.unlink()
    why = spoil(path, env.base_id)
    rebuilt = _run_reader(env, tmp_path, command)
    notices = [line for line in rebuilt.stderr.splitlines() if "rebuilding it" in line]
    assert len(notices) == 1 and why in notices[0]
    assert notices[0].endswith("rebuilding it from a full read")
    assert "Mirror: full read (" in rebuilt.stderr
    assert _reader_answer(command, rebuilt) == _reader_answer(command, full)


@pytest.mark.parametrize("command", [["check", "--json"], ["usage", "--json"]])
def test_a_spent_quota_is_reported_as_without_a_mirror(
    env: TrackingServer, tmp_path: Path, command: list[str]
) -> None:
    assert cli(env, "mirror", "rebuild").exit_code == 0
    env.quota.spend()
    args = [*command, "--state", str(tmp_path / "state.json")] if command[0] == "check" else command
    result = cli(env, *args)
    assert "Mirror: not refreshed (the monthly API quota is spent); reading the base." in (
        result.stderr
    )
    data = json.loads(result.stdout)
    if command[0] == "check":
        assert result.exit_code == 2, result.output
        assert [p["kind"] for p in data["problems"]] == ["quota_exhausted"]
    else:
        assert result.exit_code == 1, result.output  # over the limit: the quota is spent
        assert data["quota_exhausted"] is True and data["records"] is None
