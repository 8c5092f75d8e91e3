"""Docs that run: every fenced block of README.md and docs/*.md is exercised by the suite.

:data:`COVERAGE` names, for each block (file and first line), the test that runs it or
reproduces its output; a new block without an entry fails
:func:`test_every_fenced_block_is_covered`, and an entry naming a test that does not exist
fails :func:`test_every_coverage_entry_names_a_real_test`.  The blocks this file runs itself:
the CLI sessions of the README (every ``$ jobtrack-airtable …`` line, in order, in a scratch
directory, against a local server holding the demo base, with the exit codes it documents),
the configuration examples (parsed by the loaders that read them), and docs/sync.md's Python.
None of them writes into the clone: its ``git status`` is compared before and after.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from typer.testing import CliRunner

from jobtrack_airtable.cli import app
from jobtrack_airtable.cli.embedded import EMBEDDED_BASE_ID
from jobtrack_airtable.testing import TrackingServer

from .webhook import running_webhook

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
HERE = "tests/test_docs.py"


class Block(NamedTuple):
    file: str
    line: int
    lang: str
    body: str

    @property
    def first(self) -> str:
        return self.body.splitlines()[0] if self.body.strip() else ""


def fenced_blocks() -> list[Block]:
    out = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
            line = text[: m.start()].count("\n") + 1
            out.append(Block(str(path.relative_to(ROOT)), line, m.group(1), m.group(2)))
    return out


#: (file, start of the block's first line) → the test that exercises it.
COVERAGE: dict[tuple[str, str], str] = {
    ("README.md", "python3 -m venv .venv && .venv/bin/pip install -q -e '.[cli]'"): (
        "tests/test_cli_readme.py::test_first_command_line_plans_and_exits_2"
    ),
    ("README.md", "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'"): (
        "tests/test_readme.py::test_readme_first_lines_give_the_two_commands"
    ),
    ("README.md", "$ jobtrack-airtable sync"): f"{HERE}::test_readme_cli_sessions_run",
    ("README.md", "$ jobtrack-airtable runs list --limit 6"): (
        "tests/test_cli_readme.py::test_the_80_column_excerpt_is_80_columns_and_real"
    ),
    ("README.md", "$ jobtrack-airtable doctor --local base.sqlite"): (
        "tests/test_cli_doctor.py::test_readme_shows_the_real_doctor_output"
    ),
    ("README.md", "$ AIRTABLE_API_KEY=patWRONGtoken.0000 jobtrack-airtable doctor"): (
        "tests/test_cli_doctor.py::test_readme_shows_the_real_doctor_output"
    ),
    ("README.md", "$ jobtrack-airtable doctor   # 'Job Tracking' renamed"): (
        "tests/test_cli_doctor.py::test_readme_shows_the_real_doctor_output"
    ),
    ("README.md", "$ JOBTRACK_LIMITER_URL=redis://127.0.0.1:1/0 jobtrack-airtable doctor"): (
        "tests/test_cli_doctor.py::test_readme_shows_the_real_doctor_output"
    ),
    ("README.md", "jobtrack-airtable check [--config FILE]"): (
        "tests/test_ops_check_cli.py::test_exit_codes_of_the_real_process"
    ),
    ("README.md", 'stuck_after = "2h"'): f"{HERE}::test_configuration_examples_load",
    ("README.md", "$ jobtrack-airtable check --config check.toml"): (
        f"{HERE}::test_readme_cli_sessions_run"
    ),
    ("README.md", '{"version": "1.0", "title": "jobtrack-airtable'): (
        f"{HERE}::test_configuration_examples_load"
    ),
    ("README.md", "*/15 * * * * jobtrack-airtable --env-file"): (
        "tests/test_cli_trust.py::test_cron_check_notify_sends_nothing_and_names_the_missing_credentials"
    ),
    ("README.md", "jobtrack-airtable report --html FILE"): (
        "tests/test_ops_report.py::test_report_command_writes_the_page_and_json"
    ),
    ("README.md", 'max_runtime = "3h"'): (
        "tests/test_ops_readme.py::test_the_readme_shows_the_rules_messages"
    ),
    ("README.md", "# check at 12:00 UTC"): (
        "tests/test_ops_readme.py::test_the_readme_shows_the_rules_messages"
    ),
    ("README.md", "jobtrack-airtable metrics [-o FILE]"): (
        "tests/test_ops_readme.py::test_the_readme_shows_the_metrics"
    ),
    ("README.md", "# TYPE jobtrack_job_last_success_timestamp_seconds"): (
        "tests/test_ops_readme.py::test_the_readme_shows_the_metrics"
    ),
    ("docs/benchmarks.md", "| client rows | first sync | unchanged"): (
        f"{HERE}::test_benchmark_commands_parse"
    ),
    ("docs/benchmarks.md", "| client rows | full plan | first sync"): (
        f"{HERE}::test_benchmark_commands_parse"
    ),
    ("docs/benchmarks.md", "planner before (b3653e6)"): (
        "tests/test_sync_plan_pinned.py::test_the_plan_is_byte_for_byte_the_pinned_one"
    ),
    ("docs/mirror.md", "from jobtrack_airtable.admin.mirror import Mirror"): (
        f"{HERE}::test_docs_python_blocks_run"
    ),
    ("docs/mirror.md", "-- "): f"{HERE}::test_docs_python_blocks_run",
    ("README.md", "import asyncio"): (
        "tests/test_integrations.py::test_tracked_job_records_a_coroutine_function"
    ),
    ("README.md", "from celery import Celery"): (
        "tests/test_task_frameworks.py::test_celery_autoretry_continues_the_run"
    ),
    ("README.md", "from jobtrack_airtable.integrations.rq import client_run"): (
        "tests/test_task_frameworks.py::test_rq_retries_continue_the_run"
    ),
    ("README.md", "$ jobtrack-airtable run --stream 3"): (
        "tests/test_integrations.py::test_the_readme_run_example_runs"
    ),
    ("docs/benchmarks.md", "starts k=1"): f"{HERE}::test_benchmark_commands_parse",
    ("docs/benchmarks.md", ".venv/bin/python benchmarks/frames.py"): (
        "tests/test_frames.py::test_a_client_run_write_passes_few_of_our_frames"
    ),
    ("docs/benchmarks.md", "PATCH Client%20Run%20Results: 13 frames"): (
        "tests/test_frames.py::test_a_client_run_write_passes_few_of_our_frames"
    ),
    ("docs/benchmarks.md", "PATCH Client%20Run%20Results: 7 frames"): (
        "tests/test_frames.py::test_a_client_run_write_passes_few_of_our_frames"
    ),
    ("docs/benchmarks.md", "PATCH Client%20Run%20Results: 8 frames"): (
        "tests/test_frames.py::test_a_client_run_write_passes_few_of_our_frames"
    ),
    ("docs/benchmarks.md", "loop_lag penalty="): f"{HERE}::test_benchmark_commands_parse",
    ("README.md", "$ jobtrack-airtable report --html report.html"): (
        f"{HERE}::test_readme_cli_sessions_run"
    ),
    ("README.md", "$ jobtrack-airtable archive --older-than 21d"): (
        f"{HERE}::test_readme_cli_sessions_run"
    ),
    ("README.md", "$ jobtrack-airtable usage"): (
        "tests/test_usage.py::test_usage_is_counted_exactly_in_the_sqlite_store"
    ),
    ("README.md", "from jobtrack_airtable import Tracker"): (
        "tests/test_readme.py::test_readme_python_example_runs"
    ),
    ("README.md", "$ jobtrack-airtable schema pin"): (
        "tests/test_schema_pin.py::test_pin_writes_ids_and_keeps_the_file_as_it_was"
    ),
    ("README.md", "$ jobtrack-airtable schema check"): (
        "tests/test_schema_pin.py::test_schema_check_reports_renames_not_failures"
    ),
    ("README.md", "pip install 'jobtrack-airtable[redis]'"): (
        "tests/test_fleet.py::test_redis_url_without_the_package_names_the_extra"
    ),
    ("README.md", ".venv/bin/jobtrack-airtable local serve --port 8787"): (
        f"{HERE}::test_readme_local_serve_lines_run"
    ),
    ("README.md", "import pytest, requests"): (
        "tests/test_local_plugin.py::test_the_readme_plugin_example_passes_under_pytest"
    ),
    ("README.md", 'const { spawn } = require("node:child_process");'): (
        "tests/test_local_js.py::test_the_readme_airtable_js_example_runs"
    ),
    ("README.md", "# against the local server, into a scratch directory"): (
        f"{HERE}::test_cassette_re_record_command_leaves_the_clone_alone"
    ),
    ("docs/architecture.md", "jobtrack_airtable/"): f"{HERE}::test_architecture_tree_is_real",
    ("docs/benchmarks.md", ".venv/bin/python benchmarks/request_cost.py"): (
        "tests/test_request_cost.py::test_ours_is_within_the_spec_budget"
    ),
    ("docs/benchmarks.md", "Requests for 1 job"): (
        "tests/test_request_cost.py::test_ours_is_within_the_spec_budget"
    ),
    ("docs/benchmarks.md", ".venv/bin/python benchmarks/throughput.py"): (
        f"{HERE}::test_benchmark_commands_parse"
    ),
    (
        "docs/benchmarks.md",
        "running ours (local limiter)",
    ): f"{HERE}::test_benchmark_commands_parse",
    ("docs/benchmarks.md", ".venv/bin/python benchmarks/soak.py"): (
        "tests/test_soak.py::test_small_soak_loses_nothing_under_faults"
    ),
    (
        "docs/benchmarks.md",
        "Soak",
    ): "tests/test_soak.py::test_small_soak_loses_nothing_under_faults",
    ("docs/benchmarks.md", ".venv/bin/python benchmarks/sync_scale.py"): (
        f"{HERE}::test_benchmark_commands_parse"
    ),
    ("docs/benchmarks.md", "| client rows | jobs | requests"): (
        f"{HERE}::test_benchmark_commands_parse"
    ),
    ("docs/benchmarks.md", ".venv/bin/python benchmarks/local_server_throughput.py"): (
        f"{HERE}::test_benchmark_commands_parse"
    ),
    ("docs/benchmarks.md", "rows        list page ms"): f"{HERE}::test_benchmark_commands_parse",
    ("docs/benchmarks.md", ".venv/bin/pytest -q tests/test_request_cost.py"): (
        "tests/test_request_cost.py::test_ours_is_within_the_spec_budget"
    ),
    ("docs/benchmarks.md", ".venv/bin/python benchmarks/chaos.py --quick"): (
        "tests/test_chaos.py::test_quick_chaos_run_holds"
    ),
    ("docs/benchmarks.md", "chaos: "): "tests/test_chaos.py::test_quick_chaos_run_holds",
    ("docs/benchmarks.md", "busy_worker hours=24"): (
        "tests/test_outbox.py::test_a_busy_worker_stays_within_its_monthly_budget"
    ),
    ("docs/benchmarks.md", "add() CPU:"): f"{HERE}::test_benchmark_commands_parse",
    ("docs/benchmarks.md", "scenario 7 sigkill_workers"): (
        "tests/test_chaos.py::test_quick_chaos_run_holds"
    ),
    ("docs/benchmarks.md", "scenario 8 quota_exhausted_then_reset"): (
        "tests/test_chaos.py::test_quick_chaos_run_holds"
    ),
    ("docs/benchmarks.md", "scenario 6 limiter_under_load"): (
        "tests/test_chaos.py::test_quick_chaos_run_holds"
    ),
    ("docs/fleet.md", ".venv/bin/python benchmarks/throughput.py"): (
        f"{HERE}::test_benchmark_commands_parse"
    ),
    ("docs/local-server.md", "from jobtrack_airtable.local import LocalAirtable"): (
        f"{HERE}::test_docs_python_blocks_run"
    ),
    ("docs/local-server.md", "python -m jobtrack_airtable.local serve"): (
        f"{HERE}::test_readme_local_serve_lines_run"
    ),
    ("docs/local-server.md", 'srv.faults.add("429"'): f"{HERE}::test_docs_python_blocks_run",
    ("docs/local-server.md", "seed = 42"): f"{HERE}::test_configuration_examples_load",
    ("docs/sync.md", "from jobtrack_airtable.admin.sync import"): (
        f"{HERE}::test_docs_python_blocks_run"
    ),
    ("docs/sync.md", "Job Tracking"): f"{HERE}::test_sync_output_sample_has_the_rendered_shape",
    ("docs/sync.md", "apply = re-read"): (
        "tests/test_sync_apply.py::test_apply_costs_ceil_k_over_10_per_kind"
    ),
}


def _entry(block: Block) -> str | None:
    for (file, start), test in COVERAGE.items():
        if file == block.file and block.first.startswith(start):
            return test
    # Output blocks whose first line is indented or varies: matched on any line.
    for (file, start), test in COVERAGE.items():
        if file == block.file and any(
            line.strip().startswith(start) for line in block.body.splitlines()[:3]
        ):
            return test
    return None


def test_every_fenced_block_is_covered() -> None:
    missing = [
        f"{b.file}:{b.line} ({b.first[:60]!r})" for b in fenced_blocks() if _entry(b) is None
    ]
    assert not missing, (
        "fenced blocks no test exercises (add a test, then an entry in COVERAGE): "
        + "; ".join(missing)
    )


def test_every_coverage_entry_names_a_real_test() -> None:
    for test in set(COVERAGE.values()):
        file, _, name = test.partition("::")
        source = (ROOT / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {re.escape(name)}\(", source, flags=re.M), test


# -- the blocks this file runs -------------------------------------------------------------


@pytest.fixture
def clone_untouched() -> Iterator[None]:
    def status() -> str:
        return subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    before = status()
    yield
    assert status() == before, "a documented command wrote into the clone"


@pytest.fixture
def demo_server(template: Path, tmp_path: Path) -> Iterator[TrackingServer]:
    data = tmp_path / "served-base.sqlite"
    data.write_bytes(template.read_bytes())
    srv = TrackingServer(
        token="patDocsDemo.0123456789", base_id=EMBEDDED_BASE_ID, data_path=data, rate_limit=None
    ).start()
    yield srv
    srv.stop()


#: README blocks replayed as CLI sessions against the demo base (the others with ``$`` lines
#: need another base: doctor's scenarios, a renamed base, a counted month; their tests are
#: named in COVERAGE).
SESSIONS = (
    "$ jobtrack-airtable sync",
    "$ jobtrack-airtable runs list --limit 6",
    "$ jobtrack-airtable check --config check.toml",
    "$ jobtrack-airtable report --html report.html",
    "$ jobtrack-airtable archive --older-than 21d",
)


def _sessions() -> list[Block]:
    return [b for b in fenced_blocks() if b.file == "README.md" and b.first.startswith(SESSIONS)]


def _commands(block: Block) -> list[tuple[list[str], int | None]]:
    """``(argv, documented exit code or None)`` of each ``$ jobtrack-airtable`` line; ``$ echo
    $?`` documents the previous line's code."""
    lines = block.body.splitlines()
    out: list[tuple[list[str], int | None]] = []
    for i, line in enumerate(lines):
        if line.startswith("$ jobtrack-airtable "):
            command, _, comment = line[2:].partition("#")
            match = re.search(r"exit (\d)", comment)
            out.append((shlex.split(command)[1:], int(match.group(1)) if match else None))
        elif line == "$ echo $?" and out:
            out[-1] = (out[-1][0], int(lines[i + 1]))
    return out


