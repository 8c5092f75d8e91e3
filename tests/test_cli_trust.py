"""Issue 24 through the real CLI: never act on the wrong base, never trust a tampered plan,
always say what happened.

* the embedded demo base only where it cannot mislead (the cron environment sends nothing and
  names the missing credentials; ``-q`` and JSON still say "embedded");
* settings files found where admins put them, and named;
* saved plans: a checksum, every write held to a fingerprint, sane numbers, bounded reads
  (FIFO, ``/dev/zero``, 200,000-deep JSON, a 3 GB sparse file: one line each);
* outcomes on stdout, Ctrl-C between batches saying what was written and how to finish.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from jobtrack_airtable.cli import app, embedded
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.transport.repository import Repository

from .webhook import running_webhook

SCRIPT = Path(sys.executable).parent / "jobtrack-airtable"
#: Seconds before a test that could hang on hostile input is failed.  Long, because a hang is
#: forever while a refusal on a loaded machine took over 60 s (and pytest-timeout's signal,
#: landing inside xdist's reporting, then ended the whole session, not just the test).
HANG_GUARD = 240
_OURS = ("AIRTABLE_", "JOBTRACK_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith(_OURS):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    default = tmp_path / "user-data" / "local-base.sqlite"
    monkeypatch.setattr(embedded, "default_local_path", lambda: default)


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input, env=env)


def cron_env(home: Path, **extra: str) -> dict[str, str]:
    """What cron gives a job: a minimal environment, a fresh HOME, no credentials."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **extra}


# -- the embedded base only where it cannot mislead -------------------------------------------


