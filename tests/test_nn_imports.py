"""`convviz.nn` imports go one way: no cycle between its modules, nothing from above it."""

from __future__ import annotations

import ast
from pathlib import Path

import convviz.nn

NN = Path(convviz.nn.__file__).resolve().parent
PACKAGE = "convviz.nn"


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of import nodes under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def imports(path: Path) -> set[str]:
    """Every module of ``convviz`` that ``path`` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_only(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("convviz")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("convviz"):
            for a in node.names:  # `from convviz.nn import functional` names a module
                sub = f"{node.module}.{a.name}"
                out.add(
                    sub
                    if (NN / f"{a.name}.py").exists() and node.module == PACKAGE
                    else node.module
                )
    return out


def graph() -> dict[str, set[str]]:
    mods = {f"{PACKAGE}.{p.stem}": p for p in NN.glob("*.py") if p.stem != "__init__"}
    return {m: {d for d in imports(p) if d in mods} for m, p in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import each other in a ring, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                return [*path[path.index(d) :], d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle_in_convviz_nn():
    edges = graph()
    assert len(edges) >= 12, sorted(edges)
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def test_layers_and_blocks_meet_only_through_the_registry():
    edges = graph()
    assert f"{PACKAGE}.blocks" not in edges[f"{PACKAGE}.layers"]
    assert f"{PACKAGE}.layers" in edges[f"{PACKAGE}.blocks"]  # blocks are made of layers
    assert edges[f"{PACKAGE}.registry"] == set()
    assert f"{PACKAGE}.fast" not in edges[f"{PACKAGE}.model"]  # the model knows no fast path


def test_nn_imports_nothing_above_it():
    for path in NN.glob("*.py"):
        above = {m for m in imports(path) if m.startswith(("convviz.ui", "convviz.runs"))}
        assert above == set(), f"{path.name} imports {sorted(above)}"


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
