"""The SDK's modules import each other one way: no circle.

Built from the source, not by importing it: an edge is an import that runs when the module is
imported (at module level, class bodies included), not one inside a function and not one under
``if TYPE_CHECKING:``. A circle would mean some module can only be imported after another has
half-loaded, which is how a feature module importing the client back breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

#: The source tree (not the imported package: a circle may make importing it fail).
ROOT = Path(__file__).resolve().parents[2] / "sdk" / "src" / "mailslot"
PACKAGE = "mailslot"


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements that run on import: not function bodies, not TYPE_CHECKING blocks."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            out += _import_time_nodes(node.orelse)
            continue
        out.append(node)
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                out += _import_time_nodes([n for n in inner if isinstance(n, ast.stmt)])
                for handler in inner:
                    if isinstance(handler, ast.ExceptHandler):
                        out += _import_time_nodes(handler.body)
    return out


def _targets(module: str, is_package: bool, node: ast.stmt, known: set[str]) -> set[str]:
    names: set[str] = set()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        # ``from .x import y``: y is a submodule of x, or a name defined in x.
        names = {f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names}
    return {n for n in names if n in known}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _import_time_nodes(tree.body):
            edges |= _targets(name, is_package, node, known)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph (as a path that ends where it started), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_sdk_imports_form_no_circle() -> None:
    graph = import_graph()
    assert "mailslot.client" in graph["mailslot.connection"]  # the graph does see the imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_feature_modules_do_not_import_the_client() -> None:
    """Features get the link (mailslot.link), not the client: only the modules that build a
    client (connect, the sync twin, the CLI, the package) import it at import time."""
    graph = import_graph()
    importers = {m for m, edges in graph.items() if "mailslot.client" in edges}
    allowed = {"mailslot", "mailslot.connection", "mailslot.sync"}
    assert {m for m in importers if not m.startswith("mailslot.cli")} <= allowed, importers


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