@pytest.mark.parametrize("quiet", [[], ["-q"]], ids=["plain", "quiet"])
def test_cron_check_notify_sends_nothing_and_names_the_missing_credentials(
    tmp_path: Path, quiet: list[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with running_webhook() as hook:
        done = subprocess.run(
            [str(SCRIPT), *quiet, "check", "--notify", hook.url()],
            cwd="/",
            env=cron_env(home),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        received = list(hook.received)
    assert received == []
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: refusing to send notifications with the embedded demo base")
    assert "AIRTABLE_API_KEY and AIRTABLE_BASE_ID are not set" in line
    assert "--demo" in line
    assert not (home / ".local" / "share" / "jobtrack-airtable").exists()  # nothing seeded


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "--apply", "--yes"],
        ["archive", "--older-than", "20d", "--apply", "--yes"],
        ["usage"],
        ["check", "--notify", "json://127.0.0.1:9/never"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_commands_with_effects_refuse_the_implicit_demo_base(
    args: list[str], tmp_path: Path
) -> None:
    result = run(*args)
    assert result.exit_code == 1
    assert "with the embedded demo base" in result.stderr
    assert not (tmp_path / "user-data" / "local-base.sqlite").exists()


def test_apply_refuses_the_implicit_demo_base(base: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert run("--local", str(base), "sync", "-o", str(plan)).exit_code == 2
    result = run("apply", str(plan))
    assert result.exit_code == 1
    assert "refusing to apply a plan with the embedded demo base" in result.stderr


def test_demo_asks_for_the_demo_base_on_purpose(tmp_path: Path) -> None:
    result = run("--demo", "usage")
    assert result.exit_code == 0, result.output
    assert "Using the embedded local base" in result.stderr
    assert (tmp_path / "user-data" / "local-base.sqlite").exists()
    assert run("sync", "--demo", "--apply", "--yes").exit_code == 0  # after the command too


def test_quiet_and_json_still_say_the_output_is_from_the_embedded_base() -> None:
    result = run("-q", "runs", "list", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["base_kind"] == "embedded"
    assert result.stderr.startswith("Using the embedded local base at ")
    assert "no AIRTABLE_API_KEY/AIRTABLE_BASE_ID set" in result.stderr
    plan = run("-q", "sync", "--json")
    assert plan.exit_code == 2 and json.loads(plan.stdout)["base_kind"] == "embedded"
    # Asked for explicitly, -q may drop the notice: the admin chose that base.
    explicit = run("-q", "--demo", "runs", "list", "--format", "json")
    assert explicit.stderr == "" and json.loads(explicit.stdout)["base_kind"] == "embedded"


def test_endpoint_without_credentials_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBTRACK_ENDPOINT_URL", "http://127.0.0.1:9")
    result = run("runs", "list")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "JOBTRACK_ENDPOINT_URL is set (http://127.0.0.1:9)" in line
    assert "AIRTABLE_API_KEY and AIRTABLE_BASE_ID are not" in line


# -- settings files -----------------------------------------------------------------------------


def _settings(path: Path, **values: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


@pytest.fixture
def airtable_env(make_local_airtable: Any) -> dict[str, str]:
    server = make_local_airtable()
    return {
        "AIRTABLE_API_KEY": server.token,
        "AIRTABLE_BASE_ID": server.base_id,
        "JOBTRACK_ENDPOINT_URL": server.url,
        "JOBTRACK_RATE_LIMIT": "0",
    }


def test_env_file_in_a_parent_up_to_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airtable_env: dict[str, str]
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    found = _settings(repo / ".env", **airtable_env)
    deep = repo / "deploy" / "cron"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    result = run("runs", "list")
    assert result.exit_code == 0, result.output
    assert f"(credentials from {found})" in result.stderr
    # Above the repository root nothing is looked for: a stray .env there is not ours.
    outside = tmp_path / "outer"
    _settings(outside / ".env", **airtable_env)
    (outside / "checkout" / ".git").mkdir(parents=True)
    monkeypatch.chdir(outside / "checkout")
    assert "Using the embedded local base" in run("runs", "list").stderr


def test_env_file_option_and_the_per_user_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airtable_env: dict[str, str]
) -> None:
    explicit = _settings(tmp_path / "prod.env", **airtable_env)
    result = run("runs", "list", "--env-file", str(explicit))
    assert result.exit_code == 0, result.output
    assert f"(credentials from {explicit})" in result.stderr
    missing = run("--env-file", str(tmp_path / "nope.env"), "runs", "list")
    assert missing.exit_code == 1
    assert "cannot read settings file" in missing.stderr and "nope.env" in missing.stderr
    user = _settings(Path(os.environ["XDG_CONFIG_HOME"]) / "jobtrack-airtable" / "config.env")
    try:
        _settings(user, **airtable_env)
        result = run("runs", "list")
        assert result.exit_code == 0, result.output
        assert f"(credentials from {user})" in result.stderr
    finally:
        user.unlink()


def test_unknown_variables_in_the_settings_file_are_named(
    tmp_path: Path, airtable_env: dict[str, str]
) -> None:
    path = _settings(tmp_path / ".env", JOBTRACK_RATELIMIT="2", **airtable_env)
    result = run("runs", "list")
    assert result.exit_code == 0, result.output
    assert (
        f"Warning: JOBTRACK_RATELIMIT in {path} is not a setting and is ignored "
        "(did you mean JOBTRACK_RATE_LIMIT?)"
    ) in result.stderr


@pytest.mark.timeout(HANG_GUARD)  # the guard: reading a FIFO named .env would block forever
def test_a_hostile_env_file_is_one_error_and_a_venv_named_env_is_ignored(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    os.mkfifo(env)
    result = run("runs", "list")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: settings file '{env}' is not a regular file (a named pipe); "
        "give the path of a file"
    ]
    env.unlink()
    with open(env, "wb") as fh:
        fh.truncate(3 * 1024**3)
    result = run("runs", "list")
    assert result.exit_code == 1 and "3,221,225,472 bytes" in result.stderr
    env.unlink()
    env.mkdir()  # python -m venv .env
    assert run("runs", "list").exit_code == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOBTRACK_RATE_LIMIT", "1e-9"),
        ("JOBTRACK_RATE_LIMIT", "1e9"),
        ("JOBTRACK_TIMEOUT", "1e308"),
        ("JOBTRACK_STALE_AFTER_MINUTES", "1e308"),
        ("JOBTRACK_FLUSH_INTERVAL", "nan"),
    ],
)
def test_settings_out_of_bounds_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = run("sync")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: invalid configuration: {variable}={value!r}")


# -- plans you can trust ------------------------------------------------------------------------


@pytest.fixture
def saved(base: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "plan.json"
    assert run("--local", str(base), "sync", "-o", str(path)).exit_code == 2
    return path, json.loads(path.read_text(encoding="utf-8"))


def _rewrite(path: Path, doc: dict[str, Any], *, checksum: bool = True) -> None:
    """Write an edited plan, with a correct checksum (an attacker can recompute it): the
    fingerprint rule must hold on its own."""
    from jobtrack_airtable.admin.sync import plan_checksum
    from jobtrack_airtable.admin.sync.model import plan_from_data

    doc = {k: v for k, v in doc.items() if k != "checksum"}
    if checksum:
        doc["checksum"] = plan_checksum(plan_from_data(doc))
    path.write_text(json.dumps(doc), encoding="utf-8")


def _rows(base: Path) -> dict[str, set[str]]:
    with embedded.open_backend(Settings(_env_file=None), local=base) as backend:
        repo = Repository(backend.conn)
        return {t: {r["id"] for r in repo.list_records(t)} for t in ("jobs", "client_runs")}


def test_an_edited_plan_fails_its_checksum(base: Path, saved: tuple[Path, dict[str, Any]]) -> None:
    path, doc = saved
    doc["stale_after_seconds"] = 60.0
    path.write_text(json.dumps(doc), encoding="utf-8")
    before = base.read_bytes()
    for command in ("apply", "show"):
        result = run("--local", str(base), command, str(path))
        assert result.exit_code == 1
        [line] = [x for x in result.stderr.splitlines() if not x.startswith("Using ")]
        assert "checksum does not match its contents" in line and str(path) in line
    assert base.read_bytes() == before


def test_a_fingerprint_less_delete_is_refused_with_nothing_written(
    base: Path, saved: tuple[Path, dict[str, Any]]
) -> None:
    path, doc = saved
    before = _rows(base)
    # A delete of a row the planner never read (an extra job row), with no fingerprint.
    victim = sorted(before["jobs"] - set(doc["guards"]["fingerprints"].get("jobs", {})))[0]
    doc["records"].append(
        {"table": "jobs", "action": "delete", "record_id": victim, "key": "x", "changes": []}
    )
    _rewrite(path, doc)
    result = run("--local", str(base), "apply", str(path))
    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if not x.startswith("Using ")]
    assert f"delete of jobs '{victim}'" in line and "no fingerprint of the row as read" in line
    assert _rows(base) == before


def test_removing_the_fingerprints_does_not_help(
    base: Path, saved: tuple[Path, dict[str, Any]]
) -> None:
    path, doc = saved
    doc["guards"]["fingerprints"] = {}
    _rewrite(path, doc)
    before = base.read_bytes()
    result = run("--local", str(base), "apply", str(path))
    assert result.exit_code == 1 and "no fingerprint of the row as read" in result.stderr
    assert base.read_bytes() == before


def test_a_bad_record_id_fails_before_the_first_batch(
    base: Path, saved: tuple[Path, dict[str, Any]]
) -> None:
    path, doc = saved
    last = next(r for r in reversed(doc["records"]) if r["action"] == "update")
    digest = doc["guards"]["fingerprints"][last["table"]].pop(last["record_id"])
    last["record_id"] = "recNOPE"
    doc["guards"]["fingerprints"][last["table"]]["recNOPE"] = digest
    _rewrite(path, doc)
    before = base.read_bytes()
    result = run("--local", str(base), "apply", str(path))
    assert result.exit_code == 1
    assert "'recNOPE'" in result.stderr and "not an Airtable record ID" in result.stderr
    assert base.read_bytes() == before


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("stale_after_seconds", float("nan"), "stale_after_seconds nan"),
        ("stale_after_seconds", -1, "stale_after_seconds -1"),
        ("stale_after_seconds", 1e308, "stale_after_seconds 1e+308"),
        ("generated_at", "9999-12-31T00:00:00.000Z", "not a plausible time"),
        ("generated_at", "yesterday", "is not a timestamp"),
    ],
)
def test_insane_numbers_and_times_are_refused(
    base: Path, saved: tuple[Path, dict[str, Any]], field: str, value: Any, problem: str
) -> None:
    path, doc = saved
    doc[field] = value
    _rewrite(path, doc)
    result = run("--local", str(base), "apply", str(path))
    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if not x.startswith("Using ")]
    assert problem in line and "Error" not in line.split(":")[0]


