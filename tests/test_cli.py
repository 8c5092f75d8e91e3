"""The ``jobtrack-airtable`` CLI in-process (typer's CliRunner) against embedded local bases.

Every test gets its own copy of one seeded base file (seeding once per session keeps this fast)
and an environment without Airtable credentials; subprocess tests are in test_cli_subprocess.py.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from typer.testing import Result

from jobtrack_airtable.cli import _core
from jobtrack_airtable.cli.embedded import EMBEDDED_BASE_ID, open_backend, seed_store
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.timeutil import utcnow
from jobtrack_airtable.transport.codec import codec_for
from jobtrack_airtable.transport.repository import Repository

from .conftest import MakeLocalAirtable
from .helpers import (
    FAKE_TOKEN,
    clean_env,  # noqa: F401  (autouse fixture: no stray environment)
    drop_field,
    error_lines,
    local,
    run,
    summary,
)

# -- sync and apply ----------------------------------------------------------------------------


def test_sync_plans_and_exits_2_on_the_demo_data(base: Path) -> None:
    before = base.read_bytes()
    result = local(base, "sync")
    assert result.exit_code == 2, result.output
    create, update, delete, attention = summary(result)
    assert create > 0 and update > 0 and delete > 0 and attention > 0
    assert "Job Tracking" in result.stdout and "Client Run Results" in result.stdout
    assert f"Using the embedded local base at {base}." in result.stderr
    assert base.read_bytes() == before  # planning changes nothing


def test_sync_json_is_a_plan_document(base: Path) -> None:
    result = local(base, "sync", "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert doc["format_version"] == 2
    assert doc["base_id"] == EMBEDDED_BASE_ID
    assert doc["summary"]["update"] > 0
    assert doc["records"]


def test_out_apply_then_sync_converges(base: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    first = local(base, "sync", "--out", str(plan))
    assert first.exit_code == 2
    assert json.loads(plan.read_text(encoding="utf-8"))["format_version"] == 2
    assert f"jobtrack-airtable apply {plan}" in first.stderr

    applied = local(base, "apply", str(plan))
    assert applied.exit_code == 0, applied.output
    create, update, delete, _ = summary(first)
    assert f"Applied: {create} created, {update} updated, {delete} deleted." in applied.stdout

    again = local(base, "sync")
    assert again.exit_code == 0, again.output
    assert summary(again)[:3] == (0, 0, 0)

    # Applying the same plan again writes nothing and says why, instead of listing every
    # row it changed as "changed since the plan".
    before = base.read_bytes()
    replay = local(base, "apply", str(plan))
    assert replay.exit_code == 0, replay.output
    assert error_lines(replay) == []
    assert replay.stdout.splitlines() == [
        f"Already applied: the embedded local base at {base} already holds every change of "
        f"{plan}; nothing was written."
    ]
    assert base.read_bytes() == before


def test_stale_saved_plan_is_refused_and_writes_nothing(base: Path, tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.json"
    assert local(base, "sync", "--out", str(plan_path)).exit_code == 2
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    target = next(r for r in plan["records"] if r["table"] == "jobs" and r["action"] == "update")
    with open_backend(Settings(_env_file=None), local=base) as backend:
        Repository(backend.conn).update_by_id(
            "jobs", [(target["record_id"], {"system_notes": "edited by hand"})]
        )
    before = base.read_bytes()

    result = local(base, "apply", str(plan_path))
    assert result.exit_code == 1
    lines = error_lines(result)
    assert lines[0].startswith("error: the base changed since the plan was made (1 row(s))")
    assert any(target["record_id"] in line for line in lines[1:])
    assert "Traceback" not in result.stderr
    assert base.read_bytes() == before


def test_sync_apply_refuses_without_a_terminal(base: Path) -> None:
    before = base.read_bytes()
    result = local(base, "sync", "--apply")
    assert result.exit_code == 1
    assert error_lines(result) == [
        "error: refusing to apply without confirmation: stdin is not a terminal "
        "(pass --yes to apply non-interactively)"
    ]
    assert base.read_bytes() == before


def test_sync_apply_yes_applies(base: Path) -> None:
    result = local(base, "sync", "--apply", "--yes")
    assert result.exit_code == 0, result.output
    assert "Applied:" in result.stdout
    assert local(base, "sync").exit_code == 0


def test_sync_apply_asks_on_a_terminal(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_core, "stdin_is_tty", lambda: True)
    before = base.read_bytes()
    declined = local(base, "sync", "--apply", input="n\n")
    assert declined.exit_code == 1  # like Terraform's cancelled apply (README exit codes)
    assert "Apply it to the embedded local base" in declined.stderr
    assert "Apply cancelled: nothing was written." in declined.stderr
    assert base.read_bytes() == before
    accepted = local(base, "sync", "--apply", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert local(base, "sync").exit_code == 0


def test_sync_apply_json(base: Path) -> None:
    result = local(base, "sync", "--apply", "--yes", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["plan"]["format_version"] == 2
    assert doc["applied"]["total"] == sum(
        doc["plan"]["summary"][k] for k in ("create", "update", "delete")
    )


def test_stale_after_option(base: Path) -> None:
    def stale_reasons(*extra: str) -> int:
        result = local(base, "sync", "--json", *extra)
        doc = json.loads(result.stdout)
        return sum("stale" in reason.lower() for r in doc["records"] for reason in r["reasons"])

    assert stale_reasons() > 0
    assert stale_reasons("--stale-after", "100000000") == 0  # a bare number is minutes
    assert stale_reasons("--stale-after", "1000w") == 0  # the duration grammar (issue 25)
    assert stale_reasons("--stale-after", "1m") > 0
    bad = local(base, "sync", "--stale-after", "0")
    assert bad.exit_code == 1  # a usage error is an error (1), never "changes found" (2)


def test_apply_of_a_bad_plan_file(base: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format_version": 99}', encoding="utf-8")
    result = local(base, "apply", str(bad))
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith("error: ") and "format_version 99" in line
    missing = local(base, "apply", str(tmp_path / "nope.json"))
    assert missing.exit_code == 1
    assert error_lines(missing) == [
        f"error: invalid value for 'FILE': file '{tmp_path / 'nope.json'}' does not exist "
        "(see `root apply --help`)"
    ]


# -- errors ----------------------------------------------------------------------------------


def test_errors_are_one_line_and_debug_adds_the_traceback(base: Path) -> None:
    result = local(base, "runs", "show", "200101-000000")
    assert result.exit_code == 1
    assert error_lines(result) == [
        "error: no run '200101-000000' in 'Job Tracking' or 'Client Run Results'"
    ]
    debug = run("--debug", "--local", str(base), "runs", "show", "200101-000000")
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("error: no run")


def test_usage_errors_exit_1(base: Path) -> None:
    result = local(base, "runs", "list", "--limit", "many")
    assert result.exit_code == 1
    assert run("no-such-command").exit_code == 1


def test_half_configured_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRTABLE_API_KEY", FAKE_TOKEN)
    result = run("runs", "list")
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "AIRTABLE_BASE_ID" in line
    assert FAKE_TOKEN not in result.output


def test_invalid_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRTABLE_BASE_ID", "not-a-base")
    result = run("runs", "list")
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith("error: invalid configuration: AIRTABLE_BASE_ID")


def test_default_embedded_base_is_announced(tmp_path: Path) -> None:
    result = run("runs", "list", "--limit", "1")
    assert result.exit_code == 0, result.output
    default = tmp_path / "user-data" / "local-base.sqlite"
    assert result.stderr.splitlines()[0] == (
        f"Using the embedded local base at {default}, seeded with the demo dataset "
        "(no AIRTABLE_API_KEY/AIRTABLE_BASE_ID set)."
    )
    assert default.exists()


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith("jobtrack-airtable ")


# -- views -------------------------------------------------------------------------------------


def test_runs_list_table_and_json(base: Path) -> None:
    result = local(base, "runs", "list", "--limit", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["Run", "ID", "Status"]
    assert len(lines) == 1 + 5 + 1
    assert "5 run(s), newest first" in lines[-1]

    doc = json.loads(local(base, "runs", "list", "--limit", "5", "--json").stdout)
    assert doc["format_version"] == 1 and doc["count"] == 5
    run_ids = [r["run_id"] for r in doc["runs"]]
    assert all(run_id in result.stdout for run_id in run_ids)
    starts = [r["start_time"] for r in doc["runs"]]
    assert starts == sorted(starts, reverse=True)


def test_runs_list_filters(base: Path) -> None:
    running = json.loads(local(base, "runs", "list", "--status", "running", "--json").stdout)
    assert running["count"] == 2
    assert {r["status"] for r in running["runs"]} == {"Running"}
    recent = json.loads(local(base, "runs", "list", "--since", "2d", "--json").stdout)
    assert recent["count"] == 3 and recent["filters"]["since"]
    bad = local(base, "runs", "list", "--since", "yesterday")
    assert bad.exit_code == 1 and error_lines(bad)[0].startswith("error: invalid --since")
    bad_status = local(base, "runs", "list", "--status", "Maybe")
    assert bad_status.exit_code == 1 and "invalid status 'Maybe'" in bad_status.stderr


def test_runs_show_table_and_json(base: Path) -> None:
    listing = json.loads(local(base, "runs", "list", "--status", "completed", "--json").stdout)
    run_id = listing["runs"][0]["run_id"]
    result = local(base, "runs", "show", run_id)
    assert result.exit_code == 0, result.output
    assert f"Run {run_id}" in result.stdout
    assert "Client runs" in result.stdout and "Aggregates" in result.stdout
    doc = json.loads(local(base, "runs", "show", run_id, "--json").stdout)
    assert doc["format_version"] == 1 and doc["job"]["run_id"] == run_id
    assert doc["computed"]["clients_processed"] == len(doc["clients"]) > 0


# -- schema ------------------------------------------------------------------------------------


def test_schema_check_good_base(base: Path) -> None:
    result = local(base, "schema", "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Schema OK: 2 tables and")
    doc = json.loads(local(base, "schema", "check", "--json").stdout)
    assert doc == {**doc, "ok": True, "problems": [], "format_version": 1}


def test_schema_check_missing_field_then_init(base: Path) -> None:
    drop_field(base, "Job Tracking", "Stream")
    drop_field(base, "Client Run Results", "Post Scoring Success Rate")
    result = local(base, "schema", "check")
    assert result.exit_code == 1
    assert "'Job Tracking'.'Stream' (number) is missing" in result.stdout
    doc = json.loads(local(base, "schema", "check", "--json").stdout)
    assert doc["ok"] is False
    assert {p["field"] for p in doc["problems"]} == {"Stream", "Post Scoring Success Rate"}

    init = local(base, "schema", "init")
    assert init.exit_code == 0, init.output
    assert "created field Job Tracking.Stream" in init.stdout
    assert "created field Client Run Results.Post Scoring Success Rate" in init.stdout
    assert local(base, "schema", "check").exit_code == 0
    again = local(base, "schema", "init", "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["created_fields"] == []


# -- local -------------------------------------------------------------------------------------


def test_local_seed(tmp_path: Path) -> None:
    path = tmp_path / "seeded.json"
    first = run("--local", str(path), "local", "seed")
    assert first.exit_code == 0, first.output
    assert "job rows" in first.stderr and path.exists()
    refused = run("--local", str(path), "local", "seed")
    assert refused.exit_code == 1 and "--reset" in refused.stderr
    assert run("--local", str(path), "local", "seed", "--reset").exit_code == 0
    assert run("local", "seed").exit_code == 0  # the default path (patched to tmp)
    assert (tmp_path / "user-data" / "local-base.sqlite").exists()


# -- the token ---------------------------------------------------------------------------------


@pytest.fixture
def airtable_env(
    make_local_airtable: MakeLocalAirtable, monkeypatch: pytest.MonkeyPatch
) -> LocalAirtable:
    """Credentials set, pointing at a local server that stands in for Airtable."""
    srv = make_local_airtable(token=FAKE_TOKEN)
    seed_store(srv.store, srv.base_id, srv.schema, now=utcnow())
    monkeypatch.setenv("AIRTABLE_API_KEY", FAKE_TOKEN)
    monkeypatch.setenv("AIRTABLE_BASE_ID", srv.base_id)
    monkeypatch.setenv("JOBTRACK_ENDPOINT_URL", srv.url)
    monkeypatch.setenv("JOBTRACK_RATE_LIMIT", "0")
    return srv


def _assert_no_token(result: Result) -> None:
    text = result.stdout + result.stderr
    assert FAKE_TOKEN not in text
    assert FAKE_TOKEN[:20] not in text
    # Nothing even needed the CLI's last-resort redaction.
    assert "***" not in text


@pytest.mark.parametrize(
    "args",
    [
        ("sync",),
        ("sync", "--json"),
        ("runs", "list"),
        ("runs", "list", "--json"),
        ("schema", "check", "--json"),
        ("--debug", "runs", "show", "200101-000000"),
    ],
)
def test_token_never_printed(airtable_env: LocalAirtable, args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code in (0, 1, 2), result.output
    assert "Using the embedded" not in result.stderr  # it talked to the "Airtable" server
    _assert_no_token(result)


def test_token_never_printed_on_auth_errors(
    airtable_env: LocalAirtable, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = FAKE_TOKEN.replace("fake", "FAKE")
    monkeypatch.setenv("AIRTABLE_API_KEY", wrong)
    for args in (("sync",), ("--debug", "runs", "list")):
        result = run(*args)
        assert result.exit_code == 1
        assert "401" in result.stderr or "AUTHENTICATION" in result.stderr
        text = result.stdout + result.stderr
        assert wrong not in text and wrong[:20] not in text and "***" not in text


def test_sync_against_credentials_applies_to_the_server(airtable_env: LocalAirtable) -> None:
    result = run("sync", "--apply", "--yes")
    assert result.exit_code == 0, result.output
    assert run("sync").exit_code == 0
    assert airtable_env.request_log.count(method="PATCH") > 0


def test_logging_setup_is_undone_after_a_command(base: Path) -> None:
    logger = logging.getLogger("jobtrack_airtable")
    before = (list(logger.handlers), logger.level, logger.propagate)
    assert local(base, "runs", "list", "--limit", "1").exit_code == 0
    assert local(base, "runs", "show", "200101-000000").exit_code == 1
    assert (list(logger.handlers), logger.level, logger.propagate) == before


def test_library_warnings_go_to_stderr(base: Path) -> None:
    # The demo base holds duplicate client rows: reading them warns (once per duplicate key).
    listing = json.loads(local(base, "runs", "list", "--limit", "40", "--json").stdout)
    for entry in listing["runs"]:
        result = local(base, "runs", "show", entry["run_id"], "--json")
        if "WARNING: " in result.stderr:
            assert "share the key" in result.stderr
            json.loads(result.stdout)  # stdout stays pure JSON
            return
    raise AssertionError("no run with duplicate client rows in the demo base")


# -- global options anywhere (issue 14 item 6) -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("sync", "--json", "--local", "{base}"),
        ("sync", "--local", "{base}", "--debug", "--json"),
        ("--debug", "sync", "--local", "{base}", "--json"),
        ("runs", "list", "--local", "{base}", "--json"),
        ("schema", "check", "--json", "--local", "{base}"),
    ],
)
def test_global_options_after_the_subcommand(base: Path, args: tuple[str, ...]) -> None:
    result = run(*(a.format(base=base) for a in args))
    assert result.exit_code in (0, 2), result.output
    json.loads(result.stdout)
    assert f"Using the embedded local base at {base}" in result.stderr


def test_local_after_the_subcommand_wins(base: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    result = run("--local", str(other), "runs", "list", "--local", str(base), "-n", "1")
    assert result.exit_code == 0, result.output
    assert f"at {base}" in result.stderr and not other.exists()


def test_quiet_drops_notices_not_output_or_errors(base: Path) -> None:
    result = run("runs", "list", "-n", "2", "--local", str(base), "--quiet")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert "run(s), newest first" in result.stdout
    failed = run("-q", "--local", str(base), "runs", "show", "200101-000000")
    assert failed.exit_code == 1
    assert failed.stderr.splitlines() == [
        "error: no run '200101-000000' in 'Job Tracking' or 'Client Run Results'"
    ]


def test_every_command_lists_the_global_options() -> None:
    for command in (
        ("sync",),
        ("apply",),
        ("runs", "list"),
        ("runs", "show"),
        ("schema", "check"),
        ("schema", "init"),
        ("local", "serve"),
        ("local", "seed"),
    ):
        result = run(*command, "--help")
        assert result.exit_code == 0, command
        for option in ("--local", "--debug", "--quiet"):
            assert option in result.stdout, (command, option)


# -- a mistyped --local path (issue 14 item 4) -------------------------------------------------


def test_mistyped_local_path_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "deeper" / "base.json"
    for args in (("runs", "list"), ("sync",), ("local", "seed")):
        result = run("--local", str(missing), *args)
        assert result.exit_code == 1, args
        [line] = error_lines(result)
        assert str(missing.parent) in line and "does not exist" in line, line
    assert not (tmp_path / "no-such-dir").exists()


def test_local_path_that_is_a_directory_or_under_a_file(tmp_path: Path) -> None:
    directory = tmp_path / "adir"
    directory.mkdir()
    result = run("runs", "list", "--local", str(directory))
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "adir' is a directory" in line
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    under = run("--local", str(a_file / "base.json"), "runs", "list")
    assert under.exit_code == 1
    assert "is not a directory" in error_lines(under)[0]
    assert list(directory.iterdir()) == []


def test_lock_file_that_cannot_be_created_is_named_at_once(tmp_path: Path) -> None:
    # A directory where the lock file should be: no command could ever take this lock.
    # (Tests run as root, so a read-only directory would not stop them; this does.)
    path = tmp_path / "base.json"
    (tmp_path / "base.json.lock").mkdir()
    result = run("--local", str(path), "runs", "list")
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith(f"error: cannot create the lock file '{path}.lock'")
    assert "in use" not in line
    assert not path.exists()


# -- exit codes and one-line messages (issue 14 item 5) ----------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("runs", "list", "-n", "many"),
            "error: invalid value for --limit: 'many' is not a whole number "
            "(see `root runs list --help`)",
        ),
        (
            ("sync", "--stale-after", "0"),
            "error: invalid --stale-after '0': must be more than zero",
        ),
        (
            ("local", "serve", "--port", "99999"),
            "error: invalid value for --port: '99999' must be at most 65535 "
            "(see `root local serve --help`)",
        ),
        (
            ("local", "serve", "--token", "t", "--host", "0.0.0.0"),
            "error: invalid value for '--host': '0.0.0.0' is not a loopback address; use "
            "127.0.0.1 or ::1 (see `root local serve --help`)",
        ),
        (
            ("local", "serve", "--rate-limit", "fast", "--token", "t"),
            "error: invalid value for '--rate-limit': 'fast' is not a whole number of "
            "requests/s >= 1 or 'off' (see `root local serve --help`)",
        ),
        (
            ("local", "serve"),
            "error: invalid value for '--token': a bearer token is required: pass --token or "
            "set JOBTRACK_LOCAL_TOKEN (see `root local serve --help`)",
        ),
        (
            ("sync", "--yes"),
            "error: invalid value for '--yes': --yes only confirms --apply; add --apply, or "
            "drop --yes to plan only (see `root sync --help`)",
        ),
        (
            ("sync", "--target", "everything"),
            "error: invalid value for '--target': 'everything' is not a table, a kind of fix "
            "or run:RUN_ID (jobs, client_runs, 'Job Tracking', 'Client Run Results', create, "
            "update, delete, attention, run:RUN_ID) (see `root sync --help`)",
        ),
        (("no-such-command",), "error: no such command 'no-such-command' (see `root --help`)"),
    ],
)
def test_usage_errors_are_one_line_naming_the_value(
    base: Path, args: tuple[str, ...], line: str
) -> None:
    before = base.read_bytes()
    result = local(base, *args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert error_lines(result) == [line]
    assert base.read_bytes() == before


def test_no_library_or_os_wording_leaks(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"format_version": 2, "records": [1]}', encoding="utf-8")
    cases = [
        local(base, "apply", str(malformed)),
        local(base, "show", str(malformed)),
        local(base, "sync", "--out", str(tmp_path / "no-dir" / "plan.json")),
    ]
    monkeypatch.setenv("JOBTRACK_STALE_AFTER_MINUTES", "0")
    cases.append(local(base, "sync"))
    monkeypatch.delenv("JOBTRACK_STALE_AFTER_MINUTES")
    monkeypatch.setenv("JOBTRACK_SCHEMA_FILE", str(tmp_path))
    cases.append(local(base, "runs", "list"))
    for result in cases:
        assert result.exit_code == 1, result.output
        [line] = error_lines(result)
        assert line.startswith("error: ")
        for leak in ("pydantic", "Input should", "[Errno", "validation error", "Traceback", "╭"):
            assert leak not in line, line
    assert "malformed.json' is not a valid plan (base_id: missing;" in error_lines(cases[0])[0]
    assert "no-dir' does not exist" in error_lines(cases[2])[0]
    assert error_lines(cases[3]) == [
        "error: invalid configuration: JOBTRACK_STALE_AFTER_MINUTES='0': must be greater than 0"
    ]
    assert error_lines(cases[4])[0] == (
        f"error: schema file '{tmp_path}' is not a regular file (a directory); "
        "give the path of a file"
    )


# -- plans: show, targets, what apply wrote (issue 14 item 8) -----------------------------------


def test_show_a_saved_plan_text_and_json(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide enough for the line naming the plan's path, however deep the temporary directory.
    monkeypatch.setenv("COLUMNS", "400")
    plan_path = tmp_path / "plan.json"
    made = local(base, "sync", "-o", str(plan_path))
    assert made.exit_code == 2
    before = base.read_bytes()
    shown = run("show", str(plan_path))  # no base needed: only the file is read
    assert shown.exit_code == 0, shown.output
    assert shown.stderr == ""
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"Plan for base {EMBEDDED_BASE_ID}, made ")
    assert made.stdout.strip() in shown.stdout  # the very plan sync printed
    create, update, delete, _ = summary(made)
    assert lines[-1] == (
        f"Applying it writes {create + update + delete} row(s): "
        f"`jobtrack-airtable apply {plan_path}`."
    )
    doc = json.loads(run("show", str(plan_path), "--json").stdout)
    assert doc["no_op"] is False
    assert doc["plan"] == json.loads(plan_path.read_text(encoding="utf-8"))

    assert local(base, "apply", str(plan_path)).exit_code == 0
    empty = tmp_path / "empty.json"
    assert local(base, "sync", "-o", str(empty)).exit_code == 0
    assert run("show", str(empty)).stdout.splitlines()[-1] == (
        "This plan is a no-op: applying it changes nothing."
    )
    assert json.loads(run("show", str(empty), "--json").stdout)["no_op"] is True
    assert base.read_bytes() != before  # (the apply above did write)


def test_apply_lists_the_rows_it_wrote(base: Path, tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.json"
    assert local(base, "sync", "-o", str(plan_path)).exit_code == 2
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    result = local(base, "apply", str(plan_path))
    assert result.exit_code == 0, result.output
    *written, applied = result.stdout.splitlines()
    assert applied.startswith("Applied: ")  # the outcome, last, on stdout with the rows
    planned = [r for r in plan["records"] if r["action"] != "attention"]
    assert len(written) == len(planned)
    names = plan["table_names"]
    symbol = {"create": "+", "update": "~", "delete": "-"}
    for r in planned:
        if r["action"] == "create":
            pattern = rf"^\+ {names[r['table']]} rec\w{{14}} {re.escape(repr(r['key']))}$"
            assert any(re.match(pattern, line) for line in written), r
        else:
            line = f"{symbol[r['action']]} {names[r['table']]} {r['record_id']} {r['key']!r}"
            assert line in written


def test_apply_json_names_the_rows(base: Path, tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.json"
    assert local(base, "sync", "-o", str(plan_path)).exit_code == 2
    doc = json.loads(local(base, "apply", str(plan_path), "--json").stdout)
    assert doc["already_applied"] is False
    assert len(doc["rows"]) == doc["total"] > 0
    assert {r["action"] for r in doc["rows"]} == {"create", "update", "delete"}
    again = json.loads(local(base, "apply", str(plan_path), "--json").stdout)
    assert again == {"base_kind": "embedded", "already_applied": True, "total": 0, "rows": []}


def test_partly_changed_base_is_still_refused(base: Path, tmp_path: Path) -> None:
    # "Already applied" only when the base holds *every* change: a plan applied and then
    # edited by hand is stale, not applied.
    plan_path = tmp_path / "plan.json"
    assert local(base, "sync", "-o", str(plan_path)).exit_code == 2
    assert local(base, "apply", str(plan_path)).exit_code == 0
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    target = next(r for r in plan["records"] if r["table"] == "jobs" and r["action"] == "update")
    field = target["changes"][0]["field"]
    with open_backend(Settings(_env_file=None), local=base) as backend:
        repo = Repository(backend.conn)
        spec = repo.schema.table("jobs")
        named = codec_for(spec).named(field)
        key = named.key if named else field
        old = target["changes"][0]["old"]
        repo.update_by_id("jobs", [(target["record_id"], {key: old})])
    result = local(base, "apply", str(plan_path))
    assert result.exit_code == 1
    assert error_lines(result)[0].startswith("error: the base changed since the plan was made")


def test_target_limits_the_plan_and_warns(base: Path, tmp_path: Path) -> None:
    full = json.loads(local(base, "sync", "--json").stdout)
    jobs_only = local(base, "sync", "--json", "--target", "jobs")
    assert jobs_only.exit_code == 2
    doc = json.loads(jobs_only.stdout)
    assert doc["records"] and {r["table"] for r in doc["records"]} == {"jobs"}
    left_out = len(full["records"]) - len(doc["records"])
    assert (
        f"Warning: the plan is limited to --target jobs; {left_out} other planned row(s) are "
        "not in it and will not be applied." in jobs_only.stderr
    )
    deletes = json.loads(local(base, "sync", "--json", "-t", "delete").stdout)["records"]
    # A merge stays whole: each duplicate's delete comes with the update of its survivor.
    survivors = {r["merged_into"] for r in deletes if r["action"] == "delete"}
    assert survivors and survivors <= {r["record_id"] for r in deletes if r["action"] == "update"}
    assert {r["action"] for r in deletes} <= {"delete", "update"}

    run_id = next(r["key"] for r in full["records"] if r["table"] == "client_runs")[:13]
    one_run = json.loads(local(base, "sync", "--json", "-t", f"run:{run_id}").stdout)["records"]
    assert one_run and all(r["key"].startswith(run_id) for r in one_run)

    # A targeted plan applies only its rows; the rest is still planned afterwards.
    plan_path = tmp_path / "jobs.json"
    assert local(base, "sync", "-t", "Job Tracking", "-o", str(plan_path)).exit_code == 2
    assert local(base, "apply", str(plan_path)).exit_code == 0
    rest = json.loads(local(base, "sync", "--json").stdout)["records"]
    assert not [r for r in rest if r["table"] == "jobs" and r["action"] != "attention"]
    assert [r for r in rest if r["table"] == "client_runs" and r["action"] != "attention"]


def test_runs_list_formats(base: Path) -> None:
    as_json = json.loads(local(base, "runs", "list", "-n", "5", "--format", "json").stdout)
    assert as_json == json.loads(local(base, "runs", "list", "-n", "5", "--json").stdout)
    csv_out = local(base, "runs", "list", "-n", "5", "-f", "csv")
    assert csv_out.exit_code == 0
    import csv as csv_module

    rows = list(csv_module.DictReader(csv_out.stdout.splitlines()))
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in as_json["runs"]]
    for row, doc in zip(rows, as_json["runs"], strict=True):
        assert row["status"] == doc["status"]
        expected = doc["aggregates"].get("clients_processed")
        assert row["clients_processed"] == ("" if expected is None else str(expected))
    bad = local(base, "runs", "list", "--format", "yaml")
    assert bad.exit_code == 1
    assert error_lines(bad) == [
        "error: invalid value for '--format': 'yaml' is not one of table, json, csv "
        "(see `root runs list --help`)"
    ]


def test_notice_names_the_real_base_and_where_credentials_came_from(
    airtable_env: LocalAirtable, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = run("runs", "list", "-n", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        f"Using base {airtable_env.base_id} at {airtable_env.url} "
        "(credentials from the environment)."
    )
    assert run("-q", "runs", "list", "-n", "1").stderr == ""
    # A stray .env switches to a real base: the notice says so and names the file.
    monkeypatch.delenv("AIRTABLE_API_KEY")
    monkeypatch.delenv("AIRTABLE_BASE_ID")
    (tmp_path / ".env").write_text(
        f"AIRTABLE_API_KEY={FAKE_TOKEN}\nAIRTABLE_BASE_ID={airtable_env.base_id}\n",
        encoding="utf-8",
    )
    from_file = run("runs", "list", "-n", "1")
    assert from_file.exit_code == 0, from_file.output
    assert from_file.stderr.splitlines()[0] == (
        f"Using base {airtable_env.base_id} at {airtable_env.url} "
        f"(credentials from {tmp_path / '.env'})."
    )
    _assert_no_token(from_file)
