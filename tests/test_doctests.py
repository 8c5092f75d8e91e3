"""Every example in the package's docstrings runs and shows what it says (docs with runnable
examples): examples that need a live base are marked ``+SKIP`` where they stand."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import jobtrack_airtable

_SUBMODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(jobtrack_airtable.__path__, f"{jobtrack_airtable.__name__}.")
    if not m.name.endswith("__main__")
)
MODULES = [jobtrack_airtable.__name__, *_SUBMODULES]


def test_every_module_is_found() -> None:
    assert {
        "jobtrack_airtable",
        "jobtrack_airtable.worker.tracker",
        "jobtrack_airtable.admin.sync.model",
    } <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    # The top level loads its names lazily (PEP 562): resolve them as a user's code would.
    names = {n: getattr(module, n) for n in getattr(module, "__all__", ())}
    result = doctest.testmod(module, extraglobs=names, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
