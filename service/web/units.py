"""The bureau's unit tree page and its sheet import (its staff, or the system administrator)."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.accounts.models import Role, User
from service.errors import DocsignError, UploadInvalid
from service.http.deps import ScopeDep, ServicesDep, SessionDep
from service.http.uploads import read_upload
from service.units import repository as units_repository
from service.units.schemas import UnitOut
from service.units.service import ImportResult, import_units_sheet
from service.web.common import PageUser, form_errors, render

router = APIRouter(include_in_schema=False)


@router.get("/units")
def units_page(request: Request, user: PageUser, scope: ScopeDep, session: SessionDep) -> Response:
    scope.require(Role.BUREAU, Role.SYSTEM_ADMIN, message="只有教体局工作人员或系统管理员可以管理单位。")
    return _units(request, user, scope, session)


def _units(
    request: Request,
    user: User,
    scope: ScopeDep,
    session: SessionDep,
    import_errors: list[dict[str, Any]] | None = None,
    import_error: str = "",
    flash: dict[str, str] | None = None,
) -> Response:
    # the system administrator sees the units by name: the ones it administers (no business of theirs)
    units = [UnitOut.of(u) for u in units_repository.listed(session, scope.administered if scope.is_admin else scope)]
    children: dict[int | None, list[Any]] = defaultdict(list)
    ids = {u.id for u in units}
    roots = []
    for u in units:
        if u.parent_id in ids:
            children[u.parent_id].append(u)
        else:
            roots.append(u)
    return render(
        request,
        "units.html",
        user,
        roots=roots,
        children=children,
        import_errors=import_errors or [],
        import_error=import_error,
        flash=flash,
    )


@router.post("/units/import")
async def units_import(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    scope.keeps_units()
    errors: list[dict[str, Any]] = []
    message = ""
    flash = None
    try:
        if file is None or not file.filename:
            raise UploadInvalid("请选择要导入的表格文件。")
        data = await read_upload(file, services.settings.max_sheet_bytes, "表格文件")
        filename = file.filename

        def run() -> ImportResult:
            result = import_units_sheet(session, scope, data, filename, services.clock.now())
            session.commit()
            return result

        out = await run_in_threadpool(run)
        flash = {"tone": "ok", "text": f"导入完成：新增 {out.created} 个单位，更新 {out.updated} 个单位。"}
    except DocsignError as exc:
        session.rollback()
        message = exc.message
        errors = form_errors(exc)
    return _units(request, user, scope, session, import_errors=errors, import_error=message, flash=flash)
