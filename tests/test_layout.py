"""The app's layout rules: no import circles, layers that only look down, small modules.

The import graph is read from the source with ``ast`` (every ``import``, at module
level, inside functions and under ``TYPE_CHECKING`` alike), so a circle hidden
behind a deferred import is found as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "trusted_identity"
PACKAGE = "trusted_identity"

#: The service modules, lowest first: each may import only those before it.
SERVICE_ORDER = [
    "access",
    "audit",
    "durations",
    "lookup",
    "platform_secrets",
    "spaces",
    "memberships",
    "counting",
    "retention",
    "figures",
    "diagnostics",
    "alerts",
    "enforcement",
    "origins",
    "signature_forms",
    "verification",
    "sessions",
    "signature_tester",
    "rekey",
]
#: Plain Python: readable and testable without Django.
PURE_MODULES = ["signing", "crypto", "tokens", "sketch", "formatting", "rates"]
MAX_MODULE_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for path in sorted(APP.rglob("*.py"))
        if "migrations" not in path.parts
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The app modules that ``name`` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # "a.b.func" -> "a.b"
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_graph_sees_imports():
    """A guard for the walker itself: known edges are found."""
    graph = _graph()
    assert "trusted_identity.services.lookup" in graph["trusted_identity.services.sessions"]
    assert "trusted_identity.outcomes" in graph["trusted_identity.services.counting"]
    assert "trusted_identity.services" in graph["trusted_identity.views"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_service_modules_import_only_lower_ones():
    graph = _graph()
    prefix = f"{PACKAGE}.services."
    modules = {name for name in graph if name.startswith(prefix)}
    assert modules == {prefix + name for name in SERVICE_ORDER}, "update SERVICE_ORDER"
    for position, name in enumerate(SERVICE_ORDER):
        higher = {prefix + other for other in SERVICE_ORDER[position:]}
        imported = graph[prefix + name] & higher
        assert not imported, f"services.{name} imports {sorted(imported)}"
        assert f"{PACKAGE}.services" not in graph[prefix + name], (
            f"services.{name} imports the package; import the sibling module instead"
        )


@pytest.mark.parametrize("name", PURE_MODULES)
def test_pure_modules_import_no_django_and_only_each_other(name):
    path = APP / f"{name}.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            roots = [(node.module or "").split(".")[0]]
        else:
            continue
        assert "django" not in roots, f"{name}.py imports Django"
    pure = {f"{PACKAGE}.{other}" for other in PURE_MODULES}
    assert _graph()[f"{PACKAGE}.{name}"] <= pure, f"{name}.py imports more of the app"


def test_no_module_is_over_the_size_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}