@pytest.mark.parametrize("block", _sessions(), ids=lambda b: f"README.md:{b.line}")
def test_readme_cli_sessions_run(
    block: Block,
    demo_server: TrackingServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clone_untouched: None,
) -> None:
    for var in list(os.environ):
        if var.startswith(("AIRTABLE_", "JOBTRACK_")):
            monkeypatch.delenv(var)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "check.toml").write_text(_block_starting('stuck_after = "2h"').body, "utf-8")
    env = {
        "AIRTABLE_API_KEY": demo_server.token,
        "AIRTABLE_BASE_ID": demo_server.base_id,
        "JOBTRACK_ENDPOINT_URL": demo_server.url,
        "JOBTRACK_RATE_LIMIT": "0",
    }
    with running_webhook() as hook:
        newest = json.loads(
            CliRunner().invoke(app, ["-q", "runs", "list", "-n", "1", "--json"], env=env).stdout
        )["runs"][0]["run_id"]
        for argv, documented in _commands(block):
            argv = [a.replace("127.0.0.1:8765", f"127.0.0.1:{hook.port}") for a in argv]
            if argv[:2] == ["runs", "show"]:
                argv[2] = newest  # the demo data's run IDs move with the clock
            result = CliRunner().invoke(app, argv, env=env)
            expected = documented if documented is not None else (0, 2)
            codes = expected if isinstance(expected, tuple) else (expected,)
            assert result.exit_code in codes, (argv, result.output)
            assert "Traceback" not in result.output


