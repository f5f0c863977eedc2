"""The package's modules import each other without cycles: each layer of docs/DESIGN.md imports
only from layers below it.

Every ``import`` and ``from ... import`` is read from the source with `ast`, at any depth: a
deferred import inside a function is still a dependency (it only hides the cycle from Python's
import machinery, not from a reader), and so is one under ``if TYPE_CHECKING:``.

What counts as importing what:
- ``import rnnkit.a.b`` and ``from rnnkit.a import b`` (``b`` a module) import the module
  ``rnnkit.a.b``; relative imports are resolved against the importing module's package.
- ``from rnnkit.a import name`` (``name`` not a module) imports ``rnnkit.a`` itself: for a
  package, its ``__init__``. So a module reaching a sibling through its package's
  ``__init__`` depends on that ``__init__``, and an ``__init__`` that re-exports its children
  depends on them: the two together are a cycle.
- The parent packages Python runs before a module (``rnnkit`` before ``rnnkit.io.checkpoint``)
  are not counted: they are the way in, not a dependency the module chose.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "rnnkit"

# Imports that lie on a cycle today, each as (importer, imported), to be emptied as the layers
# are restructured (issue 17). The test fails on any other import that closes a cycle, and on
# an entry here that no longer does (then delete it).
KNOWN_CYCLIC_IMPORTS: frozenset[tuple[str, str]] = frozenset()


def module_names() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _package_of(name: str, path: Path) -> str:
    """The package a module's relative imports start from."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve(level: int, target: str | None, package: str) -> str:
    """The absolute name of ``from <level dots><target> import ...`` inside ``package``."""
    if level == 0:
        return target or ""
    parts = package.split(".")
    if level > 1:
        parts = parts[: -(level - 1)]
    return ".".join(parts + ([target] if target else []))


def _existing(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` if it is a module of the package, else its longest prefix that is (``import
    rnnkit.a.b`` where ``b`` is not a module cannot happen, but be safe)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports, at any depth of its source."""
    package = _package_of(name, path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    target = _existing(alias.name, modules)
                    if target:
                        found.add(target)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node.level, node.module, package)
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                child = f"{source}.{alias.name}"
                target = child if child in modules else _existing(source, modules)
                if target:
                    found.add(target)
    found.discard(name)  # `from . import x` inside a package's own __init__ about itself
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The graph's strongly connected components (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def cyclic_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """The imports that lie on some cycle: those inside a strongly connected component."""
    cyclic = set()
    for component in strongly_connected(graph):
        for importer in component:
            cyclic |= {(importer, imported) for imported in graph[importer] & component}
    return cyclic


def cycle_through(graph: dict[str, set[str]], importer: str, imported: str) -> list[str]:
    """A shortest cycle that uses the import ``importer -> imported``, as a list of modules
    from ``importer`` back to it."""
    previous: dict[str, str | None] = {imported: None}
    queue = deque([imported])
    while queue:
        node = queue.popleft()
        if node == importer:
            break
        for child in sorted(graph[node]):
            if child not in previous:
                previous[child] = node
                queue.append(child)
    path: list[str] = []
    node: str | None = importer
    while node is not None:
        path.append(node)
        node = previous[node]
    return [importer, *reversed(path)]


def describe(graph: dict[str, set[str]], edges: set[tuple[str, str]]) -> str:
    return "\n".join(
        " -> ".join(cycle_through(graph, importer, imported))
        for importer, imported in sorted(edges)
    )


def test_the_graph_sees_deferred_relative_and_package_imports():
    graph = import_graph()
    # a deferred import inside a method: a quantized product loads its kernels when first asked
    assert f"{PACKAGE}.kernels.quant" in graph[f"{PACKAGE}.quantize"]
    assert f"{PACKAGE}.layers.module" in graph[f"{PACKAGE}.io.checkpoint"]  # `..layers.module`
    assert f"{PACKAGE}.engine.plan" in graph[f"{PACKAGE}.stream.steps"]  # `from ..engine.plan`
    assert f"{PACKAGE}.stream.runtime" in graph[f"{PACKAGE}.stream"]  # a package's __init__
    assert f"{PACKAGE}.io.checkpoint" in graph[PACKAGE]  # the root re-exports its children
    assert PACKAGE not in graph[f"{PACKAGE}.io.checkpoint"]  # __version__ from a leaf module
    assert f"{PACKAGE}._version" in graph[f"{PACKAGE}.io.checkpoint"]
    assert graph[f"{PACKAGE}.errors"] == set()


def test_cycle_finding_on_a_small_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cyclic_imports(graph) == {("a", "b"), ("b", "c"), ("c", "a"), ("e", "e")}
    assert cycle_through(graph, "c", "a") == ["c", "a", "b", "c"]


def test_no_import_cycles_between_the_packages_modules():
    graph = import_graph()
    cyclic = cyclic_imports(graph)
    new = cyclic - KNOWN_CYCLIC_IMPORTS
    assert not new, "imports that close a cycle:\n" + describe(graph, new)
    stale = KNOWN_CYCLIC_IMPORTS - cyclic
    assert not stale, f"no longer on a cycle, delete from KNOWN_CYCLIC_IMPORTS: {sorted(stale)}"
