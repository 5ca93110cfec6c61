"""The app's layout rules: no import circles, layers that only look down, small modules.

The import graph is read from the source with ``ast`` (every ``import``, at module
level, inside functions and under ``TYPE_CHECKING`` alike), so a circle hidden
behind a deferred import is found as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_version  # the source read with ast: the same on every version

APP = Path(__file__).resolve().parent.parent / "trusted_identity"
PACKAGE = "trusted_identity"

#: The service modules, lowest first: each may import only those before it.
SERVICE_ORDER = [
    "access",
    "audit",
    "durations",
    "lookup",
    "key_tables",
    "site_keys",
    "platform_secrets",
    "spaces",
    "memberships",
    "counting",
    "retention",
    "figures",
    "secret_use",
    "public_keys",
    "jwks",
    "forecast",
    "rejections",
    "diagnostics",
    "alerts",
    "enforcement",
    "origins",
    "signature_forms",
    "gate_evidence",
    "verification",
    "site_signing",
    "key_sources",
    "sessions",
    "signature_tester",
    "rekey",
]
#: Plain Python: readable and testable without Django.
PURE_MODULES = [
    "signing",
    "crypto",
    "tokens",
    "jwtparts",
    "publickeys",
    "privatekeys",
    "keytokens",
    "jwksfetch",
    "sketch",
    "formatting",
    "rates",
    "idvariants",
    "versionslots",
]
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
    assert "trusted_identity.services.sessions" in graph["trusted_identity.views"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_doors_import_the_module_that_owns_a_rule():
    """No facade: ``services/__init__.py`` re-exports nothing, and nothing imports the
    package as a whole (``from .. import services``), so every call names its owner."""
    init = APP / "services" / "__init__.py"
    tree = ast.parse(init.read_text())
    assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    importers = sorted(
        name for name, targets in _graph().items() if f"{PACKAGE}.services" in targets
    )
    assert importers == []


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


# ------------------------------------------------------ per-process state
#
# Every piece of per-process state is the runtime's (trusted_identity/runtime.py), so
# that its one reset() leaves nothing behind and a forked child starts clean. Anywhere
# else at module level: no instance of a class, no container the module changes, no
# ``global``, no ``functools.lru_cache`` / ``cache``. What may stand there is below.

RUNTIME_MODULE = f"{PACKAGE}.runtime"

#: Calls whose result is immutable, or is not state: constants, compiled patterns,
#: loggers, Django's Signal objects (registries of receivers, not of data), type helpers.
ALLOWED_CALLS = {
    "frozenset",
    "tuple",
    "bytes",
    "bytes.maketrans",
    "int.from_bytes",
    "struct.Struct",  # a compiled format, immutable
    "json.JSONDecoder",  # stateless: one decode() is independent of another
    "HMACAlgorithm",  # PyJWT's HS256: stateless
    # cryptography's descriptions of a signature scheme: stateless.
    "ec.ECDSA",
    "padding.PKCS1v15",
    "hashes.SHA256",
    "re.compile",
    "logging.getLogger",
    "Signal",
    "TypeVar",
    "NamedTuple",
    "_",  # gettext_lazy: a lazy string
    "gettext_lazy",
    "object",  # a unique sentinel, compared by identity
    "template.Library",  # Django's tag library: a registry filled at import
    "timedelta",
    # conf.py's settings table: frozen dataclasses, read-only once built.
    "Kind",
    "Setting",
    "optional",
}
#: Module-level names allowed although they are instances, each for a stated reason.
ALLOWED_NAMES = {
    # The settings accessor: Runtime.reset() calls its reload() (conf.py reworks it).
    ("conf", "app_settings"),
    # Django's URL configuration, read by Django.
    ("urls", "urlpatterns"),
    # Immutable values: an empty table (slots, tuples), NamedTuples, an int.
    ("services.key_tables", "_NO_DIAGNOSTIC"),
    ("keytokens", "NO_KEYS"),
    ("services.counting", "NO_CLIENT"),
    ("services.counting", "FAILURE_USER_ID_LENGTH"),
    ("services.verification", "_PLAIN_REFUSED"),
    ("services.verification", "_TOKEN_REFUSED"),
    ("state", "NO_GENERATION"),
    # A stateless encoder: one encode() is independent of another.
    ("views", "_json_encoder"),
}
#: What changes a container in place.
MUTATING_METHODS = {
    "append", "extend", "insert", "add", "update", "setdefault", "pop", "popitem",
    "remove", "discard", "clear", "sort", "reverse", "__setitem__",
}  # fmt: skip
CONTAINERS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def _call_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_call_name(node.value)}.{node.attr}"
    return ""


def _value_kind(node: ast.expr | None) -> str | None:
    """ "instance" or "container" when a module-level value may hold state, else None."""
    if node is None or isinstance(node, (ast.Lambda, ast.Subscript)):  # later; a type alias
        return None
    if isinstance(node, ast.Call):
        if _call_name(node.func) in ALLOWED_CALLS:
            return None  # its arguments are read once, into an immutable result
        return "instance"
    if isinstance(node, CONTAINERS):
        return "container"
    for child in ast.iter_child_nodes(node):
        kind = _value_kind(child) if isinstance(child, ast.expr) else None
        if kind:
            return kind
    return None


def _changed_names(tree: ast.Module) -> set[str]:
    """Module-level names the module changes in place (``X[k] = v``, ``X.add(v)``, ``X += ``)."""
    changed = set()
    for node in ast.walk(tree):
        target = None
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            for t in getattr(node, "targets", None) or [node.target]:
                if isinstance(t, ast.Subscript):
                    target = t.value
                elif isinstance(node, ast.AugAssign):
                    target = t
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATING_METHODS
        ):
            target = node.func.value
        if isinstance(target, ast.Name):
            changed.add(target.id)
    return changed


def _module_state(name: str, path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(), str(path))
    short = name.removeprefix(f"{PACKAGE}.")
    changed = _changed_names(tree)
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if names == ["__all__"] or any((short, n) in ALLOWED_NAMES for n in names):
            continue
        kind = _value_kind(value)
        # A table filled at import and only read after (a constant) is fine.
        if kind == "instance" or (kind == "container" and changed & set(names)):
            found.append(f"{short}:{node.lineno} {', '.join(names)} = {kind}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"{short}:{node.lineno} global {', '.join(node.names)}")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                called = decorator.func if isinstance(decorator, ast.Call) else decorator
                if _call_name(called).rpartition(".")[2] in {"lru_cache", "cache"}:
                    found.append(f"{short}:{node.lineno} @{_call_name(called)} {node.name}")
    return found


def test_the_state_guard_sees_state(tmp_path):
    """A guard for the guard: each kind of module-level state is found."""
    source = tmp_path / "m.py"
    source.write_text(
        "import functools\nA = {}\nB = Thing()\nC = frozenset({1})\nD: list = []\n"
        "def f():\n    global A\n@functools.lru_cache\ndef g(): pass\n"
        "E = {1: 2}\nF = []\ndef h():\n    D.append(1)\n    A[1] = 2\n"
    )
    found = _module_state(f"{PACKAGE}.m", source)
    # A and D are changed; E and F never are (constant tables); C is immutable.
    assert sorted(line.split(" ")[0] for line in found) == ["m:2", "m:3", "m:5", "m:7", "m:9"]


def test_no_mutable_module_state_outside_the_runtime():
    found = []
    for name, path in _modules().items():
        if name != RUNTIME_MODULE:
            found += _module_state(name, path)
    assert found == []
