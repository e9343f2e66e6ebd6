""".xlsx: formulas saved with or without their value, and a declared dimension that costs nothing."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from msoffcrypto.format.ooxml import OOXMLFile
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from service.sheets import Column, read_sheet
from service.sheets.errors import PASSWORD, HiddenRows, SheetTooLarge, UnreadableSheet
from service.sheets.read import read_table
from tests import sheet_shapes
from tests.sheets.samples import probe, text_rows, worksheet, xlsx_package


def test_a_formula_comes_back_as_the_value_excel_saved_or_as_its_text() -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["学生姓名", "备注"])
    ws.append(['=HYPERLINK("http://evil","点我")', "=1+1"])
    buf = io.BytesIO()
    wb.save(buf)
    columns = [Column("name", ("学生姓名",), required=True), Column("note", ("备注",))]
    # openpyxl saves no value with a formula: its text comes back, never evaluated
    assert read_sheet(buf.getvalue(), "x.xlsx", columns).rows[0].values == {
        "name": '=HYPERLINK("http://evil","点我")',
        "note": "=1+1",
    }
    # Excel and LibreOffice save the value they show: that is what the person sees and means
    (xls,) = sheet_shapes.libreoffice_copies({"f": buf.getvalue()}, "xls").values()
    assert read_sheet(xls, "x.xls", columns).rows[0].values == {"name": "点我", "note": "2"}


def test_a_declared_huge_dimension_costs_nothing(tmp_path: Path) -> None:
    # the file: 30,000 rows under a dimension of the whole sheet; the old reader padded every
    # row to 16,384 columns (3 GB in 20 s). Only the cells that are there are read.
    header = '<row r="1"><c r="A1" t="inlineStr"><is><t>学生姓名</t></is></c></row>'
    data = xlsx_package(worksheet(header + text_rows(30_000, 2), "A1:XFD1048576"))
    result = probe(tmp_path, data, "名单.xlsx")
    assert result["outcome"] == "read 30000 rows"
    assert result["seconds"] < 5 and result["rss_mb"] < 200, result


def _book(edit: Callable[[Worksheet], None] | None = None) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in (["学生姓名", "身份证号"], ["甲", "1"], ["乙", "2"], ["丙", "3"]):
        ws.append(row)
    if edit is not None:
        edit(ws)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


COLUMNS = [Column("name", ("学生姓名",), required=True), Column("id", ("身份证号",))]


def test_a_workbook_with_an_opening_password_says_so_whatever_its_name() -> None:
    """Excel and WPS save a password-protected .xlsx inside an OLE compound file: it is read by
    its content, not its name, and the answer is the password, not a damaged file."""
    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(_book())).encrypt("kcbx", encrypted)
    for name in ("名单.xlsx", "名单.xls", "名单"):
        with pytest.raises(UnreadableSheet) as caught:
            read_sheet(encrypted.getvalue(), name, COLUMNS)
        assert caught.value.message == PASSWORD


def test_hidden_rows_with_content_are_named_and_nothing_is_imported() -> None:
    def hide(ws: Worksheet) -> None:
        ws.row_dimensions[3].hidden = True
        ws.row_dimensions[7].hidden = True  # hidden but empty: no harm

    data = _book(hide)
    with pytest.raises(HiddenRows) as caught:
        read_sheet(data, "名单.xlsx", COLUMNS)
    assert "第 3 行被隐藏了" in caught.value.message and "取消隐藏" in caught.value.message
    assert caught.value.details == {"rows": [3]}
    with pytest.raises(HiddenRows):
        read_table(data, "名单.xlsx")
    # once shown again, the same sheet imports all three
    assert [r.values["name"] for r in read_sheet(_book(), "名单.xlsx", COLUMNS).rows] == ["甲", "乙", "丙"]


def test_empty_cells_formatted_down_to_row_60000_are_not_content() -> None:
    """A sheet whose empty cells were given a format down to row 60,000 (a column painted in
    Excel, saved as typed empty cells) reads as the rows that hold something."""

    def paint(ws: Worksheet) -> None:
        for r in range(5, 60_001):
            ws.cell(row=r, column=1).font = Font(bold=True)

    data = _book(paint)
    assert b'<c r="A60000"' in zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    assert [r.values["name"] for r in read_sheet(data, "名单.xlsx", COLUMNS).rows] == ["甲", "乙", "丙"]
    # a value that far down is still over the limit
    with pytest.raises(SheetTooLarge):
        read_sheet(_book(lambda ws: ws.cell(row=60_000, column=1, value="丁")), "名单.xlsx", COLUMNS)
