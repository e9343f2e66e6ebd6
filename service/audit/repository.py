"""The audit log's reads: the audit administrator's filtered pages of the audit log and the access
log (:func:`events`, :func:`access`), and at the end those of the command line's operator (who reads
the whole log of the machine)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.orm import Session

from service.audit.models import AccessEntry, AuditEvent

#: Rows on one page of the audit page and of ``GET /api/audit/...``.
PAGE_SIZE = 50
#: The most rows one export holds (a narrower filter gives the rest).
EXPORT_ROWS = 50_000
#: Said to everyone but the audit administrator.
AUDIT_ONLY = "只有审计管理员可以查看和导出审计日志与访问日志。"


class ReadsAudit(Protocol):
    """What the log's reads need of whoever reads (``accounts.scope.Scope`` is one): whether they
    may read the logs, and the refusal to raise (noted for the audit log) when they may not."""

    @property
    def reads_audit(self) -> bool: ...

    def refuse(self, message: str | None = None) -> Exception: ...


@dataclass(frozen=True)
class LogFilter:
    """What the audit administrator asks for; every part optional."""

    #: A person: an account's id (digits), or part of a name or username as the log wrote it.
    person: str = ""
    #: Accounts the face found for ``person`` (their ids), matched as well as the text.
    person_ids: tuple[int, ...] = ()
    #: The unit the actor acted for (the audit log) or the reader belonged to (the access log).
    unit_id: int | None = None
    #: An action's beginning (``auth.``, ``user.``, ``access.denied``); in the access log, what
    #: was read (``case``, ``ledger``...).
    action: str = ""
    #: From ``since`` (inclusive) to ``until`` (exclusive).
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def query(self) -> dict[str, Any]:
        """The filter as the export's audit entry and the page's links name it."""
        return {
            k: v
            for k, v in (
                ("person", self.person),
                ("unit_id", self.unit_id),
                ("action", self.action),
                ("from", self.since.isoformat() if self.since else None),
                ("to", self.until.isoformat() if self.until else None),
            )
            if v not in (None, "")
        }


Row = TypeVar("Row")


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: Sequence[Row]
    total: int
    page: int
    size: int = PAGE_SIZE
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _require(scope: ReadsAudit) -> None:
    if not scope.reads_audit:
        raise scope.refuse(AUDIT_ONLY)


def _person(text: str, ids: Iterable[int], id_column: Any, name_column: Any) -> ColumnElement[bool]:
    matches: list[ColumnElement[bool]] = []
    ids = set(ids)
    if text.isdigit() and len(text) < 19:
        ids.add(int(text))
    if ids:
        matches.append(id_column.in_(sorted(ids)))
    if text:
        matches.append(name_column.contains(text, autoescape=True))
    return or_(*matches) if matches else false()


def _filtered(
    query: Select[tuple[Row]], f: LogFilter, user_id: Any, name: Any, unit_id: Any, action: Any, at: Any
) -> Select[tuple[Row]]:
    """``query`` narrowed by the filter, over the given columns of either log."""
    if f.person or f.person_ids:
        query = query.where(_person(f.person, f.person_ids, user_id, name))
    if f.unit_id is not None:
        query = query.where(unit_id == f.unit_id)
    if f.action:
        query = query.where(action.startswith(f.action, autoescape=True))
    if f.since is not None:
        query = query.where(at >= f.since)
    if f.until is not None:
        query = query.where(at < f.until)
    return query


def _events_query(f: LogFilter) -> Select[tuple[AuditEvent]]:
    e = AuditEvent
    return _filtered(select(e), f, e.actor_user_id, e.actor, e.unit_id, e.action, e.at)


def _access_query(f: LogFilter) -> Select[tuple[AccessEntry]]:
    a = AccessEntry
    return _filtered(select(a), f, a.user_id, a.username, a.unit_id, a.subject, a.at)


def _page(session: Session, query: Select[tuple[Row]], order: Any, page: int, size: int) -> Page[Row]:
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.scalars(query.order_by(*order).offset((page - 1) * size).limit(size)).all()
    return Page(rows, total, page, size)


def events(session: Session, scope: ReadsAudit, f: LogFilter, page: int = 1, size: int = PAGE_SIZE) -> Page[AuditEvent]:
    """A page of the audit log, newest first: for the audit administrator only."""
    _require(scope)
    return _page(session, _events_query(f), (AuditEvent.id.desc(),), page, size)


def access(
    session: Session, scope: ReadsAudit, f: LogFilter, page: int = 1, size: int = PAGE_SIZE
) -> Page[AccessEntry]:
    """A page of the access log (reads of children's data), newest first: for the audit administrator only."""
    _require(scope)
    return _page(session, _access_query(f), (AccessEntry.id.desc(),), page, size)


def events_for_export(session: Session, scope: ReadsAudit, f: LogFilter) -> Sequence[AuditEvent]:
    _require(scope)
    return session.scalars(_events_query(f).order_by(AuditEvent.id.desc()).limit(EXPORT_ROWS)).all()


def access_for_export(session: Session, scope: ReadsAudit, f: LogFilter) -> Sequence[AccessEntry]:
    _require(scope)
    return session.scalars(_access_query(f).order_by(AccessEntry.id.desc()).limit(EXPORT_ROWS)).all()


# --- the command line's operator ------------------------------------------------------------------


def last_id(session: Session) -> int:
    return session.scalar(select(func.max(AuditEvent.id))) or 0


def events_after(session: Session, after: int, actions: Iterable[str]) -> Sequence[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.id > after, AuditEvent.action.in_(tuple(actions)))
    return session.scalars(query.order_by(AuditEvent.id)).all()
