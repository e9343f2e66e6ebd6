"""``read_sheet`` and ``read_table`` on every format, and the rosters schools send in every shape."""

from __future__ import annotations

import datetime as dt

import pytest

from service.sheets import HeaderNotFound, UnreadableSheet, read_sheet, read_table
from tests import sheet_shapes
from tests.sheets.samples import ROSTER, xlsx


def test_xlsx_cells_come_back_as_the_text_they_show() -> None:
    data = xlsx(
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


def test_a_file_that_is_no_sheet_says_what_to_do() -> None:
    with pytest.raises(UnreadableSheet, match="无法读取该 Excel 文件"):
        read_sheet(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "名单.xls", ROSTER)
    with pytest.raises(UnreadableSheet, match="无法读取该 Excel 文件"):
        read_sheet(b"PK\x03\x04" + b"\x00" * 100, "名单.ods", ROSTER)


# --- the corpus: rosters in the shapes schools send, in every format ------------------------------

SHAPES = {s.key: s for s in sheet_shapes.shapes()}
BY_NAME = {s.name: s for s in sheet_shapes.STUDENTS}
CASES = [
    pytest.param(key, fmt, id=f"{key}-{fmt}")
    for key, shape in SHAPES.items()
    for fmt in sheet_shapes.FORMATS
    if not (fmt == "csv" and len(shape.sheets) > 1)
]


@pytest.mark.parametrize(("key", "fmt"), CASES)
def test_every_shape_reads_as_the_school_meant_it(
    key: str, fmt: str, roster_corpus: dict[tuple[str, str], tuple[str, bytes]]
) -> None:
    shape = SHAPES[key]
    name, data = roster_corpus[(key, fmt)]
    if shape.refused:
        with pytest.raises(HeaderNotFound) as refused:
            read_sheet(data, name, ROSTER)
        assert shape.refused in refused.value.message
        return
    sheet = read_sheet(data, name, ROSTER)
    # the rows are the students, numbered as the spreadsheet shows them: no title, note or blank row
    assert {r.number: r.values["student_name"] for r in sheet.rows} == shape.read
    for r in sheet.rows:
        student = BY_NAME[r.values["student_name"]]
        expected = {
            "school": "WSR-SH",
            "id_number": student.id_number,
            "sex": student.sex,
            "birth_date": student.born.isoformat(),
            "guardian_phone": student.phone,
            **shape.values.get(r.number, {}),
        }
        assert {k: r.values[k] for k in expected} == expected, r
    found = [(p["row"], p["column"], p["value"], p["message"]) for p in sheet.problems]
    assert [(r, c, v) for r, c, v, _ in found] == [(r, c, v) for r, c, v, _ in shape.errors]
    assert all(m.startswith(e[3]) for (*_, m), e in zip(found, shape.errors, strict=True))
    if shape.errors:  # and the message says what to do about it
        assert all("设为“文本”格式后重新填写" in m and "学籍系统重新导出" in m for *_, m in found)
