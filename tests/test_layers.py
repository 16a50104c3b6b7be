"""The import graph of dlx's packages: data flows one way (config -> data/models -> training ->
tracking -> run -> sweep -> cli -> api), so no package imports one that imports it back, and the
leaf modules that config checks read import neither torch, mlflow nor another dlx package. Every
import counts, at module level or inside a function. The sweep layer keeps its state in its
session object, never in a module or class global."""

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
            found |= {f"{base}.{a.name}" for a in n.names if base == "dlx" and (
                a.name in PACKAGES or (ROOT / f"{a.name}.py").is_file())}  # from dlx import run
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
    # the layers the design names, one way: the one-run recipe never reaches up to the sweep
    # layer, which puts its steps together; only the API and the CLI sit on top
    assert "dlx.training" not in graph["dlx.config"] and "dlx.sweep" not in graph["dlx.tracking"]
    assert "dlx.sweep" not in graph["dlx.run"] and "dlx.run" in graph["dlx.sweep"]
    top = ("dlx", "dlx.__main__", "dlx.api", "dlx.cli")  # the entry points
    assert not {"dlx.cli", "dlx.api"} & set().union(*(graph[n] for n in graph if n not in top))


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_leaf_modules_import_no_torch_mlflow_or_other_dlx_package():
    for leaf in LEAVES:
        path = ROOT / f"{leaf.split('.')[1]}.py"
        heavy = {i for i in _imports(path) if i.split(".")[0] in ("torch", "mlflow")}
        inner = {i for i in _imports(path) if i.startswith("dlx.")}
        assert not heavy and not inner, (leaf, heavy, inner)


MUTABLE = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp, ast.Call)


def test_the_sweep_layer_keeps_no_state_in_globals():
    """A sweep's state (its parent run, progress, outcomes, lost points) lives on its session:
    no `global` statement, no mutable module-level value and no mutable class attribute in the
    sweep layer or the Hydra adapter (a module constant or a type alias is fine)."""
    files = [*sorted((ROOT / "sweep").glob("*.py")), ROOT / "cli" / "jobs.py",
             ROOT / "cli" / "train.py", ROOT / "api.py", ROOT / "run.py"]
    found = []
    for path in files:
        tree = ast.parse(path.read_text())
        found += [f"{path.name}:{n.lineno} global" for n in ast.walk(tree) if isinstance(n, ast.Global)]
        scopes = [tree, *(n for n in tree.body if isinstance(n, ast.ClassDef))]
        for scope in scopes:
            for n in scope.body:
                value = n.value if isinstance(n, (ast.Assign, ast.AnnAssign)) else None
                names = [t.id for t in getattr(n, "targets", [getattr(n, "target", None)])
                         if isinstance(t, ast.Name)]
                if isinstance(value, MUTABLE) and not _constant(value) and names != ["__all__"]:
                    found.append(f"{path.name}:{n.lineno}")
    assert not found, f"module or class state: {found}"


def _constant(value: ast.expr) -> bool:
    """A frozen constant built by a call, or a dataclass field's default."""
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and \
        value.func.id in ("frozenset", "tuple", "field")
