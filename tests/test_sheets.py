from __future__ import annotations

import datetime as dt
import io
import json
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import olefile
import pytest
from openpyxl import Workbook

from service.settings import PROJECT_ROOT
from service.sheets import (
    Column,
    HeaderNotFound,
    SheetTooLarge,
    UnreadableSheet,
    _xls_in_child,
    normalize_date,
    normalize_phone,
    read_sheet,
    read_table,
)
from tests import sheet_shapes


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


# --- the corpus: rosters in the shapes schools send, in every format ------------------------------

ROSTER = [
    Column("school", ("学校代码", "学校"), required=True, fill_down=True, kind="code"),
    Column("student_name", ("学生姓名", "姓名"), required=True),
    Column("id_number", ("身份证号",), required=True, kind="id_number"),
    Column("sex", ("性别",)),
    Column("birth_date", ("出生日期",), kind="date"),
    Column("guardian_name", ("监护人姓名", "监护人"), required=True),
    Column("guardian_relation", ("监护人关系", "与学生关系")),
    Column("guardian_phone", ("监护人电话", "联系电话"), required=True, kind="phone"),
]
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


def test_the_header_error_names_each_missing_column_for_every_face() -> None:
    data = _xlsx([["2025年新生名单"], ["学校代码", "学生姓名", "身份证号", "家长"], ["WSR-SH", "张三", "x", "y"]])
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
        read_sheet(_xlsx([["随便写的"], ["一些", "内容"]]), "名单.xlsx", ROSTER)
    with pytest.raises(UnreadableSheet, match="表格是空的"):
        read_sheet(_xlsx([]), "名单.xlsx", ROSTER)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("13805310001", "13805310001"),
        ("+86 138 0531 0001", "13805310001"),
        ("+86-13805310001", "13805310001"),
        ("8613805310001", "13805310001"),
        ("138-0531-0001", "13805310001"),
        ("１３８ ０５３１ ０００１", "13805310001"),
        ("0531-88120000", "0531-88120000"),
        ("(0531)88120000", "0531-88120000"),
        ("（0531）88120000", "0531-88120000"),
        ("0531 88120000", "0531-88120000"),
        ("053188120000", "0531-88120000"),
        ("01088120000", "010-88120000"),
        ("0531-88120000-806", "0531-88120000-806"),
        ("88120000", "88120000"),  # no area code: left for the import to refuse
    ],
)
def test_phones_written_any_way_are_stored_in_one_form(typed: str, stored: str) -> None:
    assert normalize_phone(typed) == stored


@pytest.mark.parametrize(
    ("value", "date"),
    [
        (dt.date(2025, 9, 1), "2025-09-01"),
        (dt.datetime(2025, 9, 1, 0, 0), "2025-09-01"),
        (45901, "2025-09-01"),
        (45901.0, "2025-09-01"),
        ("45901", "2025-09-01"),
        ("2025.9.1", "2025-09-01"),
        ("2025/9/1", "2025-09-01"),
        ("2025年9月1日", "2025-09-01"),
        ("２０２５年９月１日", "2025-09-01"),
        ("2025-09-01 00:00:00", "2025-09-01"),
        (20250901, "2025-09-01"),
        ("20250901", "2025-09-01"),
        ("2025.2.30", None),
        ("九月一日", None),
    ],
)
def test_dates_in_every_form_offices_type_them(value: object, date: str | None) -> None:
    assert normalize_date(value) == date


def test_a_phone_stored_as_a_number_lost_its_leading_zero_and_says_so() -> None:
    columns = [Column("name", ("姓名",), required=True), Column("phone", ("电话",), kind="phone")]
    sheet = read_sheet(_xlsx([["姓名", "电话"], ["张三", 53188120000], ["李四", 13805310001]]), "x.xlsx", columns)
    assert [r.values["phone"] for r in sheet.rows] == ["53188120000", "13805310001"]
    assert [(p["row"], p["value"]) for p in sheet.problems] == [(2, "53188120000")]
    assert "开头的 0 已经丢失" in sheet.problems[0]["message"]


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


def test_a_file_that_is_no_sheet_says_what_to_do() -> None:
    with pytest.raises(UnreadableSheet, match="无法读取该 Excel 文件"):
        read_sheet(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "名单.xls", ROSTER)
    with pytest.raises(UnreadableSheet, match="无法读取该 Excel 文件"):
        read_sheet(b"PK\x03\x04" + b"\x00" * 100, "名单.ods", ROSTER)


# --- hard limits: a sheet bomb is refused fast, with flat memory ---------------------------------

