"""The import graph of dlx's packages: data flows one way (config -> data/models -> training ->
tracking -> sweep -> run -> cli), so no package imports one that imports it back, and the leaf
modules that config checks read import neither torch, mlflow nor another dlx package. Every
import counts, at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import dlx

ROOT = Path(dlx.__file__).parent
PACKAGES = {"config", "data", "models", "training", "tracking", "sweep", "cli"}
LEAVES = {"dlx.runtime", "dlx.tasks", "dlx.errors"}


def _node(module: str) -> str:
    """dlx.training.fit -> dlx.training; dlx.run -> dlx.run (a top-level module is its own node)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _imports(path: Path) -> set[str]:
    module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
    found = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Import):
            found |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:  # relative: from the module's own package
                base = ".".join(module.split(".")[: -n.level] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in n.names if f"{base}.{a.name}".count(".") == 2
                      and a.name in PACKAGES and base == "dlx"}
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        src = _node(module)
        for target in _imports(path):
            if target.startswith("dlx.") and _node(target) != src:
                graph.setdefault(src, set()).add(_node(target))
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt] if nxt in path else [*path, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_cycle_between_dlx_packages():
    graph = _graph()
    assert {"dlx.config", "dlx.training", "dlx.tracking", "dlx.sweep"} <= set(graph)
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    # the layers the design names, one way
    assert "dlx.training" not in graph["dlx.config"] and "dlx.sweep" not in graph["dlx.tracking"]


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_leaf_modules_import_no_torch_mlflow_or_other_dlx_package():
    for leaf in LEAVES:
        path = ROOT / f"{leaf.split('.')[1]}.py"
        heavy = {i for i in _imports(path) if i.split(".")[0] in ("torch", "mlflow")}
        inner = {i for i in _imports(path) if i.startswith("dlx.")}
        assert not heavy and not inner, (leaf, heavy, inner)
