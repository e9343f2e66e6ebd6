from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool

from service.http.deps import ScopeDep, ServicesDep, SessionDep, UnitObj
from service.http.uploads import read_upload
from service.units import repository as units_repository
from service.units.schemas import ImportOut, UnitOut
from service.units.service import import_units_sheet

router = APIRouter(prefix="/api", tags=["单位与账号"])


@router.get("/units", response_model=list[UnitOut], summary="本人可见的单位（树形，按上级排列）")
def list_units(scope: ScopeDep, session: SessionDep) -> list[UnitOut]:
    # an administrator sees the units by name (no business of theirs): the ones it administers
    units = units_repository.listed(session, scope.administered if scope.is_admin else scope)
    return [UnitOut.of(u) for u in units]


@router.get("/units/{unit_id}", response_model=UnitOut, summary="单位详情")
def get_unit(unit: UnitObj) -> UnitOut:
    return UnitOut.of(unit)


@router.post("/units/import", response_model=ImportOut, summary="从 Excel 或 CSV 导入单位（有错误时一行也不导入）")
async def import_sheet(
    scope: ScopeDep, services: ServicesDep, session: SessionDep, file: Annotated[UploadFile, File(description="文件")]
) -> ImportOut:
    scope.keeps_units()
    data = await read_upload(file, services.settings.max_sheet_bytes, "表格文件")

    def run() -> ImportOut:
        result = import_units_sheet(session, scope, data, file.filename or "", services.clock.now())
        session.commit()
        return ImportOut(created=result.created, updated=result.updated)

    return await run_in_threadpool(run)
