from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from service.accounts.models import Role, User
from service.accounts.schemas import UserIn, UserOut
from service.accounts.service import create_user
from service.api.common import read_upload, unit_out, user_out
from service.api.deps import ScopeDep, SessionDep, StateDep, UnitObj, bureau_of_scope
from service.audit.service import record
from service.campaigns.errors import NotFoundForUser, SheetInvalid
from service.campaigns.models import Unit
from service.campaigns.schemas import ImportOut, UnitOut
from service.campaigns.units import import_units, read_sheet

router = APIRouter(prefix="/api", tags=["单位与账号"])


@router.get("/units", response_model=list[UnitOut], summary="本人可见的单位（树形，按上级排列）")
def list_units(scope: ScopeDep, session: SessionDep) -> list[UnitOut]:
    units = session.scalars(select(Unit).where(Unit.id.in_(scope.units)).order_by(Unit.parent_id.is_not(None), Unit.id))
    return [unit_out(u) for u in units]


@router.get("/units/{unit_id}", response_model=UnitOut, summary="单位详情")
def get_unit(unit: UnitObj) -> UnitOut:
    return unit_out(unit)


@router.post("/units/import", response_model=ImportOut, summary="从 Excel 或 CSV 导入单位（有错误时一行也不导入）")
async def import_sheet(
    scope: ScopeDep, state: StateDep, session: SessionDep, file: Annotated[UploadFile, File(description="文件")]
) -> ImportOut:
    scope.require(Role.BUREAU)
    data = await read_upload(file, state.settings.max_sheet_bytes, "表格文件")
    return await run_in_threadpool(import_units_sheet, scope, state, session, data, file.filename or "")


def import_units_sheet(scope: ScopeDep, state: StateDep, session: SessionDep, data: bytes, filename: str) -> ImportOut:
    """Import a unit sheet; every bad row is in the SheetInvalid's details, and nothing is written."""
    rows = read_sheet(data, filename)
    result = import_units(session, rows, bureau_of_scope(scope))
    if result.errors:
        session.rollback()
        raise SheetInvalid(
            f"表格中有 {len(result.errors)} 处错误，未导入任何单位。请按逐行列出的原因修改后重新上传。",
            details={"errors": result.errors},
        )
    record(
        session,
        scope.actor,
        "unit.import",
        "unit",
        "*",
        state.clock.now(),
        created=result.created,
        updated=result.updated,
        file=filename,
    )
    session.commit()
    return ImportOut(created=result.created, updated=result.updated)


@router.get("/users", response_model=list[UserOut], summary="本人可见单位的账号")
def list_users(scope: ScopeDep, session: SessionDep) -> list[UserOut]:
    scope.require(Role.BUREAU, Role.OFFICE)
    users = session.scalars(select(User).where(User.unit_id.in_(scope.units)).order_by(User.id))
    return [user_out(u) for u in users]


@router.post("/users", response_model=UserOut, status_code=201, summary="为单位创建账号（教体局）")
def add_user(body: UserIn, scope: ScopeDep, state: StateDep, session: SessionDep) -> UserOut:
    scope.require(Role.BUREAU)
    unit = session.get(Unit, body.unit_id)
    if unit is None or unit.id not in scope.units:
        raise NotFoundForUser("未找到该单位。")
    user = create_user(
        session,
        username=body.username,
        password=body.password,
        display_name=body.display_name,
        role=body.role,
        unit=unit,
    )
    record(
        session,
        scope.actor,
        "user.create",
        "user",
        user.id,
        state.clock.now(),
        username=user.username,
        role=user.role,
        unit=unit.name,
    )
    session.commit()
    return user_out(user)
