"""The audit administrator's page: the audit log and the access log, filtered, paged, exported."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.accounts.models import ROLE_TITLES
from service.audit import repository as audit_repository
from service.audit.export import export_log
from service.audit.repository import Page
from service.audit.schemas import access_view, event_view
from service.audit.titles import ACTION_FILTERS
from service.http.auditlog import LogQueryDep
from service.http.deps import ScopeDep, ServicesDep, SessionDep
from service.units import repository as units_repository
from service.web.common import PageUser, render, tz_of

router = APIRouter(include_in_schema=False)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LOGS = (("events", "审计日志"), ("access", "访问日志（学生信息）"))


@router.get("/audit")
def audit_page(
    request: Request,
    user: PageUser,
    query: LogQueryDep,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    log: str = "events",
) -> Response:
    log = "access" if log == "access" else "events"
    tz = tz_of(services)
    units = units_repository.listed(session, scope.administered)
    names = {u.id: u.name for u in units}
    page: Page[Any]
    if log == "access":
        page = audit_repository.access(session, scope, query.filter, query.page)
        titles = {r.value: t for r, t in ROLE_TITLES.items()}
        rows = [access_view(a, tz, names, titles) for a in page.rows]
    else:
        page = audit_repository.events(session, scope, query.filter, query.page)
        rows = [event_view(e, tz, names) for e in page.rows]
    form = {k: v for k, v in query.form.items() if v}

    def link(**changes: object) -> str:
        return "?" + urlencode({**form, "log": log, **{k: v for k, v in changes.items() if v not in (None, "")}})

    return render(
        request,
        "audit.html",
        user,
        log=log,
        logs=LOGS,
        rows=rows,
        total=page.total,
        page=page.page,
        pages=page.pages,
        form=query.form,
        units=units,
        action_filters=ACTION_FILTERS,
        tab_links={key: "?" + urlencode({**form, "log": key}) for key, _ in LOGS},
        prev_link=link(page=page.page - 1) if page.page > 1 else None,
        next_link=link(page=page.page + 1) if page.page < page.pages else None,
        export_link=f"/audit/export.xlsx?{urlencode({**form, 'log': log})}",
        filtered=bool(form),
    )


@router.get("/audit/export.xlsx")
def audit_export(
    user: PageUser, query: LogQueryDep, scope: ScopeDep, services: ServicesDep, session: SessionDep, log: str = "events"
) -> Response:
    log = "access" if log == "access" else "events"
    data, _ = export_log(session, scope, log, query.filter, services.clock.now(), tz_of(services))
    name = ("审计日志" if log == "events" else "访问日志") + ".xlsx"
    return Response(
        data, media_type=XLSX, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    )
