"""The 控辍保学动态管理月报表 pages: a unit reviews the figures made from its data and signs them; an
office or the bureau sees the sum of its units' signed reports, with the versions and corrections."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select

from service.archive.service import TransactionNotFresh
from service.campaigns.models import Assignment
from service.errors import DocsignError, NotFoundForUser
from service.http.deps import AssignmentObj, ScopeDep, ServicesDep, SessionDep, refresh_periods
from service.ledgers.excel import report_workbook
from service.ledgers.reports import ROWS, covered, differences
from service.web.common import PageUser, flash_redirect, render
from service.web.ledgers import XLSX

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    assignment: Assignment,
    error: str | None = None,
) -> Response:
    reports = services.ledgers.reports
    draft = reports.review(session, scope, assignment)
    versions = reports.versions(session, assignment.unit_id, assignment.period)
    history = []
    for i, v in enumerate(versions):
        history.append(
            {
                "version": v.version,
                "document_id": v.document_id,
                "actor": v.actor,
                "at": v.created_at.astimezone(services.ledgers.tz).strftime("%Y-%m-%d %H:%M"),
                "changes": differences(versions[i - 1].figures, v.figures) if i else [],
            }
        )
    return render(
        request,
        "monthly_report.html",
        user,
        assignment=assignment,
        draft=draft,
        rows=ROWS,
        history=history,
        error=error,
    )


@router.get("/monthly-reports/export.xlsx")
def monthly_export(
    user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep, period: str, unit: int | None = None
) -> Response:
    """A unit's report for a period as Excel: a school's from its data, an office's or the bureau's
    summed from the signed reports."""
    target = services.ledgers.unit_for(session, scope, unit)
    try:
        covered(period)
    except ValueError:
        raise NotFoundForUser("没有这一期。") from None
    data = report_workbook(services.ledgers.reports.draft(session, target, period))
    name = f"{target.name}月报表{period}.xlsx"
    return Response(
        data, media_type=XLSX, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    )


@router.get("/monthly-reports/{assignment_id}")
def monthly_report_page(
    request: Request,
    assignment: AssignmentObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
) -> Response:
    return _page(request, user, scope, services, session, assignment)


@router.post("/monthly-reports/{assignment_id}/sign")
def monthly_report_sign(
    request: Request,
    assignment: AssignmentObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reviewed: Annotated[str, Form()] = "",
) -> Response:
    try:
        session.commit()  # the document is archived in a transaction of its own
        services.ledgers.reports.sign(session, scope, assignment, reviewed)
        session.commit()
    except TransactionNotFresh:
        raise
    except DocsignError as exc:
        session.rollback()
        if exc.http_status in (403, 404):
            raise
        return _page(request, user, scope, services, session, assignment, exc.message)
    return flash_redirect(f"/monthly-reports/{assignment.id}")


@router.get("/monthly-reports")
def monthly_summary(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    period: str | None = None,
    unit: int | None = None,
) -> Response:
    """A unit's report period by period: the sum of its schools' signed reports and who is missing."""
    refresh_periods(services, session)
    periods = sorted(
        set(session.scalars(select(Assignment.period).where(Assignment.kind == "report", Assignment.period != ""))),
        reverse=True,
    )
    target = services.ledgers.unit_for(session, scope, unit)
    period = period if period in periods else (periods[0] if periods else None)
    draft = services.ledgers.reports.draft(session, target, period) if period else None
    return render(
        request, "monthly_summary.html", user, unit=target, periods=periods, period=period, draft=draft, rows=ROWS
    )
