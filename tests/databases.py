"""Databases for tests: a SQLite file, or a database of its own on the local PostgreSQL."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from service.db.session import Database
from service.settings import Settings

POSTGRES_ADMIN = os.environ.get("DOCSIGN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

#: Databases migrated to the newest schema once per test process, which the tests that need one
#: start from a copy of (twenty migrations cost about a second in every test).
_templates: dict[str, str] = {}
_templates_lock = threading.Lock()


def _migrate(database_url: str, folder: Path) -> None:
    db = Database(Settings(data_dir=folder, database_url=database_url))
    try:
        db.migrate()
    finally:
        db.dispose()


def migrated_sqlite(path: Path) -> None:
    """Put at ``path`` a SQLite database migrated to the newest schema (a copy of the template)."""
    with _templates_lock:
        if "sqlite" not in _templates:
            folder = Path(tempfile.mkdtemp(prefix="docsign-db-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _migrate("", folder)
            _templates["sqlite"] = str(folder / "docsign.sqlite3")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    shutil.copy2(_templates["sqlite"], path)


def _postgres_template() -> str:
    with _templates_lock:
        if "postgresql" not in _templates:
            name = "docsign_template_" + secrets.token_hex(4)
            _create(name)
            atexit.register(_drop, name)
            folder = Path(tempfile.mkdtemp(prefix="docsign-db-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _migrate(POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name, folder)
            _templates["postgresql"] = name
        return _templates["postgresql"]


def _create(name: str, template: str | None = None) -> None:
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    finally:
        admin.dispose()


def _drop(name: str) -> None:
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


@contextmanager
def postgres_database(*, migrated: bool = False) -> Iterator[str]:
    """A new PostgreSQL database for one test, empty or ``migrated`` to the newest schema (a copy
    of the process's template); dropped afterwards."""
    name = "docsign_test_" + secrets.token_hex(4)
    _create(name, _postgres_template() if migrated else None)
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        _drop(name)
