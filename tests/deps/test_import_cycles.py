"""No import cycle anywhere in pipeline/: read from the source, every import statement counts (also one inside a
function or under TYPE_CHECKING), as in test_layout. A cycle means two modules that can only be understood, tested
and changed together; what both need belongs in a third module they import.
"""

from __future__ import annotations

from pathlib import Path

from test_stage_dependencies import imported_names, module_file

REPO = Path(__file__).resolve().parents[2]

KNOWN: set[frozenset[str]] = set()  # cycles accepted for now: none


def import_graph() -> dict[str, set[str]]:
    """Module file -> the project module files it names in an import (not the parent packages that run too)."""
    graph = {}
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        names, _ = imported_names(path)
        found = {module_file(name) for name in names}
        graph[path.relative_to(REPO).as_posix()] = {
            f.relative_to(REPO).as_posix() for f in found if f is not None and f != path
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_cycle_in_pipeline() -> None:
    found = [sorted(c) for c in cycles(import_graph()) if c not in KNOWN]
    assert not found, f"import cycles in pipeline/: {found}"
