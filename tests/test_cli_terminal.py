"""The CLI in a real pseudo-terminal (pexpect): tables at 80 and 160 columns never cut a number
or a status, colours go with NO_COLOR, piped output has no escapes, long plans go through the
pager, and the confirmation prompt (issue 14 items 1, 5 and 8)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest

SCRIPT = Path(sys.executable).parent / "jobtrack-airtable"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: An SGR sequence that sets a foreground colour (30-37, 90-97, 38;…).
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])(?:;[0-9;]*)?m")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRTABLE_", "JOBTRACK_", "COLUMNS", "LINES", "NO_COLOR", "PAGER"))
        and k not in ("FORCE_COLOR", "TERM", "LESS", "MANPAGER")
    }
    env.update(
        TERM="xterm-256color",
        XDG_DATA_HOME=str(tmp_path / "xdg"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        **extra,
    )
    return env


def in_terminal(
    tmp_path: Path, *args: str, cols: int = 80, rows: int = 200, **env: str
) -> tuple[int, str]:
    """Run the CLI in a pty of ``cols`` x ``rows``; (exit status, output with CRLF → LF)."""
    child = pexpect.spawn(
        str(SCRIPT),
        list(args),
        dimensions=(rows, cols),
        env=_env(tmp_path, **env),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, (child.before or "").replace("\r\n", "\n")


def piped(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:,}"


def _compact(text: str) -> str:
    return "".join(text.split())


def _rows(lines: list[str]) -> dict[str, str]:
    """``{first cell: row line}``; a first cell folded onto continuation lines (lines with
    nothing but the rest of that cell) is joined back."""
    rows: dict[str, str] = {}
    current: list[str] = []
    line_of_row = ""
    for line in lines[1:]:
        if not line.strip():
            continue
        if line[0] != " " and len(line.split()) == 1 and current:
            current.append(line.strip())  # continuation of a folded first cell
            continue
        if current:
            rows["".join(current)] = line_of_row
        current, line_of_row = [line.split()[0]], line
    if current:
        rows["".join(current)] = line_of_row
    return rows


def _check_runs_table(text: str, runs: list[dict[str, Any]], cols: int) -> None:
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= cols for line in lines), max(lines, key=len)
    rows = _rows(lines)
    for run in runs:
        line = rows[run["run_id"]]  # a long legacy ID may fold, never be cut
        tokens = line.split()
        assert run["status"].split()[0] in tokens, line
        agg = run["aggregates"]
        assert _num(agg.get("clients_processed")) in tokens, line
        assert _num(agg.get("clients_with_errors")) in tokens, line


# 160 columns in a real terminal runs with the slow suite: the in-process test below covers
# that width (and seven more) for the default suite, with the same layout code.
@pytest.mark.parametrize("cols", [80, pytest.param(160, marks=pytest.mark.slow), 200])
def test_runs_list_is_truthful_at_80_and_160_columns(base: Path, tmp_path: Path, cols: int) -> None:
    from typer.testing import CliRunner

    from jobtrack_airtable.cli import app

    # The expected values, in-process: the terminal run below is what is under test.
    runs = json.loads(
        CliRunner()
        .invoke(app, ["-q", "--local", str(base), "runs", "list", "-n", "40", "--json"])
        .stdout
    )
    status, text = in_terminal(
        tmp_path, "-q", "--local", str(base), "runs", "list", "-n", "40", cols=cols
    )
    assert status == 0, text
    plain = ANSI.sub("", text)
    _check_runs_table(plain, runs["runs"], cols)
    assert "…" not in plain
    # A legacy status ('Success → Completed') wraps in its cell instead of widening the
    # column: at 80 columns too, Stream and Duration stay.
    assert "Stream" in plain and "Duration" in plain and "hidden at this width" not in plain


# The notice does not depend on the width: 200 columns run with the slow suite.
@pytest.mark.parametrize("cols", [80, pytest.param(200, marks=pytest.mark.slow)])
def test_the_implicit_demo_base_is_named_even_with_quiet(tmp_path: Path, cols: int) -> None:
    status, text = in_terminal(tmp_path, "-q", "runs", "list", "-n", "3", cols=cols, NO_COLOR="1")
    assert status == 0, text
    assert not COLOUR.search(text)
    assert "Using the embedded local base at " in ANSI.sub("", text)
    result = piped(tmp_path, "-q", "runs", "list", "-n", "3")
    assert result.returncode == 0
    assert result.stderr.startswith("Using the embedded local base at ")
    assert "no AIRTABLE_API_KEY/AIRTABLE_BASE_ID set" in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and all(line == line.rstrip() for line in lines)  # no padding


@pytest.mark.slow
def test_runs_show_keeps_every_number_at_80_columns(base: Path, tmp_path: Path) -> None:
    runs = json.loads(
        piped(tmp_path, "--local", str(base), "runs", "list", "-n", "40", "--json").stdout
    )
    checked = 0
    for run in runs["runs"][2:8]:
        detail = json.loads(
            piped(
                tmp_path, "-q", "--local", str(base), "runs", "show", run["run_id"], "--json"
            ).stdout
        )
        if not detail["clients"]:
            continue
        status, text = in_terminal(
            tmp_path, "-q", "--local", str(base), "runs", "show", run["run_id"]
        )
        assert status == 0, text
        plain = ANSI.sub("", text)
        assert all(len(line.rstrip()) <= 80 for line in plain.splitlines())
        assert "…" not in plain
        compact = _compact(plain)
        for client in detail["clients"]:
            m = client["metrics"]
            profiles = (
                f"{_num(m.get('profiles_scored') or 0)}/{_num(m.get('profiles_examined') or 0)}"
            )
            assert profiles in compact, (run["run_id"], client["client_id"], profiles)
            assert _compact(client["status"] or "—") in compact
            if client.get("error_details"):
                assert _compact(client["error_details"]) in compact  # wrapped, not cut
        for value in detail["computed"].values():
            if isinstance(value, int):
                assert _num(value) in compact
        checked += 1
    assert checked >= 4


@pytest.mark.slow
def test_no_color_and_piped_output(base: Path, tmp_path: Path) -> None:
    status, coloured = in_terminal(tmp_path, "-q", "--local", str(base), "runs", "list", cols=160)
    assert status == 0 and COLOUR.search(coloured)  # the check below can fail
    status, plain = in_terminal(
        tmp_path, "-q", "--local", str(base), "runs", "list", cols=160, NO_COLOR="1"
    )
    assert status == 0 and not COLOUR.search(plain)
    result = piped(tmp_path, "--local", str(base), "runs", "list")
    assert result.returncode == 0
    assert "\x1b" not in result.stdout and "\x1b" not in result.stderr
    assert ANSI.sub("", plain).split() == result.stdout.split()


@pytest.mark.slow
def test_long_plan_goes_through_the_pager_on_a_terminal(base: Path, tmp_path: Path) -> None:
    paged = tmp_path / "paged.txt"
    pager = f"cat > {paged}"
    status, text = in_terminal(
        tmp_path, "-q", "--local", str(base), "sync", rows=30, cols=120, PAGER=pager
    )
    assert status == 2, text
    content = ANSI.sub("", paged.read_text(encoding="utf-8"))
    assert content.rstrip().splitlines()[-1].startswith("Plan: ")
    # The plan went through the pager; the summary is printed again once it exits (quitting
    # less early must not hide the conclusion).
    assert ANSI.sub("", text).strip().splitlines() == [content.rstrip().splitlines()[-1]]
    paged.unlink()
    status, text = in_terminal(
        tmp_path, "-q", "--local", str(base), "sync", "--no-pager", rows=30, PAGER=pager
    )
    assert status == 2 and "Plan: " in text and not paged.exists()
    result = piped(tmp_path, "-q", "--local", str(base), "sync", PAGER=pager)
    assert result.returncode == 2 and "Plan: " in result.stdout and not paged.exists()


@pytest.mark.slow
@pytest.mark.parametrize("cols", [80, 200])
def test_a_pager_that_cannot_start_leaves_the_plan_on_the_terminal(
    base: Path, tmp_path: Path, cols: int
) -> None:
    status, text = in_terminal(
        tmp_path, "-q", "--local", str(base), "sync", rows=30, cols=cols, PAGER="no-such-pager"
    )
    plain = ANSI.sub("", text)
    assert status == 2, plain
    assert "Warning: the pager 'no-such-pager' could not start; printing the plan." in plain
    assert "Job Tracking" in plain and "Client Run Results" in plain
    assert plain.rstrip().splitlines()[-1].startswith("Plan: ")


def _spawn_apply(base: Path, tmp_path: Path) -> pexpect.spawn:
    return pexpect.spawn(
        str(SCRIPT),
        ["--local", str(base), "sync", "--apply"],
        dimensions=(200, 120),
        env=_env(tmp_path),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
    )


@pytest.mark.slow
def test_the_confirmation_prompt(base: Path, tmp_path: Path) -> None:
    before = base.read_bytes()
    child = _spawn_apply(base, tmp_path)
    child.expect(r"Apply it to the embedded local base at .*\? \[y/N\]")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1  # declined: like Terraform's cancelled apply
    assert "Apply cancelled: nothing was written." in (child.before or "")
    assert base.read_bytes() == before

    child = _spawn_apply(base, tmp_path)
    child.expect(r"\[y/N\]")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Applied: " in (child.before or "")


@pytest.mark.parametrize("cols", [40, 56, 64, 72, 80, 100, 120, 160])
def test_runs_tables_at_many_widths_in_process(base: Path, cols: int) -> None:
    # The same layout code without a terminal (COLUMNS sets the width of piped output):
    # every width from a vertical layout to the full table keeps every value.
    from typer.testing import CliRunner

    from jobtrack_airtable.cli import app

    runner = CliRunner()
    listing = json.loads(
        runner.invoke(
            app, ["-q", "--local", str(base), "runs", "list", "-n", "40", "--json"]
        ).stdout
    )
    result = runner.invoke(
        app, ["-q", "--local", str(base), "runs", "list", "-n", "40"], env={"COLUMNS": str(cols)}
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert all(len(line.rstrip()) <= cols for line in lines)
    assert "…" not in result.stdout
    if lines[0].startswith("Run ID:"):  # vertical layout: one "Header: value" per line
        values = {line.split(":", 1)[1].strip() for line in lines if ":" in line}
        for run in listing["runs"]:
            assert run["run_id"] in _compact(result.stdout)
            assert run["status"] in values or any(run["status"] in v for v in values)
    else:
        _check_runs_table(result.stdout, listing["runs"], cols)


@pytest.mark.slow
def test_ctrl_c_in_a_real_terminal_stops_between_batches(base: Path, tmp_path: Path) -> None:
    """A real process in a pty, a real SIGINT from the terminal (^C) while a write is in
    flight (each PATCH held 1 s by the local server's fault injector): the batch finishes,
    the rest is not sent, and the command that finishes the job does finish it."""
    from jobtrack_airtable.cli.embedded import EMBEDDED_BASE_ID
    from jobtrack_airtable.testing import TrackingServer

    srv = TrackingServer(
        token="patCtrlC.0123456789", base_id=EMBEDDED_BASE_ID, data_path=base, rate_limit=None
    ).start()
    srv.faults.add("delay", delay=1.0, method="PATCH", times=1000)
    env = {
        "AIRTABLE_API_KEY": srv.token,
        "AIRTABLE_BASE_ID": srv.base_id,
        "JOBTRACK_ENDPOINT_URL": srv.url,
        "JOBTRACK_RATE_LIMIT": "0",
    }
    try:
        child = pexpect.spawn(
            str(SCRIPT),
            ["sync", "--apply", "--yes"],
            dimensions=(40, 120),
            env=_env(tmp_path, **env),
            cwd=str(tmp_path),
            encoding="utf-8",
            timeout=120,
        )
        child.expect("Applying")  # the first batch is in flight
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
        text = ANSI.sub("", (child.before or "").replace("\r\n", "\n"))
        assert child.exitstatus == 130, text
        match = re.search(r"Interrupted: (\d+) of (\d+) row\(s\) written, (\d+) not written", text)
        assert match, text
        written, total, left = map(int, match.groups())
        assert 0 < written < total and written + left == total
        assert "finish the job with `jobtrack-airtable sync --apply`" in text
        # Exactly the rows reported were sent, in whole batches: nothing after the ^C.
        sent = [r for r in srv.request_log.entries if r.method == "PATCH"]
        assert sum(len(r.body["records"]) for r in sent) == written
        assert all(r.status == 200 for r in sent)
        srv.faults.clear()
        finish = piped(tmp_path, "sync", "--apply", "--yes", **env)
        assert finish.returncode == 0, finish.stderr
        assert piped(tmp_path, "sync", **env).returncode == 0
    finally:
        srv.stop()
