"""Unit import as a use case: the bureau's sheet becomes its tree, or nothing at all."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.accounts.errors import Forbidden
from service.audit.models import AuditEvent
from service.container import Services
from service.units.errors import SheetInvalid
from service.units.models import Unit
from service.units.service import import_units_sheet, visible_unit_ids
from tests.api.conftest import xlsx
from tests.district import load_district, scope_of, unit

SHEET = [
    ("单位代码", "单位名称", "单位类型", "上级单位代码", "负责人", "联系电话"),
    ("GX", "历城区港沟街道教育办公室", "街道教育办", "LCJT", "马腾", "0531-88700000"),
    ("GX-XX", "历城区港沟街道中心小学", "学校", "GX", "刘畅", ""),
    ("WSR-SH", "历城区王舍人街道石河小学", "学校", "WSR", "赵明明", ""),
]


def _audits(services: Services, action: str) -> int:
    with services.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0


def test_a_bureau_imports_its_sheet(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        result = import_units_sheet(s, scope_of(s, "bureau"), xlsx(SHEET), "港沟.xlsx", services.clock.now())
        s.commit()
        assert (result.created, result.updated) == (2, 1)
        school = unit(s, "GX-XX")
        assert school.parent is not None and school.parent.code == "GX"
        assert unit(s, "WSR-SH").head_name == "赵明明"
        assert school.id in visible_unit_ids(s, unit(s, "LCJT"))
    assert _audits(services, "unit.import") == 1


def test_a_bad_sheet_changes_nothing_and_a_school_cannot_import(services: Services) -> None:
    load_district(services)
    bad = [*SHEET, ("GX-ZX", "历城区港沟街道中学", "学校", "NOPE", "", "12345")]
    with services.db.session() as s:
        before = s.scalar(select(func.count()).select_from(Unit))
        with pytest.raises(SheetInvalid) as caught:
            import_units_sheet(s, scope_of(s, "bureau"), xlsx(bad), "港沟.xlsx", services.clock.now())
        s.rollback()
        rows = {(e["row"], e["column"]) for e in caught.value.details["errors"]}
        assert rows == {(5, "上级单位代码"), (5, "联系电话")}
        assert s.scalar(select(func.count()).select_from(Unit)) == before
        with pytest.raises(Forbidden):
            import_units_sheet(s, scope_of(s, "wsr-sh-head"), xlsx(SHEET), "港沟.xlsx", services.clock.now())
    assert _audits(services, "unit.import") == 0
    assert _audits(services, "unit.import_failed") == 1  # the refused sheet is in the log, rows or not
