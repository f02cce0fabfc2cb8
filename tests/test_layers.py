"""The layout is the architecture: these rules keep the arrows pointing inward.

domain <- ports <- services <- adapters <- entrypoints (and the thin shims: lambdas/, batch_jobs/, bots/serve.py)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OUTSIDE = ("bots", "training", "lambdas", "stacks", "batch_jobs")
# what each layer may import of ours (spotbot.settings is configuration: any layer but the domain)
ALLOWED = {
    "domain": {"domain"},
    "ports": {"domain", "ports"},
    "services": {"domain", "ports", "services", "settings"},
    "adapters": {"domain", "ports", "services", "adapters", "settings"},
    "settings": {"domain"},
}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((REPO / "spotbot").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "package"


def test_nothing_below_the_entry_points_imports_the_deployable_folders():
    offenders = {
        module: sorted(name for name in imports(path) if name.split(".")[0] in OUTSIDE)
        for module, path in modules().items()
        if layer(module) != "entrypoints"
    }
    assert {m: names for m, names in offenders.items() if names} == {}


@pytest.mark.parametrize("inner", sorted(ALLOWED))
def test_each_layer_imports_only_what_is_further_in(inner):
    ours = modules()
    wrong = {}
    for module, path in ours.items():
        if layer(module) != inner:
            continue
        bad = sorted(
            name for name in imports(path)
            if name.startswith("spotbot.") and name in ours and layer(name) not in ALLOWED[inner]
        )  # fmt: skip
        if bad:
            wrong[module] = bad
    assert wrong == {}


def test_there_is_no_import_cycle():
    ours = modules()
    graph = {m: {n for n in imports(p) if n in ours and n != m} for m, p in ours.items()}  # lazy imports too
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert cycles == []
