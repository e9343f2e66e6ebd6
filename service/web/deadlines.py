"""The statutory deadlines: what is due, the term start dates and the rules a bureau sets."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from service.cases.checks import parse_date
from service.errors import DocsignError, InvalidInput
from service.http.deps import ScopeDep, ServicesDep, SessionDep
from service.http.exports import ExportDep
from service.http.reads import ReadsDep
from service.ledgers.deadlines import ANCHORS, LEAD_ANCHORS
from service.ledgers.excel import due_workbook
from service.units.models import UnitType
from service.units.service import bureau_of
from service.web.common import PageUser, flash_redirect, render
from service.web.ledgers import XLSX

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    error: str | None = None,
) -> Response:
    bureau = bureau_of(scope.unit)
    deadlines = services.ledgers.deadlines
    rules = deadlines.rules(session, bureau)
    basis = deadlines.basis(session, bureau)
    due = [d.to_dict() for d in services.ledgers.due(session, scope)]
    return render(
        request,
        "deadlines.html",
        user,
        due=due,
        rules=rules,
        anchors=ANCHORS,
        leads=LEAD_ANCHORS,
        terms=deadlines.terms(session, bureau),
        basis=basis,
        target_source=deadlines.target_source(session, bureau),
        can_edit=scope.unit.type == UnitType.BUREAU and user.role == "bureau_staff",
        error=error,
        status_code=200,
    )


@router.get("/deadlines")
def deadlines_page(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep, reads: ReadsDep
) -> Response:
    page = _page(request, user, scope, services, session)
    reads.record("due_list")  # due items name the children of their cases
    return page


@router.get("/deadlines/export.xlsx")
def deadlines_export(
    user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep, reads: ReadsDep, export: ExportDep
) -> Response:
    """The due list names children (no 身份证号 or phones): its export asks a purpose."""
    items = services.ledgers.due(session, scope)
    reads.record("due_list", rows=len(items), exported=export, export="xlsx")
    data = due_workbook(f"{scope.unit.name}到期事项（{services.ledgers.today().isoformat()}）", items)
    name = f"{scope.unit.name}到期事项.xlsx"
    return Response(
        data, media_type=XLSX, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    )


@router.post("/deadlines/done")
def deadline_done(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    unit_id: Annotated[int, Form()],
    key: Annotated[str, Form()],
    period: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
) -> Response:
    try:
        services.ledgers.deadlines.mark_done(session, scope, unit_id, key, period, note)
        session.commit()
    except DocsignError as exc:
        session.rollback()
        if exc.http_status in (403, 404):
            raise
        return _page(request, user, scope, services, session, exc.message)
    return flash_redirect(request.headers.get("referer") or "/deadlines")


@router.post("/deadlines/terms")
def deadline_term(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    name: Annotated[str, Form()] = "",
    starts_on: Annotated[str, Form()] = "",
) -> Response:
    try:
        services.ledgers.set_term(session, scope, name, parse_date(starts_on))
        session.commit()
    except DocsignError as exc:
        session.rollback()
        if exc.http_status == 403:
            raise
        return _page(request, user, scope, services, session, exc.message)
    return flash_redirect("/deadlines")


@router.post("/deadlines/rules")
def deadline_rule(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    key: Annotated[str, Form()] = "",
    days: Annotated[int, Form()] = 0,
    lead_days: Annotated[int, Form()] = 0,
    active: Annotated[str, Form()] = "",
    source: Annotated[str | None, Form()] = None,
) -> Response:
    try:
        services.ledgers.deadlines.set_rule(
            session, scope, key, days=days, lead_days=lead_days, active=active == "yes", source=source
        )
        session.commit()
    except DocsignError as exc:
        session.rollback()
        if exc.http_status in (403, 404):
            raise
        return _page(request, user, scope, services, session, exc.message)
    return flash_redirect("/deadlines")


@router.post("/deadlines/basis")
def deadline_basis(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    region: Annotated[str, Form()] = "",
    notice: Annotated[str, Form()] = "",
    target: Annotated[str, Form()] = "",
    target_source: Annotated[str, Form()] = "",
) -> Response:
    try:
        try:
            percent = float(target.strip().rstrip("%"))
        except ValueError:
            raise InvalidInput("巩固率目标应写成百分数，例如 99 或 100。") from None
        services.ledgers.deadlines.set_basis(
            session, scope, region=region, notice=notice, target=percent / 100, target_source=target_source
        )
        session.commit()
    except DocsignError as exc:
        session.rollback()
        if exc.http_status == 403:
            raise
        return _page(request, user, scope, services, session, exc.message)
    return flash_redirect("/deadlines")
