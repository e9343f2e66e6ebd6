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


class AccessEntry(Base):
    """One read of children's data: who (account and role), when, from where, through which route
    or command, and what: one child's record (``subject`` and its id: a case, a document) or one
    list (its name, ``filter`` and ``rows``). It names the record, never the child's personal data.
    Chained and keyed as the audit log is (``hash`` covers this row and the previous hash), in its
    own table so reads never crowd out actions; ``docsign access verify`` checks it."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    user_id: Mapped[int | None] = mapped_column(index=True)
    username: Mapped[str] = mapped_column(String(80))
    role: Mapped[str | None] = mapped_column(String(32))
    unit_id: Mapped[int | None]
    client: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    #: The page, API route, export or command, e.g. ``GET /api/cases/{case_id}``.
    via: Mapped[str] = mapped_column(String(120))
    #: What was read: ``case``, ``document``, ``roster``, ``ledger``, ``case_list``...
    subject: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    #: A list's filter (status, unit, year) or what part of a record (a page, a file).
    filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: How many rows a list or an export held.
    rows: Mapped[int | None]
    #: An export's purpose (用途) as the user gave it; None for a page or a JSON read.
    purpose: Mapped[str | None] = mapped_column(String(80))
    #: Whether an export held full 身份证号 and phone numbers (True) or masked ones (False).
    full: Mapped[bool | None]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AccessHead(Base):
    """The access log's head, as ``AuditHead`` is the audit log's: every batch of entries updates
    it first (serializing writers) and it counts the entries, so entries cut off the end show."""

    __tablename__ = "access_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    entries: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
