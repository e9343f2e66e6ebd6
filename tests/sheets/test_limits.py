"""Hard limits: a sheet bomb in any format is refused fast, with flat memory."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sheets.samples import probe, text_rows, worksheet, xlsx_package


@pytest.mark.parametrize(
    ("what", "make", "says"),
    [
        (
            "a cell at the far corner",
            lambda: xlsx_package(
                worksheet(
                    '<row r="1"><c r="A1"><v>1</v></c></row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row>',
                    "A1:XFD1048576",
                )
            ),
            "有内容写到了第 1048576 行，超过了 50000 行的上限",
        ),
        ("too many rows", lambda: xlsx_package(worksheet(text_rows(60_000))), "超过了 50000 行的上限"),
        (
            "too many columns",
            lambda: xlsx_package(worksheet('<row r="1"><c r="A1"><v>1</v></c><c r="ZZ1"><v>1</v></c></row>')),
            "有内容写到了第 702 列，超过了 200 列的上限",
        ),
        (
            "a used range too large",
            lambda: xlsx_package(
                worksheet('<row r="1"><c r="A1"><v>1</v></c></row><row r="40000"><c r="GR40000"><v>1</v></c></row>')
            ),
            "数据区域过大（40000 行 × 200 列）",
        ),
        (
            "shared strings that unzip to 100 MB",
            lambda: xlsx_package(
                worksheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'),
                _many_strings(),
            ),
            "解压后超过 64 MB",
        ),
        (
            "a string count calamine would reserve memory for",
            lambda: xlsx_package(
                worksheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'),
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
    result = probe(tmp_path, data, name)
    assert says in result["outcome"], result
    assert result["outcome"].startswith(("SHEET_TOO_LARGE", "SHEET_UNREADABLE"))
    assert result["seconds"] < 1.0 and result["rss_mb"] < 200, (what, result)


def _lying_zip() -> bytes:
    """Shared strings of 100 MB whose zip entry says 2 KB: a reader trusting the entry is fooled."""
    data = bytearray(xlsx_package(worksheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'), _many_strings()))
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
