"""The local server is a layer of its own: it knows nothing of the tracking schema (any
tables can be served) and imports nothing of the worker library but two small utilities."""

from __future__ import annotations

import ast
from pathlib import Path

import jobtrack_airtable.local

LOCAL = Path(jobtrack_airtable.local.__file__).parent
#: What the server may use from the rest of the package: generic helpers, no domain.
ALLOWED = {
    "jobtrack_airtable.errors",
    "jobtrack_airtable.timeutil",
    "jobtrack_airtable.field_types",
    "jobtrack_airtable.files",
    "jobtrack_airtable.extras",
}


def _outside_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(("jobtrack_airtable", *path.relative_to(LOCAL.parent).parts[:-1]))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names = [module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {
            n
            for n in names
            if n.startswith("jobtrack_airtable") and not n.startswith("jobtrack_airtable.local")
        }
    return found


def test_the_local_server_imports_no_domain_module() -> None:
    used: dict[str, set[str]] = {}
    for path in sorted(LOCAL.rglob("*.py")):
        outside = _outside_imports(path) - ALLOWED
        if outside:
            used[str(path.relative_to(LOCAL))] = outside
    assert used == {}


def test_the_local_server_names_no_tracking_table() -> None:
    for path in LOCAL.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in ("Client Run Results", "Profiles Examined"):
            assert name not in text, (path, name)


def test_no_module_of_the_server_imports_another_ones_private_names() -> None:
    private: list[tuple[str, str]] = []
    for path in sorted(LOCAL.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("jobtrack_airtable")
            ):
                private += [
                    (str(path.relative_to(LOCAL)), a.name)
                    for a in node.names
                    if a.name.startswith("_") and a.name != "__version__"
                ]
    assert private == []
