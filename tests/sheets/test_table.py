"""The header found and the rows made under it: missing columns named, blanks filled down where allowed."""

from __future__ import annotations

import pytest

from service.sheets import Column, HeaderNotFound, UnreadableSheet, read_sheet
from tests.sheets.samples import ROSTER, xlsx


def test_the_header_error_names_each_missing_column_for_every_face() -> None:
    data = xlsx([["2025年新生名单"], ["学校代码", "学生姓名", "身份证号", "家长"], ["WSR-SH", "张三", "x", "y"]])
    with pytest.raises(HeaderNotFound) as refused:
        read_sheet(data, "名单.xlsx", ROSTER)
    assert refused.value.message == (
        "表头缺少列：监护人姓名、监护人电话（表头在工作表「Sheet」第 2 行）。请在表头中加上这些列后重新上传。"
    )
    errors = refused.value.details["errors"]
    assert [(e["row"], e["column"], e["field"]) for e in errors] == [
        (2, "监护人姓名", "guardian_name"),
        (2, "监护人电话", "guardian_phone"),
    ]
    assert errors[1]["message"] == "缺少这一列（也可以写作：联系电话）"
    # what the CLI prints for each of them, and what the pages show
    for e in errors:
        line = f"{e.get('title', e.get('field'))}（{e.get('field')}）：{e.get('message')} {e['column']}"
        assert "None" not in line

    with pytest.raises(HeaderNotFound, match="前 10 行中没有找到表头"):
        read_sheet(xlsx([["随便写的"], ["一些", "内容"]]), "名单.xlsx", ROSTER)
    with pytest.raises(UnreadableSheet, match="表格是空的"):
        read_sheet(xlsx([]), "名单.xlsx", ROSTER)


def test_a_csv_with_blank_merged_cells_fills_down_only_the_columns_allowed() -> None:
    data = "学校代码,学生姓名,班级\nWSR-SH,张三,1班\n,李四,\nWSR-XD,王五,2班\n".encode("gb18030")
    columns = [
        Column("school", ("学校代码",), required=True, fill_down=True),
        Column("name", ("学生姓名",), required=True),
        Column("class", ("班级",)),
    ]
    rows = read_sheet(data, "名单.csv", columns).rows
    assert [(r.values["school"], r.values["class"]) for r in rows] == [
        ("WSR-SH", "1班"),
        ("WSR-SH", ""),
        ("WSR-XD", "2班"),
    ]
    assert rows[1].typed["school"] == "WSR-SH"
