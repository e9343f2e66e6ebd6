"""The database's part of a backup: one consistent snapshot, taken while the service runs.

- **SQLite**: the online backup API (``sqlite3.Connection.backup``) copies the file in one step,
  inside one read transaction, so writers (the server, a running batch) go on and the copy is the
  database as of one moment.
- **PostgreSQL**: a ``REPEATABLE READ`` transaction exports its snapshot; ``pg_dump`` (custom format)
  dumps exactly that snapshot, and the same transaction counts the rows and lists the archived
  files the rows name. ``pg_restore --single-transaction`` restores it whole or not at all.

What the snapshot says (:class:`Snapshot`: the schema's revision, every table's row count, the
archived files each store must hold) goes into the manifest and is checked again after a restore.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

import service.tables  # noqa: F401 - every table in Base.metadata, to count them all
from service.backup.errors import BackupFailed, BackupIncompatible, BackupTargetNotEmpty, BackupToolMissing
from service.db.base import Base
from service.db.session import MIGRATIONS
from service.settings import Settings
from service.storage.base import BLOCK

#: Columns naming archived files, by store (``service.container.FILE_COLUMNS`` with the archive's own).
FileColumns = Mapping[str, Sequence[Any]]


@dataclass
class Snapshot:
    dialect: str
    #: ``sqlite3`` (the database file) or ``pg_dump-custom``.
    format: str
    revision: str
    counts: dict[str, int] = field(default_factory=dict)
    #: Every archived file a row names, by store, sorted.
    objects: dict[str, list[str]] = field(default_factory=dict)


class Sink(Protocol):
    """Where a dump is written (a sealed file of the backup)."""

    def write(self, data: bytes, /) -> int: ...


def dialect_of(settings: Settings) -> str:
    return "sqlite" if settings.database.startswith("sqlite") else "postgresql"


def _sqlite_path(settings: Settings) -> Path:
    url = settings.database
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        raise BackupIncompatible("只能备份和恢复保存在文件中的 SQLite 数据库。")
    return Path(url.removeprefix("sqlite:///"))


def describe(conn: Connection, columns: FileColumns) -> Snapshot:
    """What the database holds as ``conn`` sees it (inside the snapshot's transaction)."""
    revision = (
        conn.scalar(text("SELECT version_num FROM alembic_version")) if _has_table(conn, "alembic_version") else None
    )
    if revision is None:
        raise BackupFailed("数据库还没有建立结构（从未启动过服务），没有可备份的数据。")
    counts = {t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0) for t in Base.metadata.sorted_tables}
    objects: dict[str, list[str]] = {}
    for store, cols in columns.items():
        keys: set[str] = set()
        for col in cols:
            keys.update(k for k in conn.scalars(select(col).where(col.is_not(None)).distinct()) if k)
        objects[store] = sorted(keys)
    return Snapshot(conn.dialect.name, "", str(revision), counts, objects)


def _has_table(conn: Connection, name: str) -> bool:
    return name in inspect(conn).get_table_names()


def count_rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0) for t in Base.metadata.sorted_tables}


def dump(settings: Settings, columns: FileColumns, sink: Sink, work: Path) -> Snapshot:
    """Write one consistent snapshot of the database to ``sink``; ``work`` holds a SQLite copy
    while it is read (a folder of this process under the data folder)."""
    if dialect_of(settings) == "sqlite":
        return _dump_sqlite(settings, columns, sink, work)
    return _dump_postgres(settings, columns, sink)


def _dump_sqlite(settings: Settings, columns: FileColumns, sink: Sink, work: Path) -> Snapshot:
    source = _sqlite_path(settings)
    if not source.is_file():
        raise BackupFailed(f"找不到数据库文件 {source}：这台机器上还没有数据，或 DOCSIGN_DATA_DIR 设置有误。")
    copy = work / "database.sqlite3"
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(copy)
    try:
        # one step (pages=-1): the whole copy inside one read transaction, writers not stopped
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        dst.close()
        src.close()
    engine = create_engine(f"sqlite:///{copy.as_posix()}")
    try:
        with engine.connect() as conn:
            snapshot = describe(conn, columns)
    finally:
        engine.dispose()
    snapshot.dialect, snapshot.format = "sqlite", "sqlite3"
    with open(copy, "rb") as fh:
        while block := fh.read(BLOCK):
            sink.write(block)
    copy.unlink()
    return snapshot


def _libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """The database's address for pg_dump and pg_restore, and their environment (the password
    goes in ``PGPASSWORD``, never on a command line other users can read)."""
    url = make_url(settings.database)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _major(version: str) -> int:
    """``pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`` -> 15."""
    found = re.search(r"\(PostgreSQL\)\s+(\d+)", version)
    return int(found.group(1)) if found else 0


