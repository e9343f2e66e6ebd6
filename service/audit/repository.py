"""The audit log's reads for the command line's operator (who reads the whole log of the machine)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.audit.models import AuditEvent


def last_id(session: Session) -> int:
    return session.scalar(select(func.max(AuditEvent.id))) or 0


def events_after(session: Session, after: int, actions: Iterable[str]) -> Sequence[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.id > after, AuditEvent.action.in_(tuple(actions)))
    return session.scalars(query.order_by(AuditEvent.id)).all()
