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
