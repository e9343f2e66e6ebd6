"""The faces make no queries of their own: every read goes through a domain's repository (or a use
case), whose one ``visible_to(scope)`` says what a user may see."""

from __future__ import annotations

import ast
from pathlib import Path

from service.settings import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "service"
FACES = sorted(
    [
        *(PACKAGE / "web").glob("*.py"),
        *(PACKAGE / "api").glob("*.py"),
        *(PACKAGE / "http").glob("*.py"),
        PACKAGE / "cli.py",
    ]
)
#: Statement builders of SQLAlchemy: a face that imports one writes a query.
BUILDERS = {"select", "exists", "insert", "update", "delete", "text", "func", "and_", "or_", "union", "literal"}
#: What a session (or a connection) runs.
RUNS = {"scalar", "scalars", "execute", "query", "get", "get_one", "merge"}


def _receiver(node: ast.expr) -> str:
    """The name a method is called on: ``session`` in ``session.get(...)``, ``db`` in ``self.db.x()``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def queries_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"{path.name if not path.is_relative_to(PROJECT_ROOT) else path.relative_to(PROJECT_ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [f"{where} imports {a.name}" for a in node.names if a.name in BUILDERS]
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in BUILDERS:
                found.append(f"{where} calls {func.id}()")
            elif isinstance(func, ast.Attribute):
                receiver = _receiver(func.value)
                if func.attr == "query" or (
                    func.attr in RUNS and ("session" in receiver.lower() or receiver in {"s", "conn", "connection"})
                ):
                    found.append(f"{where} calls {receiver}.{func.attr}()")
    return found


def test_the_scanner_sees_a_query(tmp_path: Path) -> None:
    sample = tmp_path / "faces-sample.py"
    sample.write_text(
        "from sqlalchemy import select\n"
        "def f(session, s, request):\n"
        "    session.scalars(select(A))\n"
        "    s.get(A, 1)\n"
        "    request.headers.get('x')\n"
        "    db.query(A)\n",
        encoding="utf-8",
    )
    found = queries_in(sample)
    assert len(found) == 5, found  # the import, select(), session.scalars(), s.get(), .query(); not headers.get


def test_faces_make_no_queries_of_their_own() -> None:
    assert len(FACES) > 20
    found = [q for path in FACES for q in queries_in(path)]
    assert not found, "faces query the database themselves; use the domain's repository:\n" + "\n".join(found)
