"""The fields of a guardian notice, the same for a case's notice and a roster's row, and the notices a
case was sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.archive.models import Document, DocumentStatus
from service.cases.models import Case
from service.units.models import Unit


def notice_fields(
    *,
    guardian_name: str,
    student_name: str,
    id_number: str,
    grade_class: str | None,
    school: Unit,
    issuer: Unit,
    report_by: dt.date,
    issue_date: dt.date,
) -> dict[str, Any]:
    """The fields of a guardian notice (入学, 复学, 限期复学), for one case or a roster's row."""
    fields: dict[str, Any] = {
        "guardian_name": guardian_name,
        "student_name": student_name,
        "student_id_number": id_number,
        "school_name": school.name,
        "report_by": report_by.isoformat(),
        "issuer_name": issuer.name,
        "issue_date": issue_date.isoformat(),
    }
    if grade_class:
        fields["grade_class"] = grade_class
    if school.address:
        fields["school_address"] = school.address
    if school.phone:
        fields["contact_phone"] = school.phone
    return fields


def sent_notices(session: Session, case: Case, kind: str) -> list[Document]:
    """The notices of this kind the case was sent and that still stand, oldest first."""
    return list(
        session.scalars(
            select(Document)
            .where(Document.case_id == case.id, Document.kind == kind, Document.status != DocumentStatus.REVOKED)
            .order_by(Document.issued_at)
        )
    )
