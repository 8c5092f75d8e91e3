"""The pytest plugin (entry point ``pytest11``): the ``local_airtable_server`` fixture and the
``local_airtable`` marker, run in a separate pytest session as a user's project would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_plugin_example_passes_under_pytest(pytester: pytest.Pytester) -> None:
    [example] = [
        block
        for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
        if "local_airtable_server" in block
    ]
    pytester.makepyfile(test_user_project=example)
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1)


def test_fixture_defaults_markers_request_log_and_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user_project="""
import pytest, requests

def test_defaults(local_airtable_server):
    srv = local_airtable_server
    assert srv.store.tables(srv.base_id) == []  # an empty base, no rate limit
    assert srv.rate_limiter.rate is None
    assert srv.api().whoami()["id"].startswith("usr")
    assert srv.request_log.count() == 1

T = {"name": "T", "fields": [{"name": "K", "type": "singleLineText"}]}

@pytest.mark.local_airtable(tables=[T], base_id="appUserProject001")
def test_marker(local_airtable_server):
    srv = local_airtable_server
    assert srv.base_id == "appUserProject001"
    srv.faults.add("drop", method="POST")
    with pytest.raises(requests.ConnectionError):
        srv.table("T").create({"K": "a"})
    assert srv.table("T").create({"K": "b"})["fields"] == {"K": "b"}
    assert srv.faults.counts == {"drop": 1}
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=2)


def test_the_plugin_is_registered_by_entry_point() -> None:
    from importlib.metadata import entry_points

    [ep] = [e for e in entry_points(group="pytest11") if e.name == "local_airtable"]
    assert ep.value == "jobtrack_airtable.local.pytest_plugin"