PROBE = """
import json, re, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a regression fails here, not the machine
from service.sheets import Column, UnreadableSheet, read_sheet
data = open(sys.argv[1], "rb").read()
start = time.perf_counter()
try:
    sheet = read_sheet(data, sys.argv[2], [Column("name", ("学生姓名",), required=True)])
    outcome = f"read {len(sheet.rows)} rows"
except UnreadableSheet as exc:
    outcome = f"{exc.code}: {exc.message}"
seconds = time.perf_counter() - start
# the peak resident memory of this process since it started: getrusage's ru_maxrss would also count
# the pytest process this one was forked from, which Linux keeps across exec
status = open("/proc/self/status").read()
rss = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024
print(json.dumps({"outcome": outcome, "seconds": seconds, "rss_mb": rss}))
"""


def _probe(tmp_path: Path, data: bytes, name: str) -> dict[str, Any]:
    path = tmp_path / name
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), name],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _xlsx_package(sheet_xml: str, shared_strings: Iterable[str] | None = None) -> bytes:
    """A minimal .xlsx written by hand, as a crafted file would be."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>",
        )
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>",
        )
        z.writestr(
            "xl/workbook.xml",
            '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            '<sheets><sheet name="名单" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        rels = '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        if shared_strings is not None:
            rels += '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
            with z.open("xl/sharedStrings.xml", "w") as part:
                for chunk in shared_strings:
                    part.write(chunk.encode())
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>',
        )
        z.writestr("xl/worksheets/sheet1.xml", sheet_xml)
    return buf.getvalue()


def _worksheet(rows: str, dimension: str = "A1") -> str:
    return (
        '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="{dimension}"/><sheetData>{rows}</sheetData></worksheet>'
    )


def _text_rows(count: int, start: int = 1) -> str:
    return "".join(
        f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>学生{n}</t></is></c></row>' for n in range(start, start + count)
    )


def test_a_declared_huge_dimension_costs_nothing(tmp_path: Path) -> None:
    # the file: 30,000 rows under a dimension of the whole sheet; the old reader padded every
    # row to 16,384 columns (3 GB in 20 s). Only the cells that are there are read.
    header = '<row r="1"><c r="A1" t="inlineStr"><is><t>学生姓名</t></is></c></row>'
    data = _xlsx_package(_worksheet(header + _text_rows(30_000, 2), "A1:XFD1048576"))
    result = _probe(tmp_path, data, "名单.xlsx")
    assert result["outcome"] == "read 30000 rows"
    assert result["seconds"] < 5 and result["rss_mb"] < 200, result


@pytest.mark.parametrize(
    ("what", "make", "says"),
    [
        (
            "a cell at the far corner",
            lambda: _xlsx_package(
                _worksheet(
                    '<row r="1"><c r="A1"><v>1</v></c></row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row>',
                    "A1:XFD1048576",
                )
            ),
            "有内容写到了第 1048576 行，超过了 50000 行的上限",
        ),
        ("too many rows", lambda: _xlsx_package(_worksheet(_text_rows(60_000))), "超过了 50000 行的上限"),
        (
            "too many columns",
            lambda: _xlsx_package(_worksheet('<row r="1"><c r="A1"><v>1</v></c><c r="ZZ1"><v>1</v></c></row>')),
            "有内容写到了第 702 列，超过了 200 列的上限",
        ),
        (
            "a used range too large",
            lambda: _xlsx_package(
                _worksheet('<row r="1"><c r="A1"><v>1</v></c></row><row r="40000"><c r="GR40000"><v>1</v></c></row>')
            ),
            "数据区域过大（40000 行 × 200 列）",
        ),
        (
            "shared strings that unzip to 100 MB",
            lambda: _xlsx_package(
                _worksheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'),
                _many_strings(),
            ),
            "解压后超过 64 MB",
        ),
        (
            "a string count calamine would reserve memory for",
            lambda: _xlsx_package(
                _worksheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'),
                [
                    '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" uniqueCount="4000000000"><si><t>学生姓名</t></si></sst>'
                ],
            ),
            "文字超过了 1000000 条的上限",
        ),
        ("a zip that lies about its sizes", lambda: _lying_zip(), "无法读取该 Excel 文件"),
        ("an .ods whose rows repeat a million times", lambda: _ods_bomb(), "超过了 50000 行的上限"),
        ("a .csv of 60,000 rows", lambda: ("学生姓名\n" + "张三\n" * 60_000).encode(), "超过了 50000 行的上限"),
    ],
)
def test_a_sheet_bomb_is_refused_within_a_second_with_flat_memory(
    tmp_path: Path, what: str, make: Callable[[], bytes], says: str
) -> None:
    data = make()
    name = "名单.ods" if what.startswith("an .ods") else "名单.csv" if what.startswith("a .csv") else "名单.xlsx"
    result = _probe(tmp_path, data, name)
    assert says in result["outcome"], result
    assert result["outcome"].startswith(("SHEET_TOO_LARGE", "SHEET_UNREADABLE"))
    assert result["seconds"] < 1.0 and result["rss_mb"] < 200, (what, result)


def test_an_xls_declaring_a_huge_dimension_is_refused_before_calamine_reserves_it(
    tmp_path: Path, roster_corpus: dict[tuple[str, str], tuple[str, bytes]]
) -> None:
    _, data = roster_corpus[("plain", "xls")]
    record = _xls_dimensions(data)
    first_row, _, first_col, _ = struct.unpack_from("<IIHH", record, 4)
    bomb = data.replace(record, record[:4] + struct.pack("<IIHH", first_row, 0xFFFFFF00, first_col, 0xFF) + record[16:])
    result = _probe(tmp_path, bomb, "名单.xls")
    assert result["outcome"].startswith("SHEET_TOO_LARGE"), result
    assert result["seconds"] < 1.0 and result["rss_mb"] < 200, result


def _lying_zip() -> bytes:
    """Shared strings of 100 MB whose zip entry says 2 KB: a reader trusting the entry is fooled."""
    data = bytearray(_xlsx_package(_worksheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'), _many_strings()))
    local = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("xl/sharedStrings.xml").header_offset
    struct.pack_into("<I", data, local + 22, 2048)  # the local header's uncompressed size
    central = data.find(data[local + 4 : local + 16], local + 30) - 6  # the same fields in the directory
    assert data[central : central + 4] == b"PK\x01\x02"
    struct.pack_into("<I", data, central + 24, 2048)
    return bytes(data)


def _many_strings() -> Iterator[str]:
    """About 110 MB of shared strings, a few hundred KB once zipped."""
    yield '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    for _ in range(6_000):
        yield "<si><t>啊</t></si>" * 1_000
    yield "</sst>"


def _ods_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        z.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
            '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
            '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>',
        )
        z.writestr(
            "content.xml",
            '<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
            'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0">'
            '<office:body><office:spreadsheet><table:table table:name="名单">'
            '<table:table-row table:number-rows-repeated="1000000"><table:table-cell office:value-type="float" '
            'office:value="1" table:number-columns-repeated="1000"><text:p>1</text:p></table:table-cell></table:table-row>'
            "</table:table></office:spreadsheet></office:body></office:document-content>",
        )
    return buf.getvalue()


def _wrapped_dimension(data: bytes) -> bytes:
    """The .xls with its sheet's first row declared past its last: calamine's 32-bit arithmetic
    makes that four billion rows to reserve, and the failed allocation aborts the process."""
    record = _xls_dimensions(data)
    return data.replace(record, record[:4] + struct.pack("<IIHH", 7, 1, 0, 8) + record[16:])


def test_an_xls_whose_dimension_wraps_round_is_refused(roster_corpus: dict[tuple[str, str], tuple[str, bytes]]) -> None:
    _, data = roster_corpus[("plain", "xls")]
    with pytest.raises(SheetTooLarge, match="声明的数据区域过大（4294967290 行 × 8 列）"):
        read_sheet(_wrapped_dimension(data), "名单.xls", ROSTER)


def test_calamine_reads_an_xls_in_a_child_whose_death_is_only_a_refusal(
    roster_corpus: dict[tuple[str, str], tuple[str, bytes]],
) -> None:
    _, data = roster_corpus[("plain", "xls")]
    assert [g.name for g in _xls_in_child(data)] == ["名单"]
    # the file above, past the checks that refuse it: calamine aborts the child; this process carries on
    aborted = subprocess.run(
        [
            sys.executable,
            "-c",
            "import io, sys, python_calamine; python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(sys.stdin.buffer.read()))",
        ],
        input=_wrapped_dimension(data),
        capture_output=True,
        check=False,
    )
    assert aborted.returncode < 0  # killed by a signal (SIGABRT), not an exception
    with pytest.raises(UnreadableSheet, match="无法读取该 Excel 文件"):
        _xls_in_child(_wrapped_dimension(data))


def _xls_dimensions(data: bytes) -> bytes:
    """The first sheet's DIMENSIONS record, as it sits in the file."""
    ole = olefile.OleFileIO(data)
    stream = ole.openstream("Workbook").read()
    ole.close()
    pos, dimensions = 0, []
    while pos + 4 <= len(stream):
        kind, size = struct.unpack_from("<HH", stream, pos)
        if kind == 0x0200:
            dimensions.append(stream[pos : pos + 4 + size])
        pos += 4 + size
    assert data.count(dimensions[0]) == 1
    return dimensions[0]
