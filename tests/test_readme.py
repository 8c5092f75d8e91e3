"""The README's Python examples run as written (docs with runnable examples)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples() -> None:
    assert _python_blocks()


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = _python_blocks()[index]
    exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    if "print(" in code:
        assert out.strip()
    # A print line documented with "# e.g. <output>" must print that, up to the run IDs and
    # timestamps that change with the clock.
    for example in re.findall(r"print\(.*#\s*e\.g\.\s*(.+)$", code, flags=re.M):
        assert _shape(out.strip().splitlines()[-1]) == _shape(example.strip())


def _shape(line: str) -> list[str]:
    """The line's words, with run IDs (``YYMMDD-HHMMSS``) replaced by a placeholder."""
    return [re.sub(r"^\d{6}-\d{6}$", "<run id>", word) for word in line.split()]


def test_readme_first_lines_give_the_two_commands() -> None:
    head = README.read_text().splitlines()[:12]
    text = "\n".join(head)
    assert "jobtrack-airtable sync" in text
    assert ".venv/bin/pytest" in text
    ci = (README.parent / ".ci" / "run").read_text()
    test_line = next(line for line in head if "pytest" in line)
    assert test_line.strip() in ci


def test_readme_metric_table_matches_the_schema() -> None:
    """The README's metric table lists every metric ``run.add``/``run.set`` takes, with the
    field it is written to and the job field it sums into, as config/schema.toml says."""
    from typing import get_type_hints

    from jobtrack_airtable.metrics import JOB_SUM_KEYS, METRIC_KEYS, MetricValues
    from jobtrack_airtable.schema import load_schema

    schema = load_schema()
    row = r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$"
    table = re.findall(row, README.read_text(), flags=re.M)
    documented = {name: (field.strip(), job.strip()) for name, field, _, job in table}
    assert list(documented) == list(METRIC_KEYS)
    assert list(get_type_hints(MetricValues)) == list(METRIC_KEYS)
    for name, (field, job) in documented.items():
        assert field == schema.client_runs.name_of(name)
        if name in JOB_SUM_KEYS:
            assert job == schema.jobs.name_of(name)
        else:
            assert job.startswith("—")