def _block_starting(first: str) -> Block:
    return next(b for b in fenced_blocks() if b.first.startswith(first))


def test_configuration_examples_load(tmp_path: Path) -> None:
    from jobtrack_airtable.admin.ops.config import load_check_config
    from jobtrack_airtable.local.faults import FaultInjector

    check = tmp_path / "check.toml"
    check.write_text(_block_starting('stuck_after = "2h"').body, encoding="utf-8")
    config = load_check_config(check)
    assert config.schedule and config.stuck_after is not None
    faults = tmp_path / "faults.toml"
    faults.write_text(_block_starting("seed = 42").body, encoding="utf-8")
    assert FaultInjector.load(faults) is not None
    body = _block_starting('{"version": "1.0"').body
    assert json.loads(body)["title"].startswith("jobtrack-airtable ")


def test_docs_python_blocks_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clone_untouched: None,
    demo_server: TrackingServer,
) -> None:
    """Every Python block of docs/*.md, in order; a block using ``repo`` (docs/mirror.md)
    gets one on a local server holding the demo base, and the SQL blocks then run against the
    mirror it made."""
    import sqlite3

    from jobtrack_airtable.settings import Settings
    from jobtrack_airtable.transport.client import Connection
    from jobtrack_airtable.transport.repository import Repository

    monkeypatch.chdir(tmp_path)
    blocks = [b for b in fenced_blocks() if b.file.startswith("docs/") and b.lang == "python"]
    assert len(blocks) >= 3
    settings = Settings(
        _env_file=None,
        api_key=demo_server.token,
        base_id=demo_server.base_id,
        endpoint_url=demo_server.url,
        rate_limit=0,
    )
    with Connection.from_settings(settings) as conn:
        scope: dict[str, Any] = {"__name__": "__docs__", "repo": Repository(conn)}
        for block in blocks:
            exec(compile(block.body, f"{block.file}:{block.line}", "exec"), scope)
    mirror_path = scope["mirror"].path
    with sqlite3.connect(mirror_path) as db:
        for block in fenced_blocks():
            if block.lang == "sql":
                assert db.execute(block.body).fetchall() is not None, block.first


