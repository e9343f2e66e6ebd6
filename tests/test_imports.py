"""Every import of the project's own modules names a module that exists, lazy ones inside functions
too (mypy is told to ignore missing imports for the libraries without types, so it would not say)."""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

from service.settings import PROJECT_ROOT

OWN = ("service", "devtools", "tests")


def _imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def test_every_import_of_our_own_modules_resolves() -> None:
    missing = []
    for folder in ("service", "devtools", "tests", "bench"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            for line, module, names in _imports(ast.parse(path.read_text(encoding="utf-8"))):
                if module.split(".")[0] not in OWN:
                    continue
                if not _is_module(module):
                    missing.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: no module {module}")
                    continue
                for name in names:
                    if _defines(module, name) or _is_module(f"{module}.{name}"):
                        continue
                    missing.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {module} has no {name}")
    assert missing == []


@functools.cache
def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _defines(module: str, name: str) -> bool:
    return name in _bound(module)


@functools.cache
def _bound(module: str) -> frozenset[str]:
    """Every name a module binds anywhere (definitions, assignments, imports)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    names: set[str] = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
    return frozenset(names)
