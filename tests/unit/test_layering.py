"""The imports follow the data flow (docs/architecture.md): a package imports only its own layer and
the layers below it, and no modules import each other in a circle. Read from the source with ast,
imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edgepart"

# Bottom to top, as docs/architecture.md draws them. A module may import its own layer and below.
LAYERS = [
    ("core", {"edgepart", "edgepart.errors", "edgepart.schema", "edgepart.wording", "edgepart.cache",
              "edgepart.children", "edgepart.machine", "edgepart.names", "edgepart.checks"}),
    ("graph", {"edgepart.graph"}),
    ("toolchain", {"edgepart.toolchain"}),
    ("compress", {"edgepart.compress"}),
    ("hardware", {"edgepart.hardware"}),
    ("profile", {"edgepart.profile"}),
    ("cost", {"edgepart.cost"}),
    ("plan", {"edgepart.plan"}),
    ("compile", {"edgepart.compile"}),
    ("runtime", {"edgepart.runtime"}),
    ("interface", {"edgepart.cli", "edgepart.__main__", "edgepart.api", "edgepart.batch"}),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """edgepart modules a file imports (a name imported from a package counts as its module when it
    is one, else as the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("edgepart")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("edgepart"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return {name for name in found if name in MODULES}


IMPORTS = {name: imported_modules(path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members if m != "edgepart") or module in members:
            return rank
    raise AssertionError(f"{module} is in no layer of docs/architecture.md; add it to LAYERS and the page")


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_runs_up_the_layers():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for module, targets in sorted(IMPORTS.items()) for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_no_import_circle():
    circles = strongly_connected(IMPORTS)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in circles)


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"a"}}, [{"a", "b"}]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_circle_finder_finds_circles(edges, expected):
    assert strongly_connected(edges) == expected
