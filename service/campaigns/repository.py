"""The campaigns' reads: what a user sees of campaigns (:func:`visible_to`: their bureau's, or one
with an assignment of their units) and of assignments (:func:`assignments_visible_to`: those of
their units). The pages and the API list through the same functions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.archive.models import Document
from service.campaigns.models import Assignment, Campaign
from service.campaigns.service import REPORT_KINDS
from service.db.scoping import valid_id


def visible_to(scope: Scope) -> Select[tuple[Campaign]]:
    assigned = exists().where(Assignment.campaign_id == Campaign.id, Assignment.unit_id.in_(scope.units))
    return select(Campaign).where(or_(Campaign.bureau_id.in_(scope.units), assigned))


def get(session: Session, scope: Scope, campaign_id: int) -> Campaign | None:
    return session.scalar(visible_to(scope).where(Campaign.id == campaign_id)) if valid_id(campaign_id) else None


def campaigns(session: Session, scope: Scope) -> Sequence[Campaign]:
    """The campaigns a user sees, newest first (the dashboard, the office's page, ``/api/campaigns``)."""
    return session.scalars(visible_to(scope).order_by(Campaign.id.desc())).all()


def assignments_visible_to(scope: Scope) -> Select[tuple[Assignment]]:
    return select(Assignment).where(Assignment.unit_id.in_(scope.units))


def get_assignment(session: Session, scope: Scope, assignment_id: int) -> Assignment | None:
    if not valid_id(assignment_id):
        return None
    return session.scalar(assignments_visible_to(scope).where(Assignment.id == assignment_id))


def assignments(session: Session, scope: Scope) -> Sequence[Assignment]:
    """Every assignment of the user's units, newest first."""
    return session.scalars(assignments_visible_to(scope).order_by(Assignment.id.desc())).all()


def own_reports(session: Session, scope: Scope, limit: int = 12) -> Sequence[Assignment]:
    """The reports the user's own unit files, the latest periods first."""
    query = assignments_visible_to(scope).where(
        Assignment.unit_id == scope.unit.id, Assignment.kind.in_(REPORT_KINDS.values())
    )
    return session.scalars(query.order_by(Assignment.deadline.desc(), Assignment.id.desc()).limit(limit)).all()


def own_documents(session: Session, scope: Scope) -> Sequence[Assignment]:
    """The documents the user's own unit signs, newest first."""
    query = assignments_visible_to(scope).where(
        Assignment.unit_id == scope.unit.id, Assignment.document_id.is_not(None)
    )
    return session.scalars(query.order_by(Assignment.id.desc())).all()


def document(session: Session, scope: Scope, assignment: Assignment) -> Document | None:
    """The document of an assignment the user sees (None for a report to upload)."""
    if assignment.document_id is None:
        return None
    visible = (
        assignments_visible_to(scope).where(Assignment.id == assignment.id).with_only_columns(Assignment.document_id)
    )
    return session.scalar(select(Document).where(Document.id.in_(visible)))


def report_periods(session: Session, scope: Scope, kind: str) -> list[str]:
    """The periods of a report kind (an assignment kind) the user's units have, the latest first."""
    query = (
        assignments_visible_to(scope)
        .where(Assignment.kind == kind, Assignment.period != "")
        .with_only_columns(Assignment.period)
        .distinct()
    )
    return sorted(session.scalars(query), reverse=True)