def test_a_plan_without_a_checksum_is_refused(
    base: Path, saved: tuple[Path, dict[str, Any]]
) -> None:
    path, doc = saved
    _rewrite(path, doc, checksum=False)
    result = run("--local", str(base), "apply", str(path))
    assert result.exit_code == 1 and "plan has no checksum" in result.stderr


@pytest.fixture
def hostile(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    sparse = tmp_path / "sparse.json"
    with open(sparse, "wb") as fh:
        fh.truncate(3 * 1024**3)
    return {"fifo": fifo, "zero": Path("/dev/zero"), "deep": deep, "sparse": sparse}


@pytest.mark.timeout(HANG_GUARD)  # the guard: a FIFO read would block forever, /dev/zero never end
@pytest.mark.parametrize("kind", ["fifo", "zero", "deep", "sparse"])
@pytest.mark.parametrize("command", ["show", "apply"])
def test_hostile_plan_files_are_refused_in_one_line(
    base: Path, hostile: dict[str, Path], kind: str, command: str
) -> None:
    path = hostile[kind]
    done = subprocess.run(
        [str(SCRIPT), "--local", str(base), command, str(path)],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD - 30,
        check=False,
        env={**os.environ, "HOME": str(base.parent)},
    )
    assert done.returncode == 1
    lines = [x for x in done.stderr.splitlines() if not x.startswith("Using ")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and str(path) in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    expected = {
        "fifo": "is not a regular file (a named pipe)",
        "zero": "is not a regular file (a character device)",
        "deep": "nests deeper than 64 levels",
        "sparse": "3,221,225,472 bytes",
    }[kind]
    assert expected in lines[0]


# -- say what happened --------------------------------------------------------------------------


def test_ctrl_c_during_apply_finishes_the_batch_and_says_how_to_finish(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C arrives while the first batch of updates is in flight: that batch completes,
    nothing more is sent, and the output says what was written and what finishes the job."""
    calls: list[int] = []
    real = Repository.update_by_id

    def update_by_id(self: Repository, table: str, rows: Any, **kw: Any) -> Any:
        out = real(self, table, rows, **kw)
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)  # the admin's Ctrl-C, mid-apply
        calls.append(len(rows))
        return out

    monkeypatch.setattr(Repository, "update_by_id", update_by_id)
    plan = run("--local", str(base), "-q", "sync", "--json")
    summary = json.loads(plan.stdout)["summary"]
    total = summary["create"] + summary["update"] + summary["delete"]
    result = run("--local", str(base), "sync", "--apply", "--yes")
    assert result.exit_code == 130
    assert calls == [10]  # the batch in flight finished; no other was sent
    assert (
        f"Interrupted: 10 of {total} row(s) written, {total - 10} not written. Every write is "
        f"idempotent: finish the job with `jobtrack-airtable --local {base} sync --apply`."
    ) in result.stderr
    monkeypatch.setattr(Repository, "update_by_id", real)
    finish = run("--local", str(base), "sync", "--apply", "--yes")
    assert finish.exit_code == 0, finish.output
    assert run("--local", str(base), "sync").exit_code == 0


def test_outcome_lines_go_to_stdout(base: Path, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    assert run("--local", str(base), "-q", "sync", "-o", str(path)).exit_code == 2
    first = run("--local", str(base), "-q", "apply", str(path))
    assert first.stdout.splitlines()[-1].startswith("Applied: ")
    again = run("--local", str(base), "-q", "apply", str(path))
    assert again.stdout.startswith("Already applied: ") and again.stderr == ""


def test_archive_progress_moves_through_the_delete_phase(base: Path, tmp_path: Path) -> None:
    from jobtrack_airtable.admin.archive import apply_archive, plan_archive

    stages: list[tuple[str, int]] = []
    with embedded.open_backend(Settings(_env_file=None), local=base) as backend:
        repo = Repository(backend.conn)
        plan = plan_archive(repo, older_than=timedelta(days=20), archive_path=tmp_path / "a.db")
        apply_archive(repo, plan, on_progress=lambda s, n: stages.append((s, n)))
    deletes = [n for s, n in stages if s.startswith("deleted")]
    clients = sum(len(j.clients) for j in plan.jobs)
    assert sum(deletes) == plan.row_count
    assert len(deletes) == -(-clients // 10) + -(-len(plan.jobs) // 10)  # one tick per batch
    assert max(deletes) <= 10


def test_401_and_a_renamed_table_say_what_to_do(
    airtable_env: dict[str, str], make_local_airtable: Any
) -> None:
    wrong = run("runs", "list", env={**airtable_env, "AIRTABLE_API_KEY": "patWRONG.0"})
    assert wrong.exit_code == 1
    [line] = wrong.stderr.splitlines()[-1:]
    assert "401" in line and "check AIRTABLE_API_KEY" in line and "doctor" in line
    assert "patWRONG" not in wrong.output
    server = make_local_airtable()
    table = server.api().base(server.base_id).table("Job Tracking").schema()
    table.name = "Jobs"
    table.save()
    env = {
        **airtable_env,
        "AIRTABLE_API_KEY": server.token,
        "AIRTABLE_BASE_ID": server.base_id,
        "JOBTRACK_ENDPOINT_URL": server.url,
    }
    renamed = run("runs", "list", env=env)
    assert renamed.exit_code == 1
    last = renamed.stderr.splitlines()[-1]
    assert "TABLE_NOT_FOUND" in last and "renamed in Airtable" in last and "doctor" in last


@pytest.mark.timeout(HANG_GUARD)  # the guard: each of these used to block or read forever
@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--demo", "check", "--state", "/dev/zero"],
            {},
            "check state '/dev/zero' is not a regular file",
        ),
        (
            ["--demo", "check", "--config", "FIFO"],
            {},
            "check configuration 'FIFO' is not a regular file",
        ),
        (
            ["--local", "/dev/zero", "runs", "list"],
            {},
            "the local base '/dev/zero' is not a regular file",
        ),
        (["--local", "FIFO", "runs", "list"], {}, "is not a regular file"),
        (
            ["--demo", "runs", "list"],
            {"JOBTRACK_SCHEMA_FILE": "/dev/zero"},
            "schema file '/dev/zero' is not a regular file",
        ),
        (
            ["--demo", "runs", "list", "--since", "999999999d"],
            {},
            "invalid --since '999999999d': reaches before the year 1",
        ),
        (["--demo", "archive", "--older-than", "99999999999d"], {}, "invalid age '99999999999d'"),
        (["--demo", "runs", "list", "--archive", "BASE"], {}, "is not a jobtrack archive"),
    ],
    ids=[
        "state-device",
        "config-fifo",
        "local-device",
        "local-fifo",
        "schema-device",
        "since-overflow",
        "age-overflow",
        "archive-foreign",
    ],
)
def test_hostile_inputs_are_one_line_naming_the_value(
    base: Path, tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    args = [str(fifo) if a == "FIFO" else str(base) if a == "BASE" else a for a in args]
    result = run(*args, env=env or None)
    assert result.exit_code == 1
    errors = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and expected.replace("FIFO", str(fifo)) in errors[0], result.stderr
    assert "Traceback" not in result.output


def test_ctrl_c_during_an_archive_delete_phase_says_how_to_finish(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "archive-plan.json"
    to = tmp_path / "archive.sqlite"
    args = ["--local", str(base), "-q", "archive", "--older-than", "20d", "--to", str(to)]
    assert run(*args, "-o", str(plan)).exit_code == 2
    rows = json.loads(plan.read_text(encoding="utf-8"))
    total = sum(1 + len(j["clients"]) for j in rows["jobs"])
    real = Repository.delete

    def delete(self: Repository, table: str, ids: Any, *, on_batch: Any = None) -> int:
        def first_then_ctrl_c(n: int) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the delete phase runs
            if on_batch is not None:
                on_batch(n)

        return real(self, table, ids, on_batch=first_then_ctrl_c)

    monkeypatch.setattr(Repository, "delete", delete)
    result = run("--local", str(base), "apply", str(plan))
    assert result.exit_code == 130
    assert (
        f"Interrupted: 10 of {total} row(s) written, {total - 10} not written. Every write is "
        f"idempotent: finish the job with `jobtrack-airtable --local {base} apply {plan}`."
    ) in result.stderr
    monkeypatch.setattr(Repository, "delete", real)
    finished = run("--local", str(base), "apply", str(plan))
    assert finished.exit_code == 0, finished.output
    assert "Archived and deleted" in finished.stdout
    assert (
        run("--local", str(base), "archive", "--older-than", "20d", "--to", str(to)).exit_code == 0
    )
