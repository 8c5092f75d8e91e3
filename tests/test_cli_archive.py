"""``jobtrack-airtable archive`` / ``apply`` of an archive plan, in-process against an embedded
local base seeded with the demo dataset (jobs spread over the last 30 days)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from jobtrack_airtable.admin.archive import archived_records
from jobtrack_airtable.cli import app, embedded
from jobtrack_airtable.cli.embedded import open_backend
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.transport.repository import Repository


@pytest.fixture
def base(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("AIRTABLE_API_KEY", "AIRTABLE_BASE_ID", "JOBTRACK_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(embedded, "default_local_path", lambda: tmp_path / "user" / "b.json")
    path = tmp_path / "base.json"
    shutil.copyfile(template, path)
    return path


def local(base: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["--local", str(base), *args], input=input)


def test_plan_then_apply_then_already_applied(base: Path, tmp_path: Path) -> None:
    planned = local(base, "archive", "--older-than", "20d", "--to", "a.sqlite", "-o", "p.json")
    assert planned.exit_code == 2, planned.output
    assert "to move to" in planned.stdout
    plan = json.loads((tmp_path / "p.json").read_text())
    assert plan["kind"] == "archive" and plan["jobs"]
    keys = {j["job"]["key"] for j in plan["jobs"]}

    applied = local(base, "apply", "p.json")
    assert applied.exit_code == 0, applied.output
    assert f"Archived and deleted {len(keys)} job(s)" in applied.stdout
    assert {r["fields"]["Run ID"] for r in archived_records(tmp_path / "a.sqlite", "jobs")} == keys

    again = local(base, "apply", "p.json")
    assert again.exit_code == 0
    assert "Already applied" in again.stdout

    nothing = local(base, "archive", "--older-than", "20d", "--to", "a.sqlite", "--json")
    assert nothing.exit_code == 0
    assert json.loads(nothing.stdout)["jobs"] == []


def test_archive_json_names_the_embedded_base_and_still_loads_as_a_plan(
    base: Path, tmp_path: Path
) -> None:
    shown = local(base, "archive", "--older-than", "20d", "--to", "a.sqlite", "--json")
    assert shown.exit_code == 2, shown.output
    doc = json.loads(shown.stdout)
    assert doc["base_kind"] == "embedded"
    assert doc["kind"] == "archive" and doc["jobs"]
    (tmp_path / "shown.json").write_text(shown.stdout)
    from jobtrack_airtable.admin.archive import load_archive_plan

    assert len(load_archive_plan(tmp_path / "shown.json").jobs) == len(doc["jobs"])


def test_a_stale_archive_plan_is_refused(base: Path, tmp_path: Path) -> None:
    assert local(base, "archive", "--older-than", "20d", "-o", "p.json").exit_code == 2
    plan = json.loads((tmp_path / "p.json").read_text())
    client = plan["jobs"][-1]["clients"][0]
    with open_backend(Settings(_env_file=None), local=base) as backend:
        Repository(backend.conn).update_by_id(
            "client_runs", [(client["record_id"], {"system_notes": "edited after the plan"})]
        )
    refused = local(base, "apply", "p.json")
    assert refused.exit_code == 1
    assert "nothing was archived or deleted" in refused.stderr
    assert client["key"] in refused.stderr
    assert archived_records(plan["archive_path"], "jobs") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "invalid age 'soon'"),
        (["--older-than", "9d", "--yes"], "--yes only makes sense with --apply"),
        (["--older-than", "9d", "--to", "missing-dir/a.sqlite"], "does not exist"),
    ],
)
def test_bad_options_are_one_line_errors(base: Path, args: list[str], message: str) -> None:
    result = local(base, "archive", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the notice naming the base, the error


def test_runs_list_and_show_read_the_archive(base: Path, tmp_path: Path) -> None:
    assert (
        local(base, "archive", "--older-than", "20d", "--to", "a.sqlite", "-o", "p.json").exit_code
        == 2
    )
    plan = json.loads((tmp_path / "p.json").read_text())
    assert local(base, "apply", "p.json").exit_code == 0
    keys = sorted((j["job"]["key"] for j in plan["jobs"]), reverse=True)

    listed = local(base, "runs", "list", "--archive", "a.sqlite", "--json", "-n", "100")
    assert listed.exit_code == 0, listed.output
    assert [r["run_id"] for r in json.loads(listed.stdout)["runs"]] == keys
    # The base no longer has them.
    live = json.loads(local(base, "runs", "list", "--json", "-n", "100").stdout)["runs"]
    assert not {r["run_id"] for r in live} & set(keys)

    job = plan["jobs"][0]
    shown = local(base, "runs", "show", job["job"]["key"], "--archive", "a.sqlite", "--json")
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.stdout)
    assert len(detail["clients"]) == len(job["clients"])
    missing = local(base, "runs", "show", "250101-000000", "--archive", "a.sqlite")
    assert missing.exit_code == 1 and "no run '250101-000000'" in missing.stderr
