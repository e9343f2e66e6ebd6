"""The cases' reads: a user sees the cases of the schools they see (:func:`visible_to`); the case
list of the pages and of the API is :func:`cases`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.cases.models import OPEN_STATUSES, Case, CaseFile
from service.db.scoping import valid_id

#: The ``status`` filter meaning every case not closed.
OPEN = "open"
#: The ``status`` filter meaning every case.
ALL = "all"


def visible_to(scope: Scope) -> Select[tuple[Case]]:
    return select(Case).where(Case.school_id.in_(scope.units))


def get(session: Session, scope: Scope, case_id: int) -> Case | None:
    return session.scalar(visible_to(scope).where(Case.id == case_id)) if valid_id(case_id) else None


def cases(session: Session, scope: Scope, status: str | None = None) -> Sequence[Case]:
    """The cases a user sees, newest first: all of them (``None`` or ``"all"``), the open ones
    (``"open"``), or those in one status."""
    query = visible_to(scope).order_by(Case.id.desc())
    if status == OPEN:
        query = query.where(Case.status.in_([s.value for s in OPEN_STATUSES]))
    elif status and status != ALL:
        query = query.where(Case.status == status)
    return session.scalars(query).all()


def case_file(session: Session, scope: Scope, case: Case, file_id: int) -> CaseFile | None:
    """An attachment of a case the user sees."""
    if not valid_id(file_id):
        return None
    cases = visible_to(scope).where(Case.id == case.id).with_only_columns(Case.id)
    return session.scalar(select(CaseFile).where(CaseFile.id == file_id, CaseFile.case_id.in_(cases)))
