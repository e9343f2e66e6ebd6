"""An .ods (OpenDocument spreadsheet): every table's cells are counted, repeats included, before
calamine reads it, and its merges and hidden rows, which calamine does not report for .ods, are
read here."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from typing import Any

from service.sheets.errors import UNREADABLE_EXCEL, SheetTooLarge, UnreadableSheet
from service.sheets.grid import Grid, calamine_grids
from service.sheets.limits import Extent, Limits
from service.sheets.parts import Package, parse

ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"


def is_ods(package: Package) -> bool:
    return (
        "mimetype" in package.by_name
        and package.part("mimetype").startswith(ODS_MIMETYPE)
        and "content.xml" in package.by_name
    )


def ods_grids(package: Package, limits: Limits) -> list[Grid]:
    """The tables of ``content.xml`` scanned, then the parts repacked (uncompressed) for calamine."""
    repacked = io.BytesIO()
    with zipfile.ZipFile(repacked, "w", zipfile.ZIP_STORED) as out:
        out.writestr("mimetype", package.part("mimetype"))
        content = package.part("content.xml")
        tables = _scan_ods(content, limits)
        for name in package.by_name:
            if name != "mimetype":
                out.writestr(name, content if name == "content.xml" else package.part(name))
        del content
    return calamine_grids(repacked.getvalue(), None, [t.merges for t in tables], [frozenset(t.hidden) for t in tables])


@dataclass
class _OdsTable:
    extent: Extent
    merges: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    #: Rows with content that the table hides (numbered from 1, as the sheet shows them).
    hidden: set[int] = field(default_factory=set)


def _scan_ods(data: bytes, limits: Limits) -> list[_OdsTable]:
    """Check where every table's cells are, repeats counted; the merges calamine does not report for .ods."""
    tables: list[_OdsTable] = []
    s: dict[str, Any] = {
        "next": 0,
        "row": 0,
        "reps": 1,
        "col": 0,
        "cell": None,
        "depth": 0,
        "pushed": 0,
        "last": 0,
        "hidden": False,
    }

    def number(attrs: dict[str, str], key: str) -> int:
        value = attrs.get(key, "1")
        if not value.isdigit():
            raise UnreadableSheet(UNREADABLE_EXCEL)
        return max(1, int(value))

    def start(name: str, attrs: dict[str, str]) -> None:
        if s["cell"] is not None:
            s["cell"]["kids"] = True
            return
        if name == "table:table":
            tables.append(_OdsTable(Extent(attrs.get("table:name", ""), limits)))
            s["next"] = 0
        elif name == "table:table-row" and tables:
            s["row"], s["reps"] = s["next"], number(attrs, "table:number-rows-repeated")
            s["next"] += s["reps"]
            s["col"], s["last"] = 0, 0
            # collapsed by hand or filtered out: either way not on the screen of whoever checked it
            s["hidden"] = attrs.get("table:visibility", "visible") in ("collapse", "filter")
        elif name in ("table:table-cell", "table:covered-table-cell") and tables:
            s["cell"] = {
                "reps": number(attrs, "table:number-columns-repeated"),
                "kids": "office:value-type" in attrs,
                "rows": number(attrs, "table:number-rows-spanned"),
                "cols": number(attrs, "table:number-columns-spanned"),
            }

    def end(name: str) -> None:
        cell = s["cell"]
        if name in ("table:table-cell", "table:covered-table-cell") and cell is not None:
            row, col, reps = s["row"], s["col"], cell["reps"]
            if cell["kids"]:
                tables[-1].extent.add(row, col, rows=s["reps"], cols=reps)
                s["last"] = col + reps
            if cell["rows"] > 1 or cell["cols"] > 1:
                tables[-1].merges.append(((row, col), (row + cell["rows"] - 1, col + cell["cols"] - 1)))
            s["col"] = col + reps
            s["cell"] = None
        elif name == "table:table-row" and tables:
            if s["hidden"] and s["last"]:  # content rows only: their repeats are within the limits
                tables[-1].hidden.update(range(s["row"] + 1, s["row"] + s["reps"] + 1))
            s["pushed"] += s["last"]  # calamine keeps each row element up to its last non-empty cell
            if s["pushed"] > limits.max_cells:
                raise SheetTooLarge(
                    f"表格的单元格超过了 {limits.max_cells} 个的上限，无法读取。请删去用不到的工作表和内容后重新上传。"
                )

    parse(data, start, end)
    for table in tables:
        table.extent.check_area()
    return tables
