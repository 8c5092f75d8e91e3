"""The README's admin section says what the CLI does: every row of its exit-code table is run
and its code checked (and every scenario here has a row), the 80-column excerpt is 80 columns
wide and has the real table header, and the first command line's promise (exit 2) holds."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobtrack_airtable.cli import _core, app, embedded
from jobtrack_airtable.cli.embedded import open_backend
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.transport.repository import Repository

README = Path(__file__).resolve().parent.parent / "README.md"


def _admin_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## For admins: the CLI") : text.index("## For workers")]


def _exit_code_table() -> dict[tuple[str, str], int]:
    section = _admin_section()
    table = section[section.index("<!-- exit-codes -->") : section.index("<!-- /exit-codes -->")]
    rows: dict[tuple[str, str], int] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("command", "---") or set(cells[0]) <= {"-"}:
            continue
        rows[(cells[0].strip("`"), cells[1])] = int(cells[2])
    return rows


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AIRTABLE_API_KEY", "AIRTABLE_BASE_ID", "JOBTRACK_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    default = tmp_path / "user-data" / "local-base.sqlite"
    monkeypatch.setattr(embedded, "default_local_path", lambda: default)


class Scenario:
    def __init__(self, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.base, self.tmp, self.mp = base, tmp_path, monkeypatch

    def cli(self, *args: str, input: str | None = None) -> int:
        result = CliRunner().invoke(app, ["-q", "--local", str(self.base), *args], input=input)
        return result.exit_code

    def plan(self) -> Path:
        path = self.tmp / "plan.json"
        assert self.cli("sync", "-o", str(path)) == 2
        return path

    def consistent(self) -> None:
        assert self.cli("sync", "--apply", "--yes") == 0


def _changed_since(s: Scenario) -> int:
    path = s.plan()
    plan = json.loads(path.read_text(encoding="utf-8"))
    target = next(r for r in plan["records"] if r["table"] == "jobs" and r["action"] == "update")
    with open_backend(Settings(_env_file=None), local=s.base) as backend:
        Repository(backend.conn).update_by_id(
            "jobs", [(target["record_id"], {"system_notes": "edited by hand"})]
        )
    return s.cli("apply", str(path))


def _declined(s: Scenario) -> int:
    s.mp.setattr(_core, "stdin_is_tty", lambda: True)
    return s.cli("sync", "--apply", input="n\n")


def _already_applied(s: Scenario) -> int:
    path = s.plan()
    assert s.cli("apply", str(path)) == 0
    return s.cli("apply", str(path))


def _archive_applied(s: Scenario) -> int:
    plan = s.tmp / "archive-plan.json"
    to = str(s.tmp / "a.sqlite")
    assert s.cli("archive", "--older-than", "20d", "--to", to, "-o", str(plan)) == 2
    return s.cli("apply", str(plan))


def _schema_differs(s: Scenario) -> int:
    from .helpers import drop_field

    drop_field(s.base, "Job Tracking", "Stream")
    return s.cli("schema", "check")


def _cron_notify(s: Scenario) -> int:
    # No --local: what cron gets without credentials (the full cron run is in test_cli_trust).
    return CliRunner().invoke(app, ["check", "--notify", "json://127.0.0.1:9/never"]).exit_code


def _fingerprint_less(s: Scenario) -> int:
    from jobtrack_airtable.admin.sync import plan_checksum
    from jobtrack_airtable.admin.sync.model import plan_from_data

    path = s.plan()
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.pop("checksum")
    doc["guards"]["fingerprints"]["jobs"] = {}
    doc["checksum"] = plan_checksum(plan_from_data(doc))
    path.write_text(json.dumps(doc), encoding="utf-8")
    return s.cli("apply", str(path))


def _doctor_problem(s: Scenario) -> int:
    from .helpers import drop_field

    drop_field(s.base, "Job Tracking", "Stream")
    return s.cli("doctor")


def _outbox_waiting(s: Scenario) -> int:
    from jobtrack_airtable.testing import TrackingServer

    from .conftest import TEST_BASE_ID, TEST_TOKEN
    from .test_outbox import _cli, _left_refused

    srv = TrackingServer(token=TEST_TOKEN, base_id=TEST_BASE_ID, rate_limit=None).start()
    try:
        _left_refused(srv)  # four closed runs a revoked token left on this machine
        return int(_cli(srv, s.mp, "outbox", "status").exit_code)
    finally:
        srv.stop()


SCENARIOS: dict[tuple[str, str], Callable[[Scenario], int]] = {
    ("sync", "changes planned"): lambda s: s.cli("sync"),
    (
        "sync",
        "nothing to change (rows that only need attention are reported, not changed)",
    ): lambda s: (s.consistent(), s.cli("sync"))[1],
    ("sync --apply --yes", "applied"): lambda s: s.cli("sync", "--apply", "--yes"),
    (
        "sync --apply",
        "declined at the prompt (like Terraform's cancelled apply: nothing written)",
    ): _declined,
    ("sync --apply", "no terminal to ask and no `--yes` (refused before reading)"): lambda s: s.cli(
        "sync", "--apply"
    ),
    ("apply FILE", "applied"): lambda s: s.cli("apply", str(s.plan())),
    ("apply FILE", "already applied (nothing written)"): _already_applied,
    (
        "apply FILE",
        "base changed since the plan (refused, nothing written, rows listed)",
    ): _changed_since,
    ("show FILE", "plan shown"): lambda s: s.cli("show", str(s.plan())),
    ("schema check", "base matches the schema"): lambda s: s.cli("schema", "check"),
    ("schema check", "differences found"): _schema_differs,
    ("runs show RUN_ID", "no such run"): lambda s: s.cli("runs", "show", "200101-000000"),
    (
        "archive --older-than AGE",
        "old finished jobs to archive (plan shown, nothing changed)",
    ): lambda s: s.cli("archive", "--older-than", "20d", "--to", str(s.tmp / "a.sqlite")),
    ("archive --older-than AGE", "nothing old enough"): lambda s: s.cli(
        "archive", "--older-than", "1000d", "--to", str(s.tmp / "a.sqlite")
    ),
    ("apply FILE", "an archive plan: archived, read back, deleted"): _archive_applied,
    ("usage", "projections within the plan's limits"): lambda s: s.cli("usage"),
    ("check", "problems found (a stuck run, failures, a missed schedule)"): lambda s: s.cli(
        "check", "--state", str(s.tmp / "check-state.json")
    ),
    (
        "check --notify URL",
        "no credentials (cron: run from `/`, fresh HOME): nothing sent, "
        "the missing variables named",
    ): _cron_notify,
    (
        "apply FILE",
        "an update or delete without the fingerprint of the row it read (refused, nothing written)",
    ): _fingerprint_less,
    ("doctor", "healthy (warnings allowed)"): lambda s: s.cli("doctor"),
    ("outbox status", "nothing waiting for Airtable"): lambda s: s.cli("outbox", "status"),
    ("run -- CMD", "the command succeeded (the job completed)"): lambda s: s.cli(
        "run", "--stream", "3", "--", sys.executable, "-c", "pass"
    ),
    ("run -- CMD", "the command failed: its exit code is run's (the job failed)"): lambda s: s.cli(
        "run", "--stream", "3", "--", sys.executable, "-c", "raise SystemExit(3)"
    ),
    ("outbox status", "changes waiting for Airtable (for cron)"): _outbox_waiting,
    ("doctor", "a problem found (each with its fix)"): _doctor_problem,
    ("any command", "usage error (unknown option, bad value)"): lambda s: s.cli(
        "runs", "list", "--limit", "many"
    ),
}


def test_every_scenario_has_a_row_and_every_row_a_scenario() -> None:
    assert set(_exit_code_table()) == set(SCENARIOS)


@pytest.mark.parametrize("case", list(SCENARIOS), ids=lambda c: f"{c[0]}: {c[1][:30]}")
def test_exit_code_table_matches_behaviour(
    case: tuple[str, str],
    template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = tmp_path / "base.json"
    shutil.copyfile(template, base)
    documented = _exit_code_table()[case]
    assert SCENARIOS[case](Scenario(base, tmp_path, monkeypatch)) == documented


def test_the_80_column_excerpt_is_80_columns_and_real(template: Path, tmp_path: Path) -> None:
    section = _admin_section()
    blocks = re.findall(r"```text\n(.*?)```", section, flags=re.S)
    excerpt = next(b for b in blocks if "$ jobtrack-airtable runs list --limit 6" in b)
    table_lines = [
        line
        for line in excerpt.splitlines()
        if not line.startswith(("$ ", "Using the embedded", "…"))
    ]
    assert all(len(line) <= 80 for line in table_lines), max(table_lines, key=len)
    base = tmp_path / "base.json"
    shutil.copyfile(template, base)
    result = CliRunner().invoke(
        app, ["-q", "--local", str(base), "runs", "list", "--limit", "6"], env={"COLUMNS": "80"}
    )
    real = result.stdout.splitlines()
    shown = excerpt.splitlines()
    header = next(line for line in shown if line.startswith("Run ID"))
    assert real[0].rstrip() == header
    assert real[-1] == next(line for line in shown if "run(s), newest first" in line)
    # Same shape line for line (the demo data's times move with the clock; the layout does not).
    start = shown.index(header)
    assert [len(x.rstrip()) for x in real] == [len(x) for x in shown[start : start + len(real)]]


def test_first_command_line_plans_and_exits_2() -> None:
    # README line 4: `... && .venv/bin/jobtrack-airtable sync` "exits 2 and prints what it
    # would fix" on a fresh machine (the embedded demo base).
    head = README.read_text(encoding="utf-8").splitlines()[:14]
    assert head[3].endswith("&& .venv/bin/jobtrack-airtable sync")
    assert "it exits 2" in " ".join(head)
    result = CliRunner().invoke(app, ["sync"])
    assert result.exit_code == 2
    assert result.stdout.rstrip().splitlines()[-1].startswith("Plan: ")
