"""The district dashboard: per office and school, open cases by status, overdue items, reports late
or missing, the 巩固率 against its target, the open cases over the term, and the overdue list."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from service.errors import DocsignError
from service.http.deps import ScopeDep, ServicesDep, SessionDep
from service.ledgers.district import weeks_chart
from service.ledgers.excel import district_workbook
from service.ledgers.service import school_year_start
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
    unit: int | None = None,
    error: str | None = None,
) -> Response:
    ledgers = services.ledgers
    district = ledgers.district_for(session, scope, unit)
    term = ledgers.deadlines.term_on(session, bureau_of(district.unit), ledgers.today())
    overdue = [d.to_dict() for d in ledgers.due(session, scope) if d.overdue]
    return render(
        request,
        "district.html",
        user,
        district=district,
        chart=weeks_chart(district.weeks),
        term=term,
        overdue=overdue,
        can_set_roll=user.role in ("bureau_staff", "unit_signer"),
        error=error,
    )


@router.get("/district")
def district_page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    unit: int | None = None,
) -> Response:
    return _page(request, user, scope, services, session, unit)


@router.get("/district/export.xlsx")
def district_export(
    user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep, unit: int | None = None
) -> Response:
    district = services.ledgers.district_for(session, scope, unit)
    name = f"{district.unit.name}控辍保学总览.xlsx"
    return Response(
        district_workbook(district),
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


@router.post("/district/rolls")
def district_roll(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    school_id: Annotated[int, Form()],
    students: Annotated[int, Form()],
) -> Response:
    try:
        year = school_year_start(services.ledgers.today()).year
        services.ledgers.district.set_roll(session, scope, school_id, year, students)
        session.commit()
    except DocsignError as exc:
        session.rollback()
        if exc.http_status in (403, 404):
            raise
        return _page(request, user, scope, services, session, error=exc.message)
    return flash_redirect("/district")
