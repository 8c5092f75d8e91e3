"""The layers stay visible and apart (docs/architecture.md).

* the worker core (``import jobtrack_airtable``) loads none of the admin CLI's or the local
  server's dependencies, so a lead-scoring worker pays for neither;
* no two modules of the package import each other at module level (an import cycle makes the
  import order matter and hides which layer depends on which).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jobtrack_airtable"

#: What only the admin CLI (typer, rich, tomlkit) or the local server (werkzeug, re2,
#: sortedcontainers) may load: the extras a worker's core install does not have.
NOT_IN_THE_CORE = (
    "typer",
    "click",
    "rich",
    "tomlkit",
    "werkzeug",
    "re2",
    "sortedcontainers",
    "jobtrack_airtable.cli",
    "jobtrack_airtable.local",
    # Optional extras load only when used: a Pushgateway push, a configured tracer.
    "prometheus_client",
    "opentelemetry",
)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


def _offenders(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if any(m == p or m.startswith(p + ".") for p in NOT_IN_THE_CORE)
    )


@pytest.mark.parametrize(
    "statement",
    [
        "import jobtrack_airtable",
        "from jobtrack_airtable import Tracker",
        "import jobtrack_airtable.admin.sync",
        "import jobtrack_airtable.admin.mirror",
        "import jobtrack_airtable.errors",
        "import jobtrack_airtable.worker.pushgateway",
        "import jobtrack_airtable.outbox",
        "import jobtrack_airtable.admin.outbox",
        "import jobtrack_airtable.worker.tracking_errors",
        "import jobtrack_airtable.worker.job_outbox",
    ],
)
def test_the_worker_core_loads_no_cli_or_server_code(statement: str) -> None:
    assert _offenders(_loaded_after(statement)) == []


def test_the_check_would_see_an_offender() -> None:
    # The same probe on the CLI's app does find typer and rich: the test above can fail.
    loaded = _loaded_after("from jobtrack_airtable.cli import app")
    assert {"typer", "rich"} <= set(_offenders(loaded))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: not those inside functions or classes, nor
    under ``if TYPE_CHECKING:``."""

    def walk(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    yield from walk(block)
                for handler in node.handlers:
                    yield from walk(handler.body)

    yield from walk(tree.body)


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports at module level.  Importing a parent package
    is no edge: Python initialises parents first, whatever the child imports."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for node in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join([*base_parts, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in files and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = import_graph()
    assert "jobtrack_airtable.errors" in graph["jobtrack_airtable.worker.tracker"]


#: The layers above the worker core, in order: each may import those before it, never after.
UPPER_LAYERS = (
    "jobtrack_airtable.integrations",
    "jobtrack_airtable.admin",
    "jobtrack_airtable.cli",
)
#: Stand-alone: the local server and the test helper that seeds it.
APART = ("jobtrack_airtable.local", "jobtrack_airtable.testing")


def _layer(module: str) -> int:
    """0 the worker core, 1 the integrations (task frameworks, commands), 2 the admin
    library, 3 the CLI; -1 the modules that stand apart."""
    if any(module == p or module.startswith(p + ".") for p in APART):
        return -1
    for rank, prefix in enumerate(UPPER_LAYERS, start=1):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return 0


def all_imports() -> dict[str, set[str]]:
    """Module → every package module it imports anywhere (inside functions too): a lazy
    import crosses a layer just as surely when it runs."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    found: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            found[name].update(t for t in targets if t in files and t != name)
    return found


def test_no_layer_imports_a_layer_above_it() -> None:
    upward = sorted(
        f"{module} → {target}"
        for module, targets in all_imports().items()
        for target in targets
        if _layer(module) >= 0 and _layer(target) > _layer(module)
    )
    assert upward == []


def test_the_worker_core_never_imports_the_local_server() -> None:
    crossing = sorted(
        f"{module} → {target}"
        for module, targets in all_imports().items()
        for target in targets
        if _layer(module) in (0, 1, 2) and _layer(target) == -1
    )
    assert crossing == []


def test_the_outbox_store_is_below_the_worker() -> None:
    # The tracker writes through the store; the store never reaches back up to the worker.
    imports = all_imports()
    store = [m for m in imports if m.startswith("jobtrack_airtable.outbox")]
    assert store and not any(
        t.startswith(("jobtrack_airtable.worker", "jobtrack_airtable.transport"))
        for m in store
        for t in imports[m]
    )
    assert "jobtrack_airtable.outbox" in imports["jobtrack_airtable.worker.tracker"]


def test_a_job_entry_is_plain_data() -> None:
    # What a job leaves in the outbox is read by another process: it imports nothing of
    # the tracker, the transport or the store.
    assert not any(
        t.startswith(("jobtrack_airtable.transport", "jobtrack_airtable.outbox"))
        or t == "jobtrack_airtable.worker.tracker"
        for t in all_imports()["jobtrack_airtable.worker.job_outbox"]
    )


def test_the_layer_check_would_see_an_upward_import() -> None:
    assert _layer("jobtrack_airtable.worker.tracker") == 0
    assert _layer("jobtrack_airtable.integrations.celery") == 1
    assert _layer("jobtrack_airtable.admin.sync.apply") == 2
    assert _layer("jobtrack_airtable.cli._sync") == 3
    assert "jobtrack_airtable.admin.sync" in all_imports()["jobtrack_airtable.cli._sync"]


def test_airtable_facts_and_the_extras_check_depend_on_nothing_above_them() -> None:
    # Everything reads Airtable's limits from one module, so it must import nothing of ours.
    graph = import_graph()
    assert graph["jobtrack_airtable.airtable"] == set()
    assert graph["jobtrack_airtable.extras"] == {"jobtrack_airtable.errors"}


# -- one codec: only transport/codec.py maps field keys to what Airtable calls them ----------

CODEC = "jobtrack_airtable.transport.codec"
#: Who may use the codec: the table layer, and the readers and checkers that hold records
#: keyed by configured name (rows, a plan's pre-flight check, the CLI's renderers and the
#: embedded base's seed data).
CODEC_USERS = {
    "jobtrack_airtable.transport.repository",
    "jobtrack_airtable.rows",
    "jobtrack_airtable.admin.sync.apply",
    "jobtrack_airtable.cli._plans",
    "jobtrack_airtable.cli.embedded",
}
#: What keys a request for the wire: the table layer's alone.
WIRE_METHODS = {"encode", "decode", "decode_record", "wire", "ref", "formula", "options"}
#: The mappings TableSpec held before the codec: never again beside the declarations.
FORMER_MAPS = ("to_names", "from_names", "by_name", "encode", "decode", "ref", "check_fields")


def _field_maps(tree: ast.AST) -> list[int]:
    """Lines of dict comprehensions keyed by a field's name, ID or key, over field specs (an
    iterable whose text speaks of fields: ``spec.fields.values()``, ``enabled_fields()``,
    ``enabled``)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.DictComp):
            continue
        bound = {
            t.id
            for g in node.generators
            if "field" in ast.unparse(g.iter) or "enabled" in ast.unparse(g.iter)
            for t in ast.walk(g.target)
            if isinstance(t, ast.Name)
        }
        key = node.key
        if (
            isinstance(key, ast.Attribute)
            and key.attr in ("name", "id", "key")
            and isinstance(key.value, ast.Name)
            and key.value.id in bound
        ):
            found.append(node.lineno)
    return found