def test_readme_local_serve_lines_run(tmp_path: Path, clone_untouched: None) -> None:
    """The dev-tool lines: ``local serve`` starts (a free port instead of 8787), and the
    documented ``runs list`` against it exits 0."""
    from .helpers import run_cli_process, start_serve

    serve, url = start_serve(
        tmp_path, "--token", "dev-token", "--base-id", "appJobtrackLocal1", "--data", "base.db"
    )
    try:
        listed = run_cli_process(
            tmp_path,
            "runs",
            "list",
            JOBTRACK_ENDPOINT_URL=url,
            AIRTABLE_API_KEY="dev-token",
            AIRTABLE_BASE_ID="appJobtrackLocal1",
        )
        assert listed.returncode == 0, listed.stderr
    finally:
        serve.terminate()
        serve.communicate(timeout=30)


# A whole pytest session in a subprocess (a "subprocess suite"): with the slow suite, while
# the default one replays the same cassettes in-process (tests/test_cassettes.py).
@pytest.mark.slow
def test_cassette_re_record_command_leaves_the_clone_alone(
    tmp_path: Path, clone_untouched: None
) -> None:
    import sys

    line = _block_starting("# against the local server, into a scratch").body.splitlines()[1]
    assert line.startswith("JOBTRACK_RECORD_CASSETTES=local JOBTRACK_CASSETTE_DIR=$(mktemp -d)")
    env = {
        **os.environ,
        "JOBTRACK_RECORD_CASSETTES": "local",
        "JOBTRACK_CASSETTE_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            "tests/test_cassettes.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert len(list(tmp_path.glob("*.yaml"))) == 5


def test_architecture_tree_is_real() -> None:
    tree = _block_starting("jobtrack_airtable/").body
    for package in re.findall(r"── ([a-z_]+)/", tree):
        assert (ROOT / "jobtrack_airtable" / package / "__init__.py").exists(), package
    for module in tree.splitlines()[1].strip("├─ ").split():
        assert (ROOT / "jobtrack_airtable" / f"{module}.py").exists(), module


def test_sync_output_sample_has_the_rendered_shape(template: Path) -> None:
    """docs/sync.md's sample output uses the line forms the renderer prints for the demo base."""
    from jobtrack_airtable.admin.sync import plan_sync
    from jobtrack_airtable.cli.embedded import open_backend
    from jobtrack_airtable.cli.render import render_text
    from jobtrack_airtable.settings import Settings
    from jobtrack_airtable.transport.repository import Repository

    def form(line: str) -> str:
        line = re.sub(r"'[^']*'", "'…'", line)
        line = re.sub(r"rec\w{14}", "rec…", line)
        return re.sub(
            r"\d+", "N", line.split(":")[0] if line.startswith("      ") and "→" in line else line
        )

    sample = _block_starting("Job Tracking").body.splitlines()
    with open_backend(Settings(_env_file=None), local=template) as backend:
        real = render_text(plan_sync(Repository(backend.conn))).splitlines()
    real_forms = {form(x) for x in real}
    for line in sample:
        if line.strip() in ("", "..."):
            continue
        if line.startswith("      ") and "→" in line:
            assert any(x.startswith("      ") and "→" in x for x in real), line
        elif line.startswith("Plan: "):
            assert form(line) == form(real[-1])
        elif not line.startswith("      "):
            assert form(line).split(" '")[0] in {f.split(" '")[0] for f in real_forms}, line


def test_benchmark_commands_parse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The benchmark command lines name real scripts and options (``--help`` lists each
    option used); their outputs are what those scripts print (the runs take minutes: the
    small versions run in test_request_cost, test_soak, test_chaos and test_frames)."""
    import runpy

    # Each script's own ``__main__`` with ``--help``, in this process: a subprocess per
    # command line cost ~1.5 s of CPU each for imports this process has already made.
    def help_of(script: str) -> str:
        monkeypatch.setattr("sys.argv", [str(ROOT / script), "--help"])
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(str(ROOT / script), run_name="__main__")
        out, err = capsys.readouterr()
        assert exited.value.code in (0, None), (script, err)
        return out

    # benchmarks/outbox.py is named in the prose before its output block, not in a command.
    commands = {"benchmarks/outbox.py": {"--adds"}}
    for block in fenced_blocks():
        for line in block.body.splitlines():
            match = re.match(r"\.venv/bin/python (benchmarks/\w+\.py)(.*)", line.strip())
            if match:
                script, rest = match.groups()
                commands.setdefault(script, set()).update(re.findall(r"(--[a-z-]+)", rest))
    # frames.py takes no options and --help would run it: its run is test_frames'.
    assert commands.pop("benchmarks/frames.py") == set()
    assert len(commands) >= 6, commands
    for script, options in sorted(commands.items()):
        helped = help_of(script)
        for option in sorted(options):
            assert option in helped, (script, option)
