"""The top-level API stays small and documented (issue 13)."""

from __future__ import annotations

import subprocess
import sys

import jobtrack_airtable


def test_top_level_is_small_and_every_name_is_documented_with_an_example() -> None:
    names = jobtrack_airtable.__all__
    assert len(names) <= 15
    doc = jobtrack_airtable.__doc__ or ""
    for name in names:
        assert hasattr(jobtrack_airtable, name), name
        assert f"{name}`" in doc or f"``{name}``" in doc, f"{name} is not documented"
    # Exceptions live in jobtrack_airtable.errors, not at the top level.
    assert not [n for n in names if n.endswith("Error")]


def test_importing_the_worker_core_loads_no_cli_or_server_code() -> None:
    code = (
        "import sys, jobtrack_airtable, jobtrack_airtable.worker.tracker, "
        "jobtrack_airtable.worker.commit; "
        "print(sorted(m for m in ('werkzeug', 'typer', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
