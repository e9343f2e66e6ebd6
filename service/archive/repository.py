"""The archive's reads: a user sees the documents their units issued or that were issued to them
(:func:`visible_to`); every list and lookup of a user goes through it."""

from __future__ import annotations

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.archive.models import Document, DocumentStatus, DocumentVersion
from service.db.scoping import valid_id


def visible_to(scope: Scope) -> Select[tuple[Document]]:
    return select(Document).where(
        or_(Document.issuer_unit_id.in_(scope.units), Document.subject_unit_id.in_(scope.units))
    )


def get(session: Session, scope: Scope, document_id: int | None) -> Document | None:
    if document_id is None or not valid_id(document_id):
        return None
    return session.scalar(visible_to(scope).where(Document.id == document_id))


def version(session: Session, scope: Scope, doc: Document, number: int) -> DocumentVersion | None:
    """Version ``number`` of a document the user sees."""
    if not valid_id(number):
        return None
    return session.scalar(
        select(DocumentVersion)
        .where(
            DocumentVersion.document_id.in_(
                visible_to(scope).where(Document.id == doc.id).with_only_columns(Document.id)
            )
        )
        .where(DocumentVersion.number == number)
    )


# --- the command line's operator, who reads the whole archive of the machine ---------------------


def last_version_id(session: Session) -> int:
    return session.scalar(select(func.max(DocumentVersion.id))) or 0


def timestamped_after(session: Session, after: int) -> int:
    """How many archive timestamps were added as versions after version ``after``."""
    query = select(func.count(DocumentVersion.id)).where(
        DocumentVersion.id > after, DocumentVersion.event == "timestamped"
    )
    return session.scalar(query) or 0


def versions_by_event(session: Session) -> list[tuple[str, int]]:
    """Archived versions by what made them (issued, signed, timestamped …): the notices issued and
    signed, as counters for the metrics."""
    query = select(DocumentVersion.event, func.count()).group_by(DocumentVersion.event)
    return [(event, n) for event, n in session.execute(query).all()]


def verification_backlog(session: Session) -> int:
    """Archived versions the background check has not verified yet (erased documents aside)."""
    query = (
        select(func.count())
        .select_from(DocumentVersion)
        .join(Document, Document.id == DocumentVersion.document_id)
        .where(DocumentVersion.verdict.is_(None), Document.status != DocumentStatus.ERASED)
    )
    return session.scalar(query) or 0
