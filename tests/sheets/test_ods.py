"""An .ods read through its own scan: rows the table hides are named and nothing is imported."""

from __future__ import annotations

import io
import zipfile

import pytest

from service.sheets import Column, read_sheet
from service.sheets.errors import HiddenRows

COLUMNS = [Column("name", ("学生姓名",), required=True), Column("id", ("身份证号",))]
NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
)


def _row(values: list[str], visibility: str | None = None, repeated: int = 1) -> str:
    attrs = f' table:visibility="{visibility}"' if visibility else ""
    if repeated > 1:
        attrs += f' table:number-rows-repeated="{repeated}"'
    cells = "".join(
        f'<table:table-cell office:value-type="string"><text:p>{v}</text:p></table:table-cell>' for v in values
    )
    return f"<table:table-row{attrs}>{cells or '<table:table-cell/>'}</table:table-row>"


def _ods(*rows: str) -> bytes:
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {NS} office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="名单">'
        + "".join(rows)
        + "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content)
        z.writestr("META-INF/manifest.xml", manifest)
    return buf.getvalue()


HEADER = _row(["学生姓名", "身份证号"])


def test_an_ods_reads_its_rows() -> None:
    data = _ods(HEADER, _row(["甲", "1"]), _row(["乙", "2"]), _row(["丙", "3"]))
    assert [r.values["name"] for r in read_sheet(data, "名单.ods", COLUMNS).rows] == ["甲", "乙", "丙"]


@pytest.mark.parametrize("visibility", ["collapse", "filter"])
def test_hidden_rows_with_content_are_named_and_nothing_is_imported(visibility: str) -> None:
    data = _ods(
        HEADER,
        _row(["甲", "1"]),
        _row(["乙", "2"], visibility),  # row 3, hidden by hand or by a filter
        _row(["丙", "3"]),
        _row([], "collapse", repeated=1000),  # hidden but empty: no harm
    )
    with pytest.raises(HiddenRows) as caught:
        read_sheet(data, "名单.ods", COLUMNS)
    assert "第 3 行被隐藏了" in caught.value.message
    assert caught.value.details == {"rows": [3]}