def test_only_the_codec_builds_a_field_map() -> None:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    maps = {
        name: lines
        for name, path in files.items()
        if not name.startswith("jobtrack_airtable.local")
        and (lines := _field_maps(ast.parse(path.read_text(), str(path))))
    }
    assert set(maps) == {CODEC}
    # The detector sees what it is for: the codec's own maps, and one built elsewhere.
    assert len(maps[CODEC]) >= 4
    sample = "by_name = {f.name: f.key for f in spec.enabled_fields()}"
    assert _field_maps(ast.parse(sample)) == [1]


def test_the_schema_declares_fields_and_maps_none() -> None:
    from jobtrack_airtable.schema import load_schema

    spec = load_schema().client_runs
    assert [m for m in FORMER_MAPS if hasattr(spec, m)] == []


def test_only_the_table_layer_uses_the_codec_and_only_it_keys_for_the_wire() -> None:
    users = {m for m, targets in all_imports().items() if CODEC in targets}
    assert users == CODEC_USERS
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    wire = {
        f"{m}: .{node.attr}"
        for m in users - {"jobtrack_airtable.transport.repository"}
        for node in ast.walk(ast.parse(files[m].read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr in WIRE_METHODS
        and "codec" in ast.unparse(node.value)
    }
    assert wire == set()
