"""The 控辍保学动态管理月报表, 辍学周报告 and 学生失学辍学信息报告 pages (``/monthly-reports``,
``/weekly-reports``, ``/info-reports``): a unit
reviews the figures made from its data and signs them; an office or the bureau sees the sum of its
units' signed reports, with the versions and corrections."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from service.campaigns import repository as campaigns_repository
from service.campaigns.models import Assignment
from service.errors import DocsignError
from service.http.deps import AssignmentObj, ScopeDep, ServicesDep, SessionDep
from service.http.exports import ExportDep
from service.http.reads import Reads, ReadsDep
from service.ledgers.excel import report_workbook
from service.ledgers.reports import (
    MONTHLY,
    TERM,
    WEEKLY,
    Draft,
    PeriodKind,
    differences,
    period_text,
)
from service.units.models import Unit
from service.web.common import PageUser, flash_redirect, render
from service.web.ledgers import XLSX

router = APIRouter(include_in_schema=False)

#: Where each kind's pages live.
BASE = {MONTHLY.assignment: "/monthly-reports", WEEKLY.assignment: "/weekly-reports", TERM.assignment: "/info-reports"}


def _kind_of(request: Request) -> PeriodKind:
    return next((k for k in (WEEKLY, TERM) if request.url.path.startswith(BASE[k.assignment])), MONTHLY)


def _page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    assignment: Assignment,
    error: str | None = None,
    reads: Reads | None = None,
) -> Response:
    reports = services.ledgers.reports
    draft = reports.review(session, scope, assignment)
    kind = draft.kind
    if reads is not None:
        _children_read(reads, kind, draft, "report", assignment.id, period=assignment.period)
    versions = reports.versions(session, assignment.unit_id, assignment.period)
    history = []
    for i, v in enumerate(versions):
        history.append(
            {
                "version": v.version,
                "document_id": v.document_id,
                "actor": v.actor,
                "at": v.created_at.astimezone(services.ledgers.tz).strftime("%Y-%m-%d %H:%M"),
                "changes": differences(versions[i - 1].figures, v.figures, kind) if i else [],
            }
        )
    return render(
        request,
        "monthly_report.html",
        user,
        assignment=assignment,
        draft=draft,
        kind=kind,
        base=BASE[kind.assignment],
        label=period_text(assignment.period),
        rows=kind.rows,
        history=history,
        error=error,
    )


def _children_read(reads: Reads, kind: PeriodKind, draft: Draft, subject: str, subject_id: int, **filter: Any) -> None:
    """A report that names children (the 学生失学辍学信息报告) is a read of them: one entry with
    its row count. The figures-only reports name nobody and are not recorded."""
    students = draft.figures.get("students") if kind.lists_children else None
    if students:
        reads.record(subject, subject_id, rows=len(students), kind=kind.assignment, **filter)


def _report_export(target: Unit, kind: PeriodKind, period: str, data: bytes) -> Response:
    name = f"{target.name}{kind.short}{period}.xlsx"
    return Response(
        data, media_type=XLSX, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    )


@router.get("/monthly-reports/export.xlsx")
@router.get("/weekly-reports/export.xlsx")
def monthly_export(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    period: str,
    unit: int | None = None,
) -> Response:
    """A unit's report for a period as Excel: a school's from its data, an office's or the bureau's
    summed from the signed reports. Figures only, no child named: no purpose asked."""
    target = services.ledgers.unit_for(session, scope, unit)
    kind = _kind_of(request)
    return _report_export(
        target, kind, period, report_workbook(services.ledgers.reports.draft_of(session, target, kind, period))
    )


@router.get("/info-reports/export.xlsx")
def info_report_export(
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    export: ExportDep,
    period: str,
    unit: int | None = None,
) -> Response:
    """The 学生失学辍学信息报告 names each child 失学, 辍学 or 疑似辍学 (no 身份证号 or phones):
    its export asks a purpose and is recorded with the children it lists."""
    target = services.ledgers.unit_for(session, scope, unit)
    draft = services.ledgers.reports.draft_of(session, target, TERM, period)
    data = report_workbook(draft)
    reads.record("info_report", period, rows=len(draft.figures.get("students", [])), exported=export, unit=target.id)
    return _report_export(target, TERM, period, data)


@router.get("/monthly-reports/{assignment_id}")
@router.get("/weekly-reports/{assignment_id}")
@router.get("/info-reports/{assignment_id}")
def monthly_report_page(
    request: Request,
    assignment: AssignmentObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
) -> Response:
    return _page(request, user, scope, services, session, assignment, reads=reads)


@router.post("/monthly-reports/{assignment_id}/sign")
@router.post("/weekly-reports/{assignment_id}/sign")
@router.post("/info-reports/{assignment_id}/sign")
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
        services.ledgers.reports.sign(session, scope, assignment, reviewed)
        session.commit()
    except DocsignError as exc:
        session.rollback()
        if exc.http_status in (403, 404):
            raise
        return _page(request, user, scope, services, session, assignment, exc.message)
    return flash_redirect(f"{BASE.get(assignment.kind, BASE[MONTHLY.assignment])}/{assignment.id}")


@router.get("/monthly-reports")
@router.get("/weekly-reports")
@router.get("/info-reports")
def monthly_summary(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    period: str | None = None,
    unit: int | None = None,
) -> Response:
    """A unit's report period by period: the sum of its schools' signed reports and who is missing."""
    kind = _kind_of(request)
    periods = campaigns_repository.report_periods(session, scope, kind.assignment)
    target = services.ledgers.unit_for(session, scope, unit)
    period = period if period in periods else (periods[0] if periods else None)
    draft = services.ledgers.reports.draft(session, target, period) if period else None
    if draft is not None:
        _children_read(reads, kind, draft, "report_summary", target.id, period=period)
    return render(
        request,
        "monthly_summary.html",
        user,
        unit=target,
        periods=[(p, period_text(p)) for p in periods],
        period=period,
        draft=draft,
        kind=kind,
        base=BASE[kind.assignment],
        rows=kind.rows,
    )
