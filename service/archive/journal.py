"""The journal of a request's archive writes, kept apart from the request's own transaction.

A request stores a file (evidence, a filed report, a signed document) before its transaction records
it. The journal entry that lets recovery delete the file if the record never commits must be durable
*before* the file is stored, so it cannot wait for the request's commit; and it cannot be written in a
second transaction of the same database while the request's transaction is open: on SQLite that
transaction may already hold the one write lock, and the request would wait for itself (the embedded
profile's "database is locked" after 30 s, with two files in one form).

So a request's entries go to a journal of their own: on SQLite a small database file beside the main
one (its own write lock), on PostgreSQL the ``archive_pending`` table in a short transaction of its
own (row locks: nothing waits). An entry is removed once the request has committed the record; one
whose request rolled back or died stays until recovery (``Archive.sweep``) deletes the file if no
committed row names it. Jobs journal in their own session (``archive_pending``, with their id), as
their checkpoints commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    insert,
    select,
)
from sqlalchemy.orm import Session

from service.archive.models import PendingWrite
from service.db.session import private_sqlite_file

#: The journal file's table (SQLite): the request entries of ``archive_pending``, without a job.
_SIDE = Table(
    "archive_pending",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("store", String(16), nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Entry:
    id: int
    store: str
    sha256: str
    created_at: dt.datetime


class RequestJournal:
    """Entries of requests' writes in flight, committed apart from the requests' transactions."""

    def __init__(self, main: Engine, side_path: Path | None = None) -> None:
        if main.dialect.name == "sqlite":
            path = side_path or Path(str(main.url.database)).with_name("archive-journal.sqlite3")
            private_sqlite_file(path)
            self.engine = create_engine(f"sqlite:///{path.as_posix()}", connect_args={"timeout": 30})

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            _SIDE.create(self.engine, checkfirst=True)
            self.table: Table = _SIDE
            self.apart = True
        else:
            self.engine = main
            self.table = PendingWrite.__table__  # type: ignore[assignment]
            self.apart = False

    def add(self, store: str, keys: Sequence[str], at: dt.datetime) -> list[int]:
        """Entries for files about to be stored, committed now."""
        if not keys:
            return []
        ids = []
        with self.engine.begin() as conn:
            for k in keys:
                inserted = conn.execute(insert(self.table).values(store=store, sha256=k, created_at=at))
                key = inserted.inserted_primary_key
                assert key is not None
                ids.append(int(key[0]))
        return ids

    def forget(self, ids: Sequence[int]) -> None:
        if ids:
            with self.engine.begin() as conn:
                conn.execute(delete(self.table).where(self.table.c.id.in_(list(ids))))

    def forget_once_committed(self, session: Session, ids: Sequence[int]) -> None:
        """Remove the entries when ``session``'s transaction commits the records; if it rolls back,
        they stay for recovery to delete the files no committed row names."""
        if not ids:
            return
        ended = False

        def committed(_session: Session) -> None:
            nonlocal ended
            if not ended:
                ended = True
                self.forget(ids)

        def rolled_back(_session: Session) -> None:
            nonlocal ended
            ended = True

        event.listen(session, "after_commit", committed, once=True)
        event.listen(session, "after_rollback", rolled_back, once=True)

    def entries(self, older_than: dt.datetime | None = None) -> list[Entry]:
        """Request entries (no job), all or those written before ``older_than``."""
        query = select(self.table.c.id, self.table.c.store, self.table.c.sha256, self.table.c.created_at)
        if not self.apart:
            query = query.where(self.table.c.job_id.is_(None))
        if older_than is not None:
            query = query.where(self.table.c.created_at <= older_than)
        with self.engine.connect() as conn:
            return [Entry(int(r.id), r.store, r.sha256, _aware(r.created_at)) for r in conn.execute(query)]

    def dispose(self) -> None:
        if self.apart:
            self.engine.dispose()


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
