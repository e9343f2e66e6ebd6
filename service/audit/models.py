from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base


class AuditEvent(Base):
    """One action. ``hash`` covers this row's content and the previous row's hash, so changing or
    deleting any row breaks every hash after it (``docsign audit verify`` finds where)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime]
    actor_user_id: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[int | None]
    client: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain's head: how many events there are and the last hash. Every append updates this one
    row first, which serializes appends on every database (a row lock on PostgreSQL, the write
    lock on SQLite), and lets the check notice events cut off the end of the log."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    events: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
