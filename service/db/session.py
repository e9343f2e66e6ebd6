"""Engines and sessions for the configured database, with the migrations applied.

SQLite (the embedded profile) runs in WAL mode with foreign keys on and a busy timeout, so the web
server and the job threads share it; PostgreSQL needs nothing special.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from service.crypto import Keyring, keyring_for
from service.db.sealed import KEYRING
from service.settings import Settings, private_dir

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(settings: Settings) -> Engine:
    url = settings.database
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            private_sqlite_file(Path(url.removeprefix("sqlite:///")))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # removed personal data is overwritten, not left in free pages (GB/T 22239 8.1.4.10)
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def private_sqlite_file(path: Path) -> None:
    """The database file created owner-only (0600) in an owner-only folder before SQLite opens it:
    SQLite gives its -wal and -shm files the database file's mode."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    if path.stat().st_mode & 0o777 != 0o600:
        os.chmod(path, 0o600)


def alembic_config(engine: Engine, audit_key: bytes | None = None, keyring: Keyring | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    #: for the migration that keys the audit chain (0007): it re-hashes an existing plain chain
    cfg.attributes["audit_key"] = audit_key
    #: for the migration that seals personal fields (0019)
    cfg.attributes["keyring"] = keyring
    return cfg


REVISION = re.compile(r'^revision = "([^"]+)"$', re.MULTILINE)


def newest_revision() -> str:
    """The newest migration's revision, read from the newest file: the files are numbered in the
    order they apply (``0023_receipt_slowdown.py``; a test holds this to Alembic's own head)."""
    newest = max((MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    found = REVISION.search(newest.read_text(encoding="utf-8"))
    if found is None:
        raise RuntimeError(f"{newest.name} names no revision")
    return found.group(1)


def at_newest(engine: Engine) -> bool:
    """Whether the schema is already at the newest migration (one query, no Alembic loaded)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) == [newest_revision()]


def migrate(engine: Engine, audit_key: bytes | None = None, keyring: Keyring | None = None) -> None:
    """Bring the schema to the newest migration (run at every start). A schema already there is
    left alone without loading Alembic and the migrations: most starts, and every command."""
    if at_newest(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine, audit_key, keyring), "head")


def write_first(session: Session) -> None:
    """On SQLite, take the database's write lock now, as this transaction's first statement. A
    transaction that reads and then writes fails at once ("database is locked") when another
    connection committed in between (WAL keeps the reader on its snapshot, and busy_timeout does
    not help it); one that writes first waits its turn. Call it with no transaction open.
    PostgreSQL needs nothing."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE alembic_version SET version_num = version_num WHERE 0"))


def has_writes(session: Session) -> bool:
    """Whether the session's transaction has written anything (flushed or not) since it began."""
    return bool(session.info.get("wrote")) or bool(session.new or session.dirty or session.deleted)


class Database:
    """The engine and a session factory; one per process."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings)
        #: The audit chain's HMAC key travels with every session (``service.audit.service.record``);
        #: it comes from the settings, never from the database.
        self.audit_key = settings.secret()
        #: Personal fields are sealed with the keyring the session carries (``service.db.sealed``).
        self.keyring = keyring_for(settings)
        self.sessions = sessionmaker(
            self.engine, expire_on_commit=False, info={"audit_key": self.audit_key, KEYRING: self.keyring}
        )

        @event.listens_for(self.sessions, "after_flush")
        def _wrote(session: Session, _context: Any) -> None:
            session.info["wrote"] = True

        @event.listens_for(self.sessions, "after_transaction_end")
        def _ended(session: Session, transaction: Any) -> None:
            if transaction.parent is None:
                session.info.pop("wrote", None)

    def migrate(self) -> None:
        migrate(self.engine, self.audit_key, self.keyring)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction the caller commits; rolled back if anything raises."""
        with self.sessions() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> None:
        """One round trip to the database (readiness); raises if it does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
