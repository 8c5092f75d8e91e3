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


WORKER_SNIPPET = """
from decimal import Decimal

from jobtrack_airtable import Tracker


def work(tracker: Tracker) -> None:
    with tracker.job(stream=1) as job, job.client("Guy-Wilson") as run:
        run.add(profiles_examined=10, profiles_scored=9, profile_tokens=900)
        run.add(posts_examined=4, posts_scored=3, post_tokens=120, posts_harvested=8)
        run.add(profiles_submitted=2)
        run.set(apify_costs=0.42, apify_run_id=None, client_name="Guy Wilson")
        run.set(apify_costs=Decimal("1.25"))
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_metric_names_are_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``run.add``/``run.set`` take named, typed metrics: every README metric type-checks,
    and a misspelt name or a wrong type is a type error (and an IDE completes the names)."""
    monkeypatch.chdir(ROOT)
    good = tmp_path / "good.py"
    good.write_text(WORKER_SNIPPET)
    stdout, stderr, status = mypy_api.run([str(good)])
    assert status == 0, stdout + stderr
    bad = tmp_path / "bad.py"
    bad.write_text(
        WORKER_SNIPPET
        + "        run.add(profile_examined=10)\n"
        + '        run.set(apify_costs="cheap")\n'
    )
    stdout, _, status = mypy_api.run([str(bad)])
    assert status == 1
    assert 'Unexpected keyword argument "profile_examined" for "add"' in stdout
    assert 'did you mean "profiles_examined"' in stdout
    assert 'Argument "apify_costs" to "set" of "ClientRun" has incompatible type "str"' in stdout
