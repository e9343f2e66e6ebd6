"""A .csv as Excel and WPS save it: UTF-8 (with or without BOM) or GBK/GB18030, no merges."""

from __future__ import annotations

import csv
import io

from service.sheets.errors import SheetTooLarge, UnreadableSheet
from service.sheets.grid import Grid
from service.sheets.limits import Limits, too_many_columns, too_many_rows
from service.sheets.normalize import CellValue


def csv_grid(data: bytes, limits: Limits) -> Grid:
    """The one sheet of a CSV, its rows checked against the limits as they are read."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UnreadableSheet("无法识别 CSV 文件的编码，请另存为 UTF-8 或 GBK 编码。")
    rows: list[tuple[int, list[CellValue]]] = []
    try:
        for number, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
            if number > limits.max_rows:
                raise SheetTooLarge(too_many_rows("", number, limits))
            if len(cells) > limits.max_columns:
                raise SheetTooLarge(too_many_columns("", len(cells), limits))
            rows.append((number, [c.strip() for c in cells]))
    except csv.Error as exc:
        raise UnreadableSheet(f"CSV 文件格式有误（{exc}），请用 Excel 重新另存为 CSV 或 .xlsx。") from exc
    return Grid("", True, [], False, lambda: iter(rows))