def _pg_tool(name: str, server_major: int) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupToolMissing(
            f"本机没有 {name}：备份和恢复 PostgreSQL 数据库需要它。请安装 PostgreSQL {server_major} 或更新版本的客户端"
            f"（Debian/Ubuntu：apt install postgresql-client-{server_major}）。"
        )
    found = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    if _major(found) < server_major:
        raise BackupToolMissing(
            f"本机的 {name} 是 {found.strip()}，比数据库服务器（PostgreSQL {server_major}）旧，不能使用。"
            f"请安装 PostgreSQL {server_major} 或更新版本的客户端。"
        )
    return path


def _server_major(conn: Connection) -> int:
    return int(conn.scalar(text("SHOW server_version_num")) or 0) // 10000


def _dump_postgres(settings: Settings, columns: FileColumns, sink: Sink) -> Snapshot:
    engine = create_engine(settings.database, isolation_level="REPEATABLE READ")
    address, env = _libpq(settings)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            pg_dump = _pg_tool("pg_dump", _server_major(conn))
            exported = str(conn.scalar(text("SELECT pg_export_snapshot()")))
            snapshot = describe(conn, columns)
            # pg_dump sees exactly this transaction's snapshot, which stays open until it is done
            command = [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={exported}"]
            _run_streaming([*command, "--dbname", address], env, sink)
    finally:
        engine.dispose()
    snapshot.dialect, snapshot.format = "postgresql", "pg_dump-custom"
    return snapshot


def _run_streaming(command: list[str], env: dict[str, str], sink: Sink) -> None:
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env)
        assert proc.stdout is not None
        try:
            while block := proc.stdout.read(BLOCK):
                sink.write(block)
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            errors.seek(0)
            raise BackupFailed(f"pg_dump 未能导出数据库：{errors.read().decode(errors='replace').strip()[-800:]}")


# -- restoring ------------------------------------------------------------------------------------


def check_revision(revision: str) -> None:
    """Refuse a backup made by a newer version of the service (its schema is unknown here)."""
    scripts = ScriptDirectory(str(MIGRATIONS))
    try:
        known = scripts.get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupIncompatible(
            f"备份的数据库结构版本（{revision}）比本机安装的服务新：请先把本机的服务升级到备份时的版本或更新版本，再恢复。"
        )


def check_empty(settings: Settings, dialect: str) -> None:
    """Refuse a database that holds any table: a restore goes into a new, empty database."""
    if dialect != dialect_of(settings):
        names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
        raise BackupIncompatible(
            f"这份备份的数据库是 {names[dialect]}，当前配置的是 {names[dialect_of(settings)]}：请把 DOCSIGN_DATABASE_URL "
            "设为同一种数据库后再恢复。"
        )
    if dialect == "sqlite" and not _sqlite_path(settings).exists():
        return
    engine = create_engine(settings.database)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise BackupTargetNotEmpty(
            f"目标数据库不是空的（已有 {len(tables)} 张表）：只能恢复到新建的空数据库中，没有恢复任何内容。"
            "请新建一个空数据库（或换一个数据目录）并指向它后重试。"
        )


def restore(settings: Settings, dialect: str, staged: Path) -> Callable[[], None]:
    """Put the staged dump in place (the target was checked empty); returns what undoes it."""
    if dialect == "sqlite":
        return _restore_sqlite(settings, staged)
    return _restore_postgres(settings, staged)


def _sqlite_companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def _restore_sqlite(settings: Settings, staged: Path) -> Callable[[], None]:
    target = _sqlite_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = target.with_name(target.name + ".restoring")
    fd = os.open(incoming, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, open(staged, "rb") as src:
        shutil.copyfileobj(src, out, BLOCK)
        out.flush()
        os.fsync(out.fileno())
    for stale in _sqlite_companions(target):  # of an empty file that stood there
        stale.unlink(missing_ok=True)
    os.replace(incoming, target)

    def undo() -> None:
        for path in (target, *_sqlite_companions(target)):
            path.unlink(missing_ok=True)

    return undo


def _restore_postgres(settings: Settings, staged: Path) -> Callable[[], None]:
    engine = create_engine(settings.database)
    address, env = _libpq(settings)
    try:
        with engine.connect() as conn:
            pg_restore = _pg_tool("pg_restore", _server_major(conn))
    finally:
        engine.dispose()
    command = [pg_restore, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"]
    done = subprocess.run([*command, "--dbname", address, str(staged)], env=env, capture_output=True, check=False)
    if done.returncode != 0:  # one transaction: nothing of it stays
        raise BackupFailed(f"pg_restore 未能恢复数据库：{done.stderr.decode(errors='replace').strip()[-800:]}")

    def undo() -> None:
        """Drop what the restore made; the database held no table before it."""
        engine = create_engine(settings.database)
        try:
            with engine.begin() as conn:
                for table in inspect(conn).get_table_names():
                    conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
                for sequence in inspect(conn).get_sequence_names():
                    conn.execute(text(f'DROP SEQUENCE IF EXISTS "{sequence}" CASCADE'))
        finally:
            engine.dispose()

    return undo


@contextlib.contextmanager
def opened(settings: Settings) -> Iterator[Engine]:
    engine = create_engine(settings.database)
    try:
        yield engine
    finally:
        engine.dispose()
