"""No import circle inside the SDK or the broker, and the SDK's features do not import its client.

Built from the source with :mod:`ast` (nothing is imported: a circle may make importing fail).
Every import counts, at the top of a file or inside a function, except those under
``if TYPE_CHECKING:`` (never run): a circle through a function-level import works only until
that import moves to the top of its file, and then breaks with a half-initialised module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from testsupport import ROOT

SOURCES = {
    "mailslot": ROOT / "sdk" / "src" / "mailslot",
    "mailslot_broker": ROOT / "broker" / "src" / "mailslot_broker",
}


def _modules(package: str) -> dict[str, Path]:
    root = SOURCES[package]
    mods: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, but not under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from .x import y`` names ``x``, or ``x.y``
    when ``y`` is a submodule)."""
    mods = _modules(package)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = mod.split(".")
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                # `from . import protocol` imports the submodule; only a name that is not one
                # comes from `source` itself.
                subs = [f"{source}.{a.name}" for a in node.names]
                targets = [s for s in subs if s in mods] or [source]
                if any(s not in mods for s in subs):
                    targets.append(source)
            for target in targets:
                # `import a.b.c` or a name that is not a module: the deepest module it names.
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_graphs_see_the_imports() -> None:
    broker = import_graph("mailslot_broker")
    assert "mailslot_broker.local" in broker["mailslot_broker"]
    assert broker["mailslot_broker.local"] >= {"mailslot_broker.home", "mailslot_broker.tenants"}
    assert "mailslot.client" in import_graph("mailslot")["mailslot.connection"]


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", sorted(SOURCES))
def test_no_import_circle(package: str) -> None:
    cycle = find_cycle(import_graph(package))
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_sdk_features_do_not_import_the_client() -> None:
    """Features get the link (mailslot.link), not the client: only the modules that build a
    client (connect, the sync twin, the CLI, the package) import it."""
    graph = import_graph("mailslot")
    importers = {m for m, edges in graph.items() if "mailslot.client" in edges}
    allowed = {"mailslot", "mailslot.connection", "mailslot.sync"}
    assert {m for m in importers if not m.startswith("mailslot.cli")} <= allowed, importers
