"""Pages for the 三本台账: live per school, office or bureau, with Excel exports, and the
适龄儿童台账's import, 报到 and 失学 actions."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.cases.checks import parse_date
from service.errors import DocsignError, InvalidInput
from service.http.deps import ScopeDep, ServicesDep, SessionDep
from service.http.exports import ExportDep
from service.http.reads import Reads, ReadsDep
from service.http.uploads import read_upload
from service.ledgers.service import LEDGERS, school_year_start
from service.units.models import UnitType
from service.units.service import bureau_of
from service.web.common import PageUser, flash_redirect, form_errors, render

router = APIRouter(include_in_schema=False)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _year(services: ServicesDep, year: int | None) -> int:
    return year or school_year_start(services.ledgers.today()).year


@router.get("/ledgers")
def ledgers_index(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    unit: int | None = None,
) -> Response:
    target = services.ledgers.unit_for(session, scope, unit)
    summary = []
    for key, title in LEDGERS.items():
        ledger = services.ledgers.ledger(session, target, key)
        if key == "children":
            count, extra = len(ledger.children), f"未报到 {sum(1 for c in ledger.children if not c.reported_on)}"
        else:
            count, extra = len(ledger.rows), f"超过一个月未更新 {ledger.stale}，本学年已销号 {len(ledger.closed)}"
        summary.append({"key": key, "title": title, "count": count, "extra": extra})
    return render(
        request,
        "ledgers.html",
        user,
        unit=target,
        units=services.ledgers.units_for(session, scope),
        summary=summary,
        ledger=None,
    )


def _ledger_page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    key: str,
    unit: int | None,
    year: int | None = None,
    errors: list[dict[str, object]] | None = None,
    message: str | None = None,
    status_code: int = 200,
    reads: Reads | None = None,
) -> Response:
    ledger = services.ledgers.ledger_for(session, scope, key, unit, _year(services, year))
    if reads is not None:
        reads.ledger(ledger, year=_year(services, year))
    units = services.ledgers.units_for(session, scope)
    return render(
        request,
        "ledgers.html",
        user,
        status_code=status_code,
        unit=ledger.unit,
        units=units,
        ledger=ledger,
        year=_year(services, year),
        today=services.ledgers.today().isoformat(),
        schools=[u for u in units if u.type == UnitType.SCHOOL],
        errors=errors or [],
        message=message,
        tz=services.ledgers.tz,
    )


@router.get("/ledgers/{key}")
def ledger_page(
    request: Request,
    key: str,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    unit: int | None = None,
    year: int | None = None,
) -> Response:
    return _ledger_page(request, user, scope, services, session, key, unit, year, reads=reads)


@router.get("/ledgers/{key}/export.xlsx")
def ledger_export(
    key: str,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    export: ExportDep,
    unit: int | None = None,
    year: int | None = None,
) -> Response:
    ledger = services.ledgers.ledger_for(session, scope, key, unit, year)
    data = services.ledgers.workbook(session, ledger, full=export.full)
    reads.ledger(ledger, export, year=year, export="xlsx")
    name = f"{ledger.unit.name}{ledger.title}.xlsx"
    return Response(
        data, media_type=XLSX, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    )


@router.get("/ledgers/{key}/provincial.xlsx")
def ledger_provincial(
    key: str,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    export: ExportDep,
    unit: int | None = None,
) -> Response:
    """The ledger in the layout of the provincial 台账系统's import sheet, as the bureau mapped it."""
    target = services.ledgers.unit_for(session, scope, unit)
    ledger = services.ledgers.ledger(session, target, key)
    mapping = services.ledgers.exchange.mapping(session, bureau_of(target), "ledger_export")
    data = services.ledgers.provincial_workbook(ledger, mapping, full=export.full)
    reads.ledger(ledger, export, export="provincial")
    name = f"{target.name}{ledger.title}（省台账系统）.xlsx"
    return Response(
        data, media_type=XLSX, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    )


@router.post("/ledgers/children/import")
async def children_import(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    school_id: Annotated[int, Form()],
    year: Annotated[int, Form()],
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        if file is None or not file.filename:
            raise InvalidInput("请选择一年级新生名单文件。")
        data = await read_upload(file, services.settings.max_sheet_bytes, "名单文件")
        school = services.ledgers.unit_for(session, scope, school_id)

        def run() -> tuple[int, int]:
            out = services.ledgers.import_children(session, scope, school, year, data, file.filename or "名单")
            session.commit()
            return out

        added, kept = await run_in_threadpool(run)
    except DocsignError as exc:
        session.rollback()
        if exc.http_status in (403, 404):
            raise
        return _ledger_page(
            request, user, scope, services, session, "children", None, year, form_errors(exc), exc.message, 200
        )
    return _ledger_page(
        request,
        user,
        scope,
        services,
        session,
        "children",
        None,
        year,
        message=f"已导入 {added} 名儿童" + (f"，{kept} 名已在台账中未重复导入" if kept else "") + "。",
    )


@router.post("/children/report")
def child_report(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    entry_id: Annotated[int, Form()] = 0,
    reported_on: Annotated[str, Form()] = "",
) -> Response:
    entry = services.ledgers.child(session, scope, entry_id)
    try:
        services.ledgers.report_child(session, scope, entry, parse_date(reported_on))
        session.commit()
    except DocsignError as exc:
        session.rollback()
        return _ledger_page(request, user, scope, services, session, "children", None, entry.year, message=exc.message)
    return flash_redirect(f"/ledgers/children?year={entry.year}#child-{entry.id}")


@router.post("/children/migrant")
def child_migrant(
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    user: PageUser,
    entry_id: Annotated[int, Form()] = 0,
    migrant: Annotated[str, Form()] = "",
) -> Response:
    entry = services.ledgers.child(session, scope, entry_id)
    services.ledgers.mark_migrant(session, scope, entry, migrant == "yes")
    session.commit()
    return flash_redirect(f"/ledgers/children?year={entry.year}#child-{entry.id}")


@router.post("/children/missing")
def child_missing(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    entry_id: Annotated[int, Form()] = 0,
) -> Response:
    entry = services.ledgers.child(session, scope, entry_id)
    try:
        case = services.ledgers.child_missing(session, scope, entry)
        session.commit()
    except DocsignError as exc:
        session.rollback()
        return _ledger_page(request, user, scope, services, session, "children", None, entry.year, message=exc.message)
    return flash_redirect(f"/cases/{case.id}")
