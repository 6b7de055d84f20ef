"""The package structure the README promises, checked on the source: no import circle between the project's
modules (function-level imports count), no module imports another module's underscore names, and each package
imports only the packages below it."""

from __future__ import annotations

from tests.helpers.imports import PACKAGES, import_graph, imports_of, project_modules

ALLOWED = {"radio": set(), "calibration": {"radio"}, "twin": {"calibration"}, "agents": {"twin"},
           "testbed": {"radio", "calibration", "twin", "agents"}}
"""What each package may import (the README's package table)."""


def test_no_import_circle_between_the_projects_modules():
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_no_module_imports_another_modules_underscore_names():
    modules = project_modules()
    private = [f"{name} imports {target}.{imported}" for name, path in modules.items()
               for target, imported in imports_of(name, path, modules)
               if imported.startswith("_") and not imported.startswith("__") and target.split(".")[0] in PACKAGES]
    assert private == []


def test_each_package_imports_only_the_packages_below_it():
    graph = import_graph()
    wrong = sorted(f"{name} imports {target}" for name, targets in graph.items() for target in targets
                   if target.split(".")[0] != name.split(".")[0]
                   and target.split(".")[0] not in ALLOWED[name.split(".")[0]])
    assert wrong == []
