from __future__ import annotations

import datetime as dt
import io

import pytest
from openpyxl import Workbook

from service.sheets import UnreadableSheet, read_table


def _xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_xlsx_cells_come_back_as_the_text_they_show() -> None:
    data = _xlsx(
        [
            ["学校代码", "学生姓名", "出生日期", "学籍号"],
            ["WSR-SH", '=HYPERLINK("http://x")', dt.date(2018, 3, 7), 370112001.0],
            [None, None, None, None],
            ["WSR-XD", " 李四 ", dt.datetime(2018, 5, 1, 0, 0), "G3701"],
        ]
    )
    table = read_table(data, "名单.xlsx")
    # blank rows are left out, and the others keep the numbers a person sees in Excel
    assert [n for n, _ in table] == [1, 2, 4]
    assert table[1][1] == ["WSR-SH", '=HYPERLINK("http://x")', "2018-03-07", "370112001"]
    assert table[2][1] == ["WSR-XD", "李四", "2018-05-01", "G3701"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_csv_saved_by_excel_or_wps(encoding: str) -> None:
    data = "学校代码,学生姓名\n\nWSR-SH,张三\n".encode(encoding)
    assert read_table(data, "名单.CSV") == [(1, ["学校代码", "学生姓名"]), (3, ["WSR-SH", "张三"])]


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (b"PK\x03\x04 not really a zip", "名单.xlsx", "无法读取该 Excel 文件"),
        (b"\xff\xfe\x00\xd8\x00", "名单.csv", "无法识别 CSV 文件的编码"),
        (b"%PDF-1.7", "名单.pdf", "只支持 .xlsx 或 .csv"),
    ],
)
def test_unreadable_files_say_why(data: bytes, name: str, says: str) -> None:
    with pytest.raises(UnreadableSheet, match=says):
        read_table(data, name)
