from __future__ import annotations

from pydantic import BaseModel

from service.units.models import UNIT_TYPE_TITLES, Unit, UnitType


class UnitOut(BaseModel):
    id: int
    code: str
    name: str
    type: str
    type_title: str
    parent_id: int | None
    head_name: str | None
    phone: str | None
    is_direct_school: bool

    @classmethod
    def of(cls, unit: Unit) -> UnitOut:
        return cls(
            id=unit.id,
            code=unit.code,
            name=unit.name,
            type=unit.type,
            type_title="区直学校" if unit.is_direct_school else UNIT_TYPE_TITLES[UnitType(unit.type)],
            parent_id=unit.parent_id,
            head_name=unit.head_name,
            phone=unit.phone,
            is_direct_school=unit.is_direct_school,
        )


class ImportOut(BaseModel):
    created: int
    updated: int
