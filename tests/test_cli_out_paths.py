"""An output path that cannot be written is one line naming it (and what to do), before any
request, for every command that writes a file -- never a traceback or a temporary file's name.

Sessions run as root, so "a directory without write permission" cannot be made here; a parent
that is a regular file fails the same way for root and anyone else.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobtrack_airtable.cli import app

from .helpers import clear_settings_env


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "-o", "afile/plan.json"],
        ["archive", "--older-than", "20d", "-o", "afile/plan.json"],
        ["metrics", "-o", "afile/jobtrack.prom"],
    ],
    ids=lambda a: a[0],
)
def test_an_output_under_a_regular_file_is_one_line_naming_it(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_settings_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a directory\n")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "afile" in errors[0]
    assert "Traceback" not in result.output
    assert ".tmp" not in errors[0]
    assert (tmp_path / "afile").read_text() == "not a directory\n"
