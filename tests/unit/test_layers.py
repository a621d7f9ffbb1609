"""The project's layering, read from the code: `stacks` -> `components` -> shared vocabulary,
nothing in `components/` imports `stacks`, and no module-level import cycle anywhere."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

PACKAGES = ("components", "stacks", "policy")


def _module(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """The project modules `path` imports (module level only, or everywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _read_graph(top_level_only: bool) -> dict[str, list[str]]:
    files = [p for pkg in PACKAGES for p in (PROJECT_ROOT / pkg).glob("*.py")]
    modules = {_module(p): p for p in files}
    return {name: sorted(m for m in _imports(path, top_level_only) if m in modules and m != name)
            for name, path in modules.items()}  # fmt: skip


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    """Read in a fresh interpreter: after a RecursionError (the fuzzer's alias cycles),
    CPython 3.11.7's ast.parse can fail with 'AST constructor recursion depth mismatch'."""
    res = subprocess.run(
        [sys.executable, __file__, "top" if top_level_only else "all"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return {name: set(deps) for name, deps in json.loads(res.stdout).items()}


def test_components_never_import_stacks() -> None:
    offenders = {
        name: sorted(m for m in deps if m.startswith("stacks"))
        for name, deps in _graph(top_level_only=False).items()
        if name.startswith("components")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycle() -> None:
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_graph_is_read() -> None:
    """The checks above look at real edges (a broken reader would pass them vacuously)."""
    graph = _graph(top_level_only=True)
    assert "components.webapp_config" in graph["stacks.config"]
    assert "components.config_model" in graph["components.cluster_config"]
    assert len(graph) > 30


if __name__ == "__main__":
    print(json.dumps(_read_graph(top_level_only=sys.argv[1] == "top")))
