"""Rosters in the shapes school offices really send, built in code, and saved as .xls/.et/.ods by the
real LibreOffice. Each shape carries what an import should make of it: the rows it imports (with
the values they come out as), or the exact error.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from openpyxl import Workbook

from tests.rosters.roster_data import resident_id

HEADER = ["学校代码", "学生姓名", "身份证号", "性别", "出生日期", "监护人姓名", "监护人关系", "监护人电话"]
TITLE = "2025年王舍人街道石河小学一年级新生名单"


@dataclass(frozen=True)
class Student:
    name: str
    id_number: str
    sex: str
    born: dt.date
    guardian: str
    relation: str
    phone: str

    def cells(self, school: object = "WSR-SH") -> list[object]:
        return [
            school,
            self.name,
            self.id_number,
            self.sex,
            self.born.isoformat(),
            self.guardian,
            self.relation,
            self.phone,
        ]


def _student(n: int, name: str, born: dt.date, female: bool, guardian: str, phone: str) -> Student:
    id_number = resident_id(n, born.strftime("%Y%m%d"), female)
    while id_number.endswith("X"):  # an ID typed as a number cannot end in X; keep them all digits
        n += 2
        id_number = resident_id(n, born.strftime("%Y%m%d"), female)
    return Student(name, id_number, "女" if female else "男", born, guardian, "母亲", phone)


STUDENTS = [
    _student(11, "张一诺", dt.date(2018, 4, 15), True, "张秀兰", "13805310001"),
    _student(23, "李子涵", dt.date(2018, 9, 1), False, "李建国", "13905310002"),
    _student(35, "王浩宇", dt.date(2019, 1, 20), False, "王丽娟", "15805310003"),
    _student(47, "赵欣怡", dt.date(2018, 12, 31), True, "赵海燕", "0531-88120000"),
]
NAMES = [s.name for s in STUDENTS]


@dataclass
class SheetSpec:
    name: str
    rows: list[list[object]]
    merges: list[str] = field(default_factory=list)
    hidden: bool = False


@dataclass
class Shape:
    """A roster as a school sends it, and what importing it must give."""

    key: str
    sheets: list[SheetSpec]
    #: Sheet row number -> student name, for the rows the reader returns.
    read: dict[int, str] = field(default_factory=dict)
    #: The same for the rows a roster import accepts.
    imported: dict[int, str] = field(default_factory=dict)
    #: Sheet row number -> {column key: normalised value} to check on those rows.
    values: dict[int, dict[str, str]] = field(default_factory=dict)
    #: The exact row errors (row, column, value, message start), when the sheet has some.
    errors: list[tuple[int, str, str, str]] = field(default_factory=list)
    #: The error the whole file is refused with, instead of rows.
    refused: str = ""

    def xlsx(self) -> bytes:
        wb = Workbook()
        assert wb.active is not None
        wb.remove(wb.active)
        for spec in self.sheets:
            ws = wb.create_sheet(spec.name)
            for row in spec.rows:
                ws.append(row)
            for cells in spec.merges:
                ws.merge_cells(cells)
            if spec.hidden:
                ws.sheet_state = "hidden"
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()

    def csv(self, encoding: str) -> bytes | None:
        """The sheet as Excel saves it as CSV (merged cells blank below their first row), or None
        when the shape needs more than one sheet."""
        if len(self.sheets) > 1:
            return None
        out = io.StringIO()
        writer = csv.writer(out)
        for row in self.sheets[0].rows:
            writer.writerow(["" if v is None else _csv_text(v) for v in row])
        return out.getvalue().encode(encoding)


def _csv_text(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):  # Excel writes 3.70112201804151E+17
        mantissa, exponent = f"{value:.14E}".split("E")
        return f"{mantissa.rstrip('0').rstrip('.')}E+{int(exponent)}"
    return str(value)


def _plain(key: str, above: list[list[object]], school: Callable[[int], object] = lambda i: "WSR-SH") -> Shape:
    first = len(above) + 2
    rows = [*above, list(HEADER), *[s.cells(school(i)) for i, s in enumerate(STUDENTS)]]
    numbered = {first + i: n for i, n in enumerate(NAMES)}
    return Shape(key, [SheetSpec("名单", rows)], read=numbered, imported=dict(numbered))


def shapes() -> list[Shape]:
    out = [_plain("plain", [])]

    titled = _plain("title row merged across the top", [[TITLE]])
    titled.sheets[0].merges.append("A1:H1")
    out.append(titled)

    merged = _plain("school merged down over its rows", [[TITLE]], lambda i: ["WSR-SH", None, "WSR-XD", None][i])
    merged.sheets[0].merges += ["A1:H1", "A3:A4", "A5:A6"]
    merged.values = {3: {"school": "WSR-SH"}, 4: {"school": "WSR-SH"}, 5: {"school": "WSR-XD"}, 6: {"school": "WSR-XD"}}
    out.append(merged)

    numbers = _plain("IDs typed as numbers", [])
    for row in numbers.sheets[0].rows[1:]:
        row[2] = float(f"{int(str(row[2])):.14e}")  # what Excel keeps: 15 significant digits
    numbers.imported = {}
    numbers.values = {
        i + 2: {"id_number": f"{s.id_number[0]}.{s.id_number[1:15].rstrip('0')}E+17"} for i, s in enumerate(STUDENTS)
    }
    numbers.errors = [
        (
            i + 2,
            "身份证号",
            f"{s.id_number[0]}.{s.id_number[1:15].rstrip('0')}E+17",
            "身份证号被存成了数字，只剩15位有效数字",
        )
        for i, s in enumerate(STUDENTS)
    ]
    out.append(numbers)

    pasted = _plain("IDs pasted with invisible characters and full-width digits", [])
    body = pasted.sheets[0].rows[1:]
    body[0][2] = str(body[0][2])[:6] + "\u200b" + str(body[0][2])[6:]  # zero-width space
    body[1][2] = str(body[1][2]) + "\u00a0"  # non-breaking space
    body[2][2] = str(body[2][2]).translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})  # full-width
    body[3][2] = "\ufeff " + str(body[3][2]) + "\u2060"
    pasted.values = {i + 2: {"id_number": s.id_number} for i, s in enumerate(STUDENTS)}
    out.append(pasted)

    out.append(_plain("header on row 3", [[TITLE], ["填报单位：石河小学", None, None, None, "填报日期：2025年9月1日"]]))

    gaps = _plain("empty columns between", [])
    for row in gaps.sheets[0].rows:
        row[:] = [row[0], None, *row[1:3], None, None, *row[3:]]
    out.append(gaps)

    notes = _plain("notes under the table", [[TITLE]])
    notes.sheets[0].rows += [
        [],
        ["制表人：刘老师", None, "审核人：孙校长", None, "制表日期：2025年9月1日"],
        ["注：身份证号请填写18位"],
    ]
    out.append(notes)

    hidden = _plain("hidden first sheet", [])
    hidden.sheets.insert(0, SheetSpec("模板", [HEADER, ["WSR-SH", "示例学生", "370112201801010011"]], hidden=True))
    out.append(hidden)

    second = _plain("data on the second sheet", [])
    second.sheets.insert(0, SheetSpec("填表说明", [["请在第二张表中填写新生名单"], ["出生日期写成 2018-04-15"]]))
    out.append(second)

    dates = _plain("dates as Excel dates, serials and Chinese forms", [])
    body = dates.sheets[0].rows[1:]
    serial = (STUDENTS[1].born - dt.date(1899, 12, 30)).days
    body[0][4], body[1][4] = STUDENTS[0].born, serial
    body[2][4] = f"{STUDENTS[2].born.year}.{STUDENTS[2].born.month}.{STUDENTS[2].born.day}"
    body[3][4] = f"{STUDENTS[3].born.year}年{STUDENTS[3].born.month}月{STUDENTS[3].born.day}日"
    dates.values = {i + 2: {"birth_date": s.born.isoformat()} for i, s in enumerate(STUDENTS)}
    out.append(dates)

    phones = _plain("phones written every way", [])
    body = phones.sheets[0].rows[1:]
    written = ["+86 138 0531 0001", "139-0531-0002", "(0531)88120000", "0531 88120000"]
    stored = ["13805310001", "13905310002", "0531-88120000", "0531-88120000"]
    for row, typed in zip(body, written, strict=True):
        row[7] = typed
    phones.values = {i + 2: {"guardian_phone": p} for i, p in enumerate(stored)}
    out.append(phones)

    numbered = _plain("序号 filled down past the last student", [])
    rows = numbered.sheets[0].rows
    rows[:] = [["序号", *rows[0]], *[[i + 1, *r] for i, r in enumerate(rows[1:])], *[[i] for i in range(5, 21)]]
    out.append(numbered)

    marked = _plain("headers marked as required", [])
    marked.sheets[0].rows[0] = [
        "*学校代码",
        "学生姓名（必填）",
        "身份证号(18位)",
        "性别",
        "出生日期",
        "监护人",
        "与学生关系",
        "联系电话",
    ]
    out.append(marked)

    missing = _plain("a required column missing", [[TITLE]])
    for row in missing.sheets[0].rows[1:]:
        del row[7]
    missing.read = missing.imported = {}
    missing.refused = "表头缺少列：监护人电话（表头在"
    out.append(missing)
    return out


def libreoffice_copies(files: dict[str, bytes], fmt: str) -> dict[str, bytes]:
    """The files saved as ``fmt`` (xls, ods) by the real LibreOffice, in one run of soffice."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        names = {}
        for i, (key, data) in enumerate(files.items()):
            path = src / f"{i:02d}.xlsx"
            path.write_bytes(data)
            names[key] = f"{i:02d}.{fmt}"
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation={(Path(tmp) / 'profile').as_uri()}",
                "--headless",
                "--convert-to",
                fmt,
                "--outdir",
                str(out),
                *sorted(str(p) for p in src.iterdir()),
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        return {key: (out / name).read_bytes() for key, name in names.items()}


FORMATS = ("xlsx", "xls", "et", "ods", "csv")


def corpus() -> dict[tuple[str, str], tuple[str, bytes]]:
    """Every shape in every format: (shape key, format) -> (file name, bytes). WPS's .et is BIFF
    inside, so the .xls LibreOffice writes is saved again under that name; CSVs alternate between
    UTF-8 with a BOM (Excel) and GB18030, which GBK is part of (WPS)."""
    all_shapes = shapes()
    books = {s.key: s.xlsx() for s in all_shapes}
    xls, ods = libreoffice_copies(books, "xls"), libreoffice_copies(books, "ods")
    out: dict[tuple[str, str], tuple[str, bytes]] = {}
    for i, s in enumerate(all_shapes):
        out[(s.key, "xlsx")] = ("名单.xlsx", books[s.key])
        out[(s.key, "xls")] = ("名单.xls", xls[s.key])
        out[(s.key, "et")] = ("名单.et", xls[s.key])
        out[(s.key, "ods")] = ("名单.ods", ods[s.key])
        text = s.csv("utf-8-sig" if i % 2 else "gb18030")
        if text is not None:
            out[(s.key, "csv")] = ("名单.csv", text)
    return out
