"""The package structure the README promises, checked on the source: no import circle between the project's
modules (function-level imports count), no module imports another module's underscore names, and each package
imports only the packages below it."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("radio", "calibration", "twin", "agents", "testbed")
ALLOWED = {"radio": set(), "calibration": {"radio"}, "twin": {"calibration"}, "agents": {"twin"},
           "testbed": {"radio", "calibration", "twin", "agents"}}
"""What each package may import (the README's package table)."""


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str]]:
    """(imported module, imported name or "") of every import statement in ``path``, wherever it stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.append((submodule, "") if submodule in modules else (module, alias.name))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {target for target, _ in _imports(name, path, modules) if target in modules}
            for name, path in modules.items()}


def test_no_import_circle_between_the_projects_modules():
    graph = _graph()
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
    modules = _modules()
    private = [f"{name} imports {target}.{imported}" for name, path in modules.items()
               for target, imported in _imports(name, path, modules)
               if imported.startswith("_") and not imported.startswith("__") and target.split(".")[0] in PACKAGES]
    assert private == []


def test_each_package_imports_only_the_packages_below_it():
    graph = _graph()
    wrong = sorted(f"{name} imports {target}" for name, targets in graph.items() for target in targets
                   if target.split(".")[0] != name.split(".")[0]
                   and target.split(".")[0] not in ALLOWED[name.split(".")[0]])
    assert wrong == []
