"""The shape of the package: one room per concept, imports pointing down, nothing oversized.

import-linter (``make lint``) checks the layers; these tests check what it does not: no
import cycle at all (imports inside functions included), no module over the size a reader
can hold, a declared public surface, and no module reaching into another's private names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "judgecal"
MAX_LINES = 620
"""About 600 lines: a module longer than this holds more than one concept."""


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(module imported, names, inside TYPE_CHECKING) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                guarded.add(id(child))
    package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], id(node) in guarded) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            out.append((base, [a.name for a in node.names], id(node) in guarded))
    return out


def _graph() -> dict[str, set[str]]:
    names = {_name(p) for p in _modules()}
    graph: dict[str, set[str]] = {_name(p): set() for p in _modules()}
    for path in _modules():
        me = _name(path)
        for module, imported, typing_only in _imports(path):
            if typing_only or not module.startswith("judgecal"):
                continue
            targets = {f"{module}.{n}" for n in imported if f"{module}.{n}" in names}
            targets = targets or ({module} if module in names else set())
            graph[me] |= {t for t in targets if t != me}
    return graph


def test_no_import_cycle_lazy_imports_included() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # A package and the children it re-exports are one unit, not a cycle.
            if len({c for c in component if not _is_reexport(c, component)}) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def _is_reexport(name: str, component: list[str]) -> bool:
    return any(other.startswith(name + ".") for other in component)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_oversized(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for path in _modules():
        for module, imported, _ in _imports(path):
            if module.startswith("judgecal") and module != _name(path):
                found += [f"{_name(path)}: {module}.{n}" for n in imported
                          if n.startswith("_") and not n.startswith("__")]
    assert found == []


def test_every_domain_module_declares_its_public_names() -> None:
    missing = []
    for path in _modules():
        if path.name.startswith("_") and path.name != "__init__.py":
            continue  # private modules; their package re-exports what is public
        if _name(path).startswith(("judgecal.cli", "judgecal.__main__")) or _name(path) == \
                "judgecal":
            continue  # commands are reached through the CLI, not imported
        tree = ast.parse(path.read_text(encoding="utf-8"))
        public = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)
                  and not n.name.startswith("_")]
        declared = any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__"
                                                         for t in n.targets) for n in tree.body)
        if public and not declared:
            missing.append(_name(path))
    assert missing == []


def test_no_module_is_imported_by_a_name_in_a_string() -> None:
    """Dependencies are visible: importlib only in the CLI's static command table."""
    users = [_name(p) for p in _modules()
             if "import_module(" in p.read_text(encoding="utf-8")]
    assert users == ["judgecal.cli.main"]


def test_the_reliability_harness_is_not_in_the_installed_package() -> None:
    assert not (PACKAGE / "testing").exists()
