"""Sheets made for the tests of ``service.sheets``: workbooks written with openpyxl, packages written
by hand as a crafted file would be, the roster's columns, and a probe that reads a file in a fresh
process and reports the time and the peak memory it took."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from service.settings import PROJECT_ROOT
from service.sheets import Column


def xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


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


def probe(tmp_path: Path, data: bytes, name: str) -> dict[str, Any]:
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


def xlsx_package(sheet_xml: str, shared_strings: Iterable[str] | None = None) -> bytes:
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


def worksheet(rows: str, dimension: str = "A1") -> str:
    return (
        '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="{dimension}"/><sheetData>{rows}</sheetData></worksheet>'
    )


def text_rows(count: int, start: int = 1) -> str:
    return "".join(
        f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>学生{n}</t></is></c></row>' for n in range(start, start + count)
    )
