"""The import graph keeps its layers: no cycles, and each layer imports only those below it.

Every module of the engine and of both plugins is parsed (not imported), and every import
counts: at module level, inside functions, and under ``if TYPE_CHECKING:`` (a type-only
import still ties the two modules together; a failure marks such edges ``type``).

The layers, lowest first: values and policies (``messages``, ``errors``, ``events``,
``policies``), the decision core (``flow``), then the drivers, stores and providers
(``run``, ``state``, ``providers``), the optional ``extras``, the engine, and the plugins,
which see only the engine's public face.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "resilient_llm": ROOT / "core" / "resilient_llm",
    "langchain_resilient": ROOT / "langchain_resilient",
    "llamaindex_resilient": ROOT / "llamaindex_resilient",
}
PLUGINS = ("langchain_resilient", "llamaindex_resilient")
FRAMEWORKS = ("langchain", "langchain_core", "llama_index")

# What a plugin may import of the engine: its public face and the documented modules.
PUBLIC = (
    "resilient_llm",
    "resilient_llm.content",
    "resilient_llm.errors",
    "resilient_llm.events",
    "resilient_llm.extras.cache",
    "resilient_llm.messages",
    "resilient_llm.options",
    "resilient_llm.providers",
    "resilient_llm.state",
    "resilient_llm.testing.chaos",
)
# The decision core decides; it neither waits, calls, stores nor names a provider.
FLOW_MAY_IMPORT = (
    "resilient_llm.flow",
    "resilient_llm.policies",
    "resilient_llm.messages",
    "resilient_llm.errors",
    "resilient_llm.events",
)
POLICIES_MAY_NOT_IMPORT = (
    "resilient_llm._engine",
    "resilient_llm.flow",
    "resilient_llm.run",
    "resilient_llm.state",
    "resilient_llm.providers",
    "resilient_llm.extras",
)
PROVIDERS_MAY_NOT_IMPORT = (
    "resilient_llm._engine",
    "resilient_llm.flow",
    "resilient_llm.run",
    "resilient_llm.state",
)


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` (a module of ours, or an outside top-level name)."""

    source: str
    target: str
    line: int
    type_only: bool

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where} -> {self.target}" + (" (type)" if self.type_only else "")


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module: its dotted name -> (file, is a package's ``__init__``)."""
    found: dict[str, tuple[Path, bool]] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """The ids of every node under an ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
        if name == "TYPE_CHECKING":
            for statement in node.body:
                inside.update(id(sub) for sub in ast.walk(statement))
    return inside


def _ours(name: str) -> str | None:
    """The module of ours that importing ``name`` names (``a.b.C`` -> ``a.b``), or None."""
    while name not in MODULES:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    for alias in node.names:  # ``from pkg import sub`` imports the submodule pkg.sub
        yield f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source


def _edges() -> list[Edge]:
    edges: list[Edge] = []
    for module, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        type_only = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _targets(module, is_package, node):
                target = _ours(name) or name.split(".")[0]
                if target != module:
                    edges.append(Edge(module, target, node.lineno, id(node) in type_only))
    return edges


EDGES = _edges()


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in EDGES:
        if edge.target in MODULES:
            graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in MODULES:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def _report(edges: list[Edge]) -> str:
    return "\n".join(sorted({str(edge) for edge in edges}))


def test_the_graph_is_read() -> None:
    # Guards the parsing itself: a graph that lost its edges would pass every rule.
    assert {"resilient_llm._engine", "resilient_llm.flow.call"} <= MODULES.keys()
    assert any(
        e.source == "resilient_llm._engine" and e.target == "resilient_llm.flow.call" for e in EDGES
    )
    assert any(e.target == "langchain_core" for e in EDGES)
    assert any(e.type_only for e in EDGES)


def test_no_import_cycles() -> None:
    cycles = _cycles()
    described = [
        " <-> ".join(cycle)
        + "\n"
        + _report([e for e in EDGES if e.source in cycle and e.target in cycle])
        for cycle in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n\n".join(described)


def test_the_engine_never_imports_a_framework_or_a_plugin() -> None:
    wrong = [
        e
        for e in EDGES
        if _within(e.source, ("resilient_llm",)) and _within(e.target, FRAMEWORKS + PLUGINS)
    ]
    assert not wrong, _report(wrong)


def test_plugins_import_only_the_engines_public_face() -> None:
    wrong = [
        e
        for e in EDGES
        if _within(e.source, PLUGINS)
        and _within(e.target, ("resilient_llm",))
        and e.target not in PUBLIC
    ]
    assert not wrong, _report(wrong)


def test_the_decision_core_imports_only_policies_values_and_the_standard_library() -> None:
    wrong = [
        e
        for e in EDGES
        if _within(e.source, ("resilient_llm.flow",))
        and not _within(e.target, FLOW_MAY_IMPORT)
        and (e.target in MODULES or e.target not in sys.stdlib_module_names)
    ]
    assert not wrong, _report(wrong)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("resilient_llm.policies", POLICIES_MAY_NOT_IMPORT),
        ("resilient_llm.providers", PROVIDERS_MAY_NOT_IMPORT),
    ],
)
def test_a_layer_never_imports_the_layers_above_it(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = [e for e in EDGES if _within(e.source, (layer,)) and _within(e.target, forbidden)]
    assert not wrong, _report(wrong)
