"""The unit sheet as a bureau's office keeps it, read by ``read_sheet`` and imported."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from service.db.session import Database
from service.settings import Settings
from service.units.errors import SheetInvalid
from service.units.models import Unit
from service.units.service import import_units, read_sheet
from tests import sheet_shapes
from tests.api.conftest import LICHENG

TITLE = "历城区义务教育学校名单（2025年秋季学期）"


def _book(rows: list[list[object]], merges: list[str]) -> sheet_shapes.Shape:
    return sheet_shapes.Shape("units", [sheet_shapes.SheetSpec("单位", rows, merges)])


@pytest.fixture()
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(Settings(data_dir=tmp_path_factory.mktemp("units-db")))
    database.migrate()
    yield database
    database.dispose()


def test_a_unit_sheet_with_a_title_merged_parents_and_phones_written_any_way(db: Database) -> None:
    header, *units = (list(r) for r in LICHENG[:5])
    units[0][5] = "(0531)88120000"  # the office
    units[1][5] = "+86 138 0531 0001"
    units[1][0] = "ＷＳＲ－ＳＨ"  # typed with a Chinese input method: full-width letters and hyphen
    units[2][3] = units[3][3] = None  # the parent code merged down over the office's schools
    rows: list[list[object]] = [[TITLE], [], header, *units, [], ["制表人：王老师", None, "2025年9月1日"]]
    shape = _book(rows, ["A1:F1", "D5:D7"])
    xlsx = shape.xlsx()
    (xls,) = sheet_shapes.libreoffice_copies({"units": xlsx}, "xls").values()
    for name, data in (("单位.xlsx", xlsx), ("单位.et", xls)):
        sheet_rows = read_sheet(data, name)
        assert [(r.row, r.values["code"], r.values["parent"]) for r in sheet_rows] == [
            (4, "WSR", "LCJT"),
            (5, "WSR-SH", "WSR"),
            (6, "WSR-XD", "WSR"),
            (7, "WSR-ZX", "WSR"),
        ]
        with db.session() as s:
            s.add(Unit(code="LCJT", name="济南市历城区教育和体育局", type="bureau"))
            s.flush()
            result = import_units(s, sheet_rows)
            assert result.errors == [] and result.created == 4
            phones = {u.code: u.phone for u in s.scalars(select(Unit))}
            assert phones["WSR"] == "0531-88120000" and phones["WSR-SH"] == "13805310001"
            s.rollback()


def test_a_unit_sheet_missing_a_column_names_it_for_the_cli_and_the_pages() -> None:
    shape = _book([[TITLE], ["单位代码", "单位名称", "上级单位代码"], ["WSR", "王舍人街道教育办公室", "LCJT"]], [])
    with pytest.raises(SheetInvalid) as refused:
        read_sheet(shape.xlsx(), "单位.xlsx")
    assert refused.value.message.startswith("表头缺少列：单位类型（表头在工作表「单位」第 2 行）")
    (error,) = refused.value.details["errors"]
    assert error["row"] == 2 and error["column"] == error["title"] == "单位类型" and error["field"] == "type"
