"""The package type-checks: mypy, configured by ``[tool.mypy]`` in pyproject.toml, reports no
error (the package ships ``py.typed``, so its annotations are part of its API).

A cold run (no ``.mypy_cache``, as in CI) takes a few seconds; later runs reuse the cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip(
    "mypy.api", reason="mypy is in the test extra: pip install -e '.[test]'"
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_mypy_reports_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # From the repo root, so that mypy reads pyproject.toml's [tool.mypy] (files, plugins).
    monkeypatch.chdir(ROOT)
    stdout, stderr, status = mypy_api.run([])
    assert status == 0, f"mypy exit status {status}\n{stdout}{stderr}"
