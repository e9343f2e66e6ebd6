"""The audit administrator's reads of the audit log and the access log, and their exports."""

from __future__ import annotations

import zoneinfo
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

from service.audit import repository as audit_repository
from service.audit.export import export_log
from service.audit.schemas import AccessEntriesPage, AccessEntryOut, AuditEventOut, AuditEventsPage
from service.http.auditlog import LogQueryDep
from service.http.deps import ScopeDep, ServicesDep, SessionDep

router = APIRouter(prefix="/api/audit", tags=["审计"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/events",
    response_model=AuditEventsPage,
    summary="审计日志（审计管理员）：按人员、单位、操作、时间筛选，最新的在前",
)
def audit_events(query: LogQueryDep, scope: ScopeDep, session: SessionDep) -> AuditEventsPage:
    page = audit_repository.events(session, scope, query.filter, query.page)
    return AuditEventsPage(
        items=[AuditEventOut.of(e) for e in page.rows], total=page.total, page=page.page, pages=page.pages
    )


@router.get("/access", response_model=AccessEntriesPage, summary="访问日志（审计管理员）：谁查看了学生信息，筛选同上")
def access_entries(query: LogQueryDep, scope: ScopeDep, session: SessionDep) -> AccessEntriesPage:
    page = audit_repository.access(session, scope, query.filter, query.page)
    return AccessEntriesPage(
        items=[AccessEntryOut.of(a) for a in page.rows], total=page.total, page=page.page, pages=page.pages
    )


@router.get(
    "/{log}/export.xlsx",
    summary="导出筛选后的审计日志或访问日志（Excel，审计管理员；导出本身记入审计日志）",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}}},
)
def export(
    log: Literal["events", "access"], query: LogQueryDep, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    data, _ = export_log(
        session, scope, log, query.filter, services.clock.now(), zoneinfo.ZoneInfo(services.settings.timezone)
    )
    name = ("审计日志" if log == "events" else "访问日志") + ".xlsx"
    return Response(
        data, media_type=XLSX, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    )
