"""Reading the sheets people upload: the first worksheet of an .xlsx file, or a .csv file saved by
Excel or WPS (UTF-8 or GBK), as rows of text numbered as the spreadsheet numbers them.

A cell is read as the text it shows: a formula (a cell typed as ``=...``) comes back as its text and
is never evaluated, a whole number typed as a number loses its ``.0``, a date becomes ``2025-08-31``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException


class UnreadableSheet(ValueError):
    """The file is not a sheet we can read; the message says why, in Chinese."""


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 370112001 typed as a number
    return str(value).strip()


def read_table(data: bytes, filename: str) -> list[tuple[int, list[str]]]:
    """The non-empty rows, each with its row number (the first row is 1)."""
    name = filename.lower()
    if name.endswith((".xlsx", ".xlsm")) or data[:2] == b"PK":
        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
            raw = [[cell_text(v) for v in row] for row in wb.worksheets[0].iter_rows(values_only=True)]
            wb.close()
        except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError, IndexError) as exc:
            raise UnreadableSheet("无法读取该 Excel 文件，请确认它是 .xlsx 格式（Excel 2007 及以后）。") from exc
    elif name.endswith((".csv", ".txt")):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise UnreadableSheet("无法识别 CSV 文件的编码，请另存为 UTF-8 或 GBK 编码。")
        try:
            raw = [[c.strip() for c in row] for row in csv.reader(io.StringIO(text))]
        except csv.Error as exc:
            raise UnreadableSheet(f"CSV 文件格式有误（{exc}），请用 Excel 重新另存为 CSV 或 .xlsx。") from exc
    else:
        raise UnreadableSheet("只支持 .xlsx 或 .csv 格式的表格。")
    return [(n, cells) for n, cells in enumerate(raw, start=1) if any(cells)]
