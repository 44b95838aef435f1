"""The layout the code promises a newcomer: no import cycle in ``automl``, small checks in the
decision core, no private name imported across packages. Read from the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("automl", "pruners", "search_spaces")


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(path: Path, module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    mods = {m: p for pkg in PACKAGES for m, p in _modules(pkg).items()}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for target, names, _ in _imports(path, m):
            for cand in [f"{target}.{n}" for n in names] + [target]:
                if cand in mods and cand != m:
                    graph[m].add(cand)
                    break
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package_of(module: str, is_pkg: bool) -> str:
    return module if is_pkg else module.rpartition(".")[0]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules():
    graph = _graph()
    assert "automl.search.optuna_backend" in graph and "automl.decision.core" in graph  # the layout is read
    assert _cycles(graph) == []


def test_no_function_in_the_decision_core_over_50_lines():
    long = []
    for module, path in _modules("automl").items():
        if not module.startswith("automl.decision"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) else node.body  # the code, not its docs
                n = body[-1].end_lineno - body[0].lineno + 1 if body else 0
                if n > 50:
                    long.append(f"{module}.{node.name}: {n} lines")
    assert long == []


def _defining_package(target: str, is_package: bool) -> str:
    """The package a private name belongs to: for ``a.b._c`` (a private module), ``a.b``; for a
    name taken from module ``a.b.c``, ``a.b``; from package ``a.b``, ``a.b`` itself."""
    parts = target.split(".")
    private = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
    if private is not None:
        return ".".join(parts[:private])
    return target if is_package else target.rpartition(".")[0]


@pytest.mark.parametrize("tree", ["automl", "pruners", "search_spaces", "benchmarks", "tests", "examples"])
def test_no_private_name_imported_from_another_package(tree):
    """``from a.b import _x`` (or ``from a._b import x``) only from inside package ``a``."""
    known = {m: p for pkg in PACKAGES for m, p in _modules(pkg).items()}
    bad = []
    for path in sorted((ROOT / tree).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        importer = _package_of(module, path.name == "__init__.py").removesuffix(".__init__")
        for target, names, line in _imports(path, module):
            if not target.startswith(PACKAGES):
                continue
            private = [n for n in names if n.startswith("_")]
            if not private and not any(p.startswith("_") for p in target.split(".")):
                continue
            home = _defining_package(target, known.get(target, Path()).name == "__init__.py")
            if not (importer == home or importer.startswith(home + ".")):
                bad.append(f"{path.relative_to(ROOT)}:{line}: from {target} import {', '.join(private) or '...'}")
    assert bad == []


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_is_marked_typed_and_ships_the_marker(package):
    """PEP 561: without py.typed, type checkers ignore the packages' hints."""
    import tomllib

    assert (ROOT / package / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data.get(package, [])
