"""Reading the sheets people upload, as school offices really keep them.

One reader for every upload (unit trees, rosters, later reports): ``read_sheet`` takes the file's
bytes and the columns the caller needs, and returns the rows below the header, numbered as the
spreadsheet numbers them, each cell both as the person typed it and normalised.

- Formats: .xlsx/.xlsm, .xls (and WPS .et, which is the same BIFF inside), .ods, read by
  python-calamine; .csv in UTF-8 (with or without BOM) or GBK/GB18030. The content decides, not
  the file's name, so an .xlsx renamed .xls still reads.
- The header is the first row, within the first ``HEADER_SEARCH_ROWS`` non-empty rows, that names
  every required column (a title row such as "2025年XX小学一年级新生名单" above it is skipped), on
  the first sheet that has one (visible sheets before hidden ones).
- Merged cells are filled down (xlsx, xls and ods say which cells are merged); a CSV has no
  merges, so a blank cell in a column the caller marks ``fill_down`` takes the value above.
- Text is normalised: NFKC (full-width digits and letters), invisible characters removed, a
  身份证号's check letter upper-cased, phones in one form (``13805310001``, ``0531-88120000``),
  dates as ``2025-09-01``. A cell that starts with ``=`` is text, never evaluated: a formula
  comes back as the value Excel saved with it, or as its text when there is none.
- A number that lost digits (a 身份证号 typed as a number keeps 15 significant digits) is
  reported on its row with what to do, and so is a phone whose leading 0 was lost.
- Hard limits (``Limits``) on rows, columns, cells, strings and unpacked size are checked on the
  file's own structure before calamine allocates anything (zip entries unzipped here within the
  limit and checked against their CRC, cell positions scanned, declared sizes compared), so memory
  stays flat whatever a file declares. calamine's .xls parser still aborts the process on some
  damaged files, so .xls is parsed in a child process with its memory capped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import pickle
import re
import resource
import struct
import subprocess
import sys
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import PurePosixPath
from typing import Any, Literal
from xml.parsers import expat

import olefile
import python_calamine

from service.errors import InvalidInput

Kind = Literal["text", "code", "id_number", "phone", "date"]
CellValue = object

#: How many non-empty rows from the top may come before the header (titles, a 填报单位 line…).
HEADER_SEARCH_ROWS = 10
#: Excel keeps 15 significant digits of a number: anything this large typed as a number has lost digits.
EXACT_DIGITS_LIMIT = 10**15
#: Words that open the notes people write under a table ("制表人：", "合计"): such rows are not data.
NOTE_PREFIXES = (
    "制表",
    "填表",
    "审核",
    "统计人",
    "经办人",
    "负责人：",
    "负责人:",
    "校长签字",
    "签字",
    "盖章",
    "备注",
    "注：",
    "注:",
    "说明",
    "合计",
    "总计",
    "共计",
    "小计",
    "填报日期",
    "制表日期",
)
XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
UNSUPPORTED = "只支持 .xlsx 或 .csv 格式的表格（也可以是旧版 Excel 的 .xls、WPS 的 .et 或 .ods）。"
PASSWORD = "文件设置了打开密码，请在 Excel 或 WPS 中取消密码后另存，再上传。"
UNREADABLE_EXCEL = "无法读取该 Excel 文件：它可能已损坏。请用 Excel 或 WPS 打开后另存为 .xlsx 再上传。"


class UnreadableSheet(InvalidInput):
    """The file is not a sheet we can read; the message says why and what to do, in Chinese."""

    code = "SHEET_UNREADABLE"
    default_message = "无法读取该表格。"


class SheetTooLarge(UnreadableSheet):
    """The file is over one of the hard ``Limits``; refused before it is read."""

    code = "SHEET_TOO_LARGE"
    default_message = "表格过大，无法读取。"


class HeaderNotFound(UnreadableSheet):
    """No row near the top names the required columns; ``details["errors"]`` lists each missing one."""

    code = "SHEET_HEADER_NOT_FOUND"
    default_message = "表格中没有找到表头。"


@dataclass(frozen=True)
class Column:
    """A column the caller reads: its key, the header spellings it accepts (the first is its title)."""

    key: str
    names: tuple[str, ...]
    required: bool = False
    #: A blank cell takes the value above it where the format does not say which cells are merged (CSV).
    fill_down: bool = False
    kind: Kind = "text"

    @property
    def title(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class Limits:
    """Hard limits, checked on the file's structure before anything is allocated for its cells.

    The defaults hold a county's whole first-grade roster (a few thousand rows) many times over,
    and keep the reader's memory for the largest accepted sheet near 100 MB.
    """

    max_rows: int = 50_000
    max_columns: int = 200
    #: The area of each sheet's used range (calamine allocates it whole) and, for .ods, all cells read.
    max_cells: int = 1_000_000
    #: Total size of the parts of an .xlsx/.ods once unzipped.
    max_unpacked_bytes: int = 64 * 1024 * 1024
    max_strings: int = 1_000_000
    max_parts: int = 1_000


DEFAULT_LIMITS = Limits()


@dataclass
class SheetRow:
    """One data row: its number as the spreadsheet shows it, the normalised values (every declared
    column's key, ``""`` when blank or absent), what the person typed, and problems found in reading."""

    number: int
    values: dict[str, str]
    typed: dict[str, str]
    problems: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Sheet:
    name: str
    header_row: int
    #: key -> the header as written in the sheet, for the columns found.
    headers: dict[str, str]
    rows: list[SheetRow]

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [p for r in self.rows for p in r.problems]


def row_error(row: int, column: str, value: str, message: str, *, field: str | None = None) -> dict[str, Any]:
    """The shape of every row error an import reports: where, what was typed, and what to do."""
    out: dict[str, Any] = {"row": row, "column": column, "value": value, "message": message}
    if field is not None:  # the CLI prints title（field） for errors that carry them
        out["title"] = column
        out["field"] = field
    return out


# --- public entry points -------------------------------------------------------------------------


def read_sheet(data: bytes, filename: str, columns: Sequence[Column], *, limits: Limits = DEFAULT_LIMITS) -> Sheet:
    """The rows under the header of the first sheet that has one; raises ``UnreadableSheet``
    (``SheetTooLarge``, ``HeaderNotFound``) with a Chinese message that says what to do."""
    best: tuple[int, int, _Grid, int, dict[str, int]] | None = None
    empty = True
    for grid in _grids(data, filename, limits):
        found = _find_header(grid, columns)
        if found is None:
            continue
        empty = False
        header_row, index, score = found
        if all(c.key in index for c in columns if c.required):
            return _records(grid, header_row, index, columns)
        if best is None or score > best[0]:
            best = (score, len(index), grid, header_row, index)
    if empty:
        raise UnreadableSheet("表格是空的，没有任何内容。请确认上传的是填好的那个文件。")
    raise _header_error(best, columns)


def read_table(data: bytes, filename: str, *, limits: Limits = DEFAULT_LIMITS) -> list[tuple[int, list[str]]]:
    """The non-empty rows of the first visible sheet as the text they show, each with its row number."""
    for grid in _grids(data, filename, limits):
        out = []
        for number, cells in grid.rows():
            texts = [shown(v) for v in cells]
            if any(texts):
                out.append((number, texts))
        return out
    return []


# --- cell text -----------------------------------------------------------------------------------


def shown(value: CellValue) -> str:
    """A cell as Excel shows it: ``370112001`` not ``370112001.0``, ``3.70102201501011E+17`` for a
    number too long to keep, a date as ``2018-03-07``."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        if value.is_integer() and abs(value) < EXACT_DIGITS_LIMIT:
            return str(int(value))
        if abs(value) >= EXACT_DIGITS_LIMIT:
            mantissa, exponent = f"{value:.14E}".split("E")
            return f"{mantissa.rstrip('0').rstrip('.')}E+{int(exponent):02d}"
        return f"{value:.15g}"
    return str(value).strip()


#: Invisible format characters (Unicode category Cf: zero-width space, BOM, soft hyphen, word
#: joiner, direction marks, tag characters…) that a paste from a web system leaves in a cell.
_FORMAT_CHARACTERS = dict.fromkeys(
    cp for cp in (*range(0x10000), *range(0xE0000, 0xE0080)) if unicodedata.category(chr(cp)) == "Cf"
)


def clean_text(text: str) -> str:
    """NFKC (full-width digits and letters become ASCII, a non-breaking or ideographic space a
    space), invisible format characters gone, spaces collapsed."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_FORMAT_CHARACTERS)
    return " ".join(text.split())


def normalize_phone(text: str) -> str:
    """``+86 138 0531 0001`` and ``138-0531-0001`` -> ``13805310001``; ``(0531)88120000`` and
    ``053188120000`` -> ``0531-88120000``. Anything else comes back without its spaces."""
    s = re.sub(r"\s+", "", clean_text(text))
    s = re.sub(r"[—–－]", "-", s)
    s = re.sub(r"^(?:\+86|0086|\(\+?86\))-?", "", s)
    digits = s.replace("-", "")
    if re.fullmatch(r"(?:86)?1[3-9]\d{9}", digits):
        return digits[-11:]
    m = re.fullmatch(r"\((0\d{2,3})\)-?(\d{7,8})(-\d{1,6})?", s) or re.fullmatch(r"(0\d{2,3})-(\d{7,8})(-\d{1,6})?", s)
    if m:
        return f"{m.group(1)}-{m.group(2)}{m.group(3) or ''}"
    m = re.fullmatch(r"(0[12]\d|0[3-9]\d{2})(\d{7,8})", s)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return s


def normalize_date(value: CellValue) -> str | None:
    """A date cell, an Excel serial, ``2025.9.1``, ``2025/9/1``, ``2025年9月1日`` or ``20250901`` as
    ``2025-09-01``; None when it is not a date."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if float(value).is_integer() and 19000101 <= value <= 29991231:
            text = str(int(value))
        elif 1 <= value < 2958466:  # an Excel serial (day 1 is 1900-01-01; Excel's 1900 leap day counted)
            return (dt.date(1899, 12, 30) + dt.timedelta(days=int(value))).isoformat()
        else:
            return None
    else:
        text = clean_text(str(value or "")).replace(" ", "")
        if re.fullmatch(r"[1-9]\d{4}", text):  # a date column left as General shows its serial
            return normalize_date(int(text))
    m = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:\d{1,2}:\d{2}(?::\d{2})?)?", text) or re.fullmatch(
        r"(\d{4})(\d{2})(\d{2})", text
    )
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        return None


_SCIENTIFIC = re.compile(r"\d(?:\.\d+)?[Ee]\+\d{1,3}")


def _normalize(value: CellValue, typed: str, column: Column) -> tuple[str, str | None]:
    """The normalised text of a cell, and the problem with it (in Chinese) if reading lost something."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    lost = is_number and abs(value) >= EXACT_DIGITS_LIMIT  # type: ignore[arg-type]
    if column.kind in ("id_number", "phone", "code") and _SCIENTIFIC.fullmatch(typed.strip()):
        lost = True  # the same number saved as the text Excel showed (a CSV)
    if lost:
        what = "身份证号" if column.kind == "id_number" else column.title
        return typed, (
            f"{what}被存成了数字，只剩15位有效数字（表格里现在是 {typed}），后几位已经丢失："
            "请把该列设为“文本”格式后重新填写，或从学籍系统重新导出名单"
        )
    if column.kind == "date":
        return normalize_date(value if not isinstance(value, str) else typed) or clean_text(typed), None
    text = clean_text(typed)
    if column.kind == "phone":
        phone = normalize_phone(text)
        if is_number and not re.fullmatch(r"1[3-9]\d{9}", phone):
            return phone, (
                f"电话被存成了数字，开头的 0 已经丢失（表格里现在是 {typed}）：请把该列设为“文本”格式后重新填写，座机写成 区号-号码"
            )
        return phone, None
    if column.kind == "id_number":
        return text.replace(" ", "").upper(), None
    if column.kind == "code":
        return text.replace(" ", ""), None
    return text, None


# --- header and rows -----------------------------------------------------------------------------


def _header_key(text: str) -> str:
    """A header as compared: no spaces or asterisks, no trailing note such as （必填） or (18位)."""
    s = re.sub(r"[\s*]", "", clean_text(text))
    return re.sub(r"[(\[【][^()\[\]【】]*[)\]】]$", "", s) or s


def _find_header(grid: _Grid, columns: Sequence[Column]) -> tuple[int, dict[str, int], int] | None:
    """The first row among the top non-empty ones naming every required column, else the best one."""
    names = {c.key: {_header_key(n) for n in c.names} for c in columns}
    best: tuple[int, dict[str, int], int] | None = None
    seen = 0
    for number, cells in grid.rows():
        keys = [_header_key(shown(v)) for v in cells]
        if not any(keys):
            continue
        seen += 1
        index: dict[str, int] = {}
        for c in columns:
            for i, k in enumerate(keys):
                if k in names[c.key] and i not in index.values():
                    index[c.key] = i
                    break
        score = sum(1 for c in columns if c.required and c.key in index)
        if best is None or (score, len(index)) > (best[2], len(best[1])):
            best = (number, index, score)
        if all(c.key in index for c in columns if c.required):
            return number, index, score
        if seen >= HEADER_SEARCH_ROWS:
            break
    return best


def _header_error(
    best: tuple[int, int, _Grid, int, dict[str, int]] | None, columns: Sequence[Column]
) -> UnreadableSheet:
    required = [c for c in columns if c.required]
    wanted = "、".join(c.title for c in required)
    if best is None or best[0] == 0:
        return HeaderNotFound(
            f"表格前 {HEADER_SEARCH_ROWS} 行中没有找到表头。表头一行应写明这些列：{wanted}（列的顺序不限）。",
            details={
                "errors": [row_error(1, c.title, "", f"没有找到这一列{_aliases(c)}", field=c.key) for c in required]
            },
        )
    _, _, grid, header_row, index = best
    missing = [c for c in required if c.key not in index]
    where = f"工作表「{grid.name}」" if grid.name else "表格"
    return HeaderNotFound(
        f"表头缺少列：{'、'.join(c.title for c in missing)}（表头在{where}第 {header_row} 行）。"
        "请在表头中加上这些列后重新上传。",
        details={
            "errors": [row_error(header_row, c.title, "", f"缺少这一列{_aliases(c)}", field=c.key) for c in missing]
        },
    )


def _aliases(column: Column) -> str:
    return f"（也可以写作：{'、'.join(column.names[1:])}）" if len(column.names) > 1 else ""


def _is_note(cells: Sequence[CellValue]) -> bool:
    first = next((shown(v) for v in cells if shown(v)), "")
    return clean_text(first).replace(" ", "").startswith(NOTE_PREFIXES)


def _records(grid: _Grid, header_row: int, index: dict[str, int], columns: Sequence[Column]) -> Sheet:
    header_cells: list[CellValue] = []
    merges: dict[int, dict[int, int]] = {}  # column -> first row of a merge -> its last row
    for (r0, c0), (r1, c1) in grid.merges:
        if r1 > r0 and r0 + 1 > header_row:
            for col in range(c0, c1 + 1):
                merges.setdefault(col, {})[r0 + 1] = r1 + 1
    active: dict[int, tuple[CellValue, int]] = {}  # column -> (value of the merge, its last row)
    above: dict[str, tuple[CellValue, str]] = {}
    fill_blanks = not grid.knows_merges
    rows: list[SheetRow] = []
    header_keys: dict[int, str] = {}
    for number, cells in grid.rows():
        if number < header_row:
            continue
        if number == header_row:
            header_cells = list(cells)
            header_keys = {i: _header_key(shown(v)) for i, v in enumerate(header_cells)}
            continue
        raw = {key: (cells[i] if i < len(cells) else "") for key, i in index.items()}
        for key, i in index.items():  # a merged cell shows its first cell's value on every row it covers
            if i in merges and number in merges[i]:
                active[i] = (raw[key], merges[i][number])
            elif i in active:
                value, last = active[i]
                if number <= last and shown(raw[key]) == "":
                    raw[key] = value
                elif number > last:
                    del active[i]
        if not any(shown(v) for v in raw.values()) or _is_note(cells):
            continue
        if all(_header_key(shown(raw[k])) == header_keys.get(i) for k, i in index.items()):
            continue  # the header again, as a printout repeats it on every page
        values: dict[str, str] = {}
        typed: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for c in columns:
            if c.key not in index:
                values[c.key] = typed[c.key] = ""
                continue
            value = raw[c.key]
            text = shown(value)
            if text == "" and c.fill_down and fill_blanks and c.key in above:
                value, text = above[c.key]
            value_text, problem = _normalize(value, text, c)
            values[c.key], typed[c.key] = value_text, text
            if problem:
                problems.append(row_error(number, c.title, text, problem))
            if text:
                above[c.key] = (value, text)
        rows.append(SheetRow(number, values, typed, problems))
    headers = {key: shown(header_cells[i]) for key, i in index.items() if i < len(header_cells)}
    return Sheet(grid.name, header_row, headers, rows)


# --- formats -------------------------------------------------------------------------------------


@dataclass
class _Grid:
    """One sheet: its rows as lists indexed by column (0 = A), numbered from 1, and its merges."""

    name: str
    visible: bool
    merges: list[tuple[tuple[int, int], tuple[int, int]]]
    #: False for a CSV: its blank cells may be merged cells, filled down where the caller allows.
    knows_merges: bool
    _rows: Callable[[], Iterator[tuple[int, list[CellValue]]]]

    def rows(self) -> Iterator[tuple[int, list[CellValue]]]:
        return self._rows()


def _grids(data: bytes, filename: str, limits: Limits) -> Iterator[_Grid]:
    """Every sheet of the file, visible ones first; raises UnreadableSheet for a file we cannot read."""
    name = filename.lower()
    if data[:4] == b"PK\x03\x04" or name.endswith((".xlsx", ".xlsm", ".ods")):
        grids = _zip_grids(data, limits)
    elif data[:8] == XLS_MAGIC:
        grids = _xls_grids(data, limits)
    elif name.endswith((".csv", ".txt")):
        grids = [_csv_grid(data, limits)]
    else:
        raise UnreadableSheet(UNSUPPORTED)
    yield from sorted(grids, key=lambda g: not g.visible)


def _csv_grid(data: bytes, limits: Limits) -> _Grid:
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
                raise SheetTooLarge(_too_many_rows("", number, limits))
            if len(cells) > limits.max_columns:
                raise SheetTooLarge(_too_many_columns("", len(cells), limits))
            rows.append((number, [c.strip() for c in cells]))
    except csv.Error as exc:
        raise UnreadableSheet(f"CSV 文件格式有误（{exc}），请用 Excel 重新另存为 CSV 或 .xlsx。") from exc
    return _Grid("", True, [], False, lambda: iter(rows))


def _too_many_rows(sheet: str, rows: int, limits: Limits) -> str:
    where = f"工作表「{sheet}」" if sheet else "表格"
    return (
        f"{where}有内容写到了第 {rows} 行，超过了 {limits.max_rows} 行的上限。"
        "请删去多余的行（按 Ctrl+End 可以看到表格的最后一个单元格），或把名单分成几个文件上传。"
    )


def _too_many_columns(sheet: str, columns: int, limits: Limits) -> str:
    where = f"工作表「{sheet}」" if sheet else "表格"
    return f"{where}有内容写到了第 {columns} 列，超过了 {limits.max_columns} 列的上限。请删去右侧多余的列后重新上传。"


@dataclass
class _Extent:
    """Where a sheet's cells are, as the file says, checked against the limits as it is scanned."""

    sheet: str
    limits: Limits
    min_row: int = 1 << 30
    max_row: int = -1
    min_col: int = 1 << 30
    max_col: int = -1
    cells: int = 0

    def add(self, row: int, col: int, rows: int = 1, cols: int = 1) -> None:
        """Cells at 0-based (row, col), repeated over ``rows`` x ``cols``."""
        last_row, last_col = row + rows - 1, col + cols - 1
        if last_row >= self.limits.max_rows:
            raise SheetTooLarge(_too_many_rows(self.sheet, last_row + 1, self.limits))
        if last_col >= self.limits.max_columns:
            raise SheetTooLarge(_too_many_columns(self.sheet, last_col + 1, self.limits))
        if row < self.min_row:
            self.min_row = row
        if last_row > self.max_row:
            self.max_row = last_row
        if col < self.min_col:
            self.min_col = col
        if last_col > self.max_col:
            self.max_col = last_col
        self.cells += rows * cols
        if self.cells > self.limits.max_cells:
            self.check_area()
            raise SheetTooLarge(_too_many_cells(self.sheet, self.limits))

    def check_area(self) -> None:
        """calamine allocates the whole used range, the empty cells in it included."""
        if self.max_row < 0:
            return
        rows, cols = self.max_row - self.min_row + 1, self.max_col - self.min_col + 1
        if rows * cols > self.limits.max_cells:
            raise SheetTooLarge(
                f"工作表「{self.sheet}」的数据区域过大（{rows} 行 × {cols} 列），超过了 {self.limits.max_cells} 个单元格的上限。"
                "请删去远处多余的内容（按 Ctrl+End 可以看到表格的最后一个单元格）后重新上传。"
            )


def _too_many_cells(sheet: str, limits: Limits) -> str:
    where = f"工作表「{sheet}」" if sheet else "表格"
    return (
        f"{where}的单元格超过了 {limits.max_cells} 个的上限，无法读取。请删去用不到的内容，或把名单分成几个文件上传。"
    )


@contextmanager
def _calamine_errors() -> Iterator[None]:
    """calamine's errors, and its panics on a damaged file (pyo3 raises those as a BaseException)."""
    try:
        yield
    except python_calamine.PasswordError as exc:
        raise UnreadableSheet(PASSWORD) from exc
    except (python_calamine.CalamineError, ValueError, OSError) as exc:
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc


def _calamine_grids(
    workbook_bytes: bytes,
    patches: Sequence[dict[tuple[int, int], str]] | None = None,
    merges: Sequence[list[tuple[tuple[int, int], tuple[int, int]]]] | None = None,
) -> list[_Grid]:
    with _calamine_errors():
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(workbook_bytes))
        grids = []
        for i, meta in enumerate(book.sheets_metadata):
            if meta.typ != python_calamine.SheetTypeEnum.WorkSheet:
                continue
            sheet = book.get_sheet_by_index(i)
            sheet_merges = sheet.merged_cell_ranges
            if merges is not None:
                sheet_merges = merges[i] if i < len(merges) else []
            grids.append(
                _Grid(
                    meta.name,
                    meta.visible == python_calamine.SheetVisibleEnum.Visible,
                    list(sheet_merges or []),
                    sheet_merges is not None,
                    _sheet_rows(sheet, patches[i] if patches and i < len(patches) else {}),
                )
            )
        return grids


#: calamine's .xls reader (compound file and BIFF records) aborts the whole process on some damaged
#: files, with an allocation sized by a corrupt field: it runs in a child process whose memory is
#: capped, so a bad upload costs that child, never the server.
XLS_CHILD_MEMORY = 1 << 30
XLS_CHILD_SECONDS = 60


def _xls_in_child(data: bytes) -> list[_Grid]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", f"from service.sheets import _xls_child; _xls_child({XLS_CHILD_MEMORY})"],
            input=data,
            capture_output=True,
            timeout=XLS_CHILD_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc
    if done.returncode != 0:
        raise UnreadableSheet(UNREADABLE_EXCEL)
    sheets: list[tuple[str, bool, list[tuple[tuple[int, int], tuple[int, int]]], list[tuple[int, list[CellValue]]]]]
    sheets = pickle.loads(done.stdout)
    return [_Grid(name, visible, merges, True, partial(iter, rows)) for name, visible, merges, rows in sheets]


def _xls_child(memory: int) -> None:
    """The child's side of ``_xls_in_child``: the workbook on stdin, its sheets pickled on stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    grids = _calamine_grids(sys.stdin.buffer.read())
    pickle.dump([(g.name, g.visible, g.merges, list(g.rows())) for g in grids], sys.stdout.buffer)


def _sheet_rows(
    sheet: python_calamine.CalamineSheet, patches: dict[tuple[int, int], str]
) -> Callable[[], Iterator[tuple[int, list[CellValue]]]]:
    """Rows of a calamine sheet, numbered from 1 with cells indexed from column A, formula texts patched in.

    python-calamine's iterator yields the rows above the used range as empty rows (so the n-th row
    it yields is the sheet's row n) and each row from the used range's first column.
    """

    def rows() -> Iterator[tuple[int, list[CellValue]]]:
        start = sheet.start
        by_row: dict[int, list[tuple[int, str]]] = {}
        for (r, c), text in patches.items():
            by_row.setdefault(r, []).append((c, text))
        number = 0
        if start is not None:  # an empty sheet has no iterator (calamine would panic)
            col0 = start[1]
            for values in sheet.iter_rows():
                cells: list[CellValue] = [""] * col0 + list(values)
                for c, text in by_row.get(number, []):
                    _put(cells, c, text)
                number += 1
                yield number, cells
        while by_row and number <= max(by_row):
            cells = []
            for c, text in by_row.get(number, []):
                _put(cells, c, text)
            number += 1
            yield number, cells

    return rows


def _put(cells: list[CellValue], col: int, text: str) -> None:
    if col >= len(cells):
        cells.extend([""] * (col + 1 - len(cells)))
    if shown(cells[col]) == "":
        cells[col] = text


def _unpacked_too_large(limits: Limits) -> SheetTooLarge:
    return SheetTooLarge(
        f"表格解压后超过 {limits.max_unpacked_bytes // (1024 * 1024)} MB，无法读取。"
        "请删去图片和用不到的工作表，或在 Excel、WPS 中另存为新的文件后重新上传。"
    )


def _zip_grids(data: bytes, limits: Limits) -> list[_Grid]:
    """An .xlsx or .ods: every part it needs is unzipped here, within the limits and checked against
    its CRC, its cells' positions scanned, and only then handed to calamine, repacked."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc
    if len(infos) > limits.max_parts:
        raise _unpacked_too_large(limits)
    wanted = [i for i in infos if i.filename == "mimetype" or i.filename.endswith((".xml", ".rels"))]
    if sum(i.file_size for i in wanted) > limits.max_unpacked_bytes:
        raise _unpacked_too_large(limits)
    by_name = {i.filename: i for i in wanted}

    def part(name: str) -> bytes:
        info = by_name[name]
        try:
            chunks = []
            with archive.open(info) as f:  # zipfile stops at the declared size and checks the CRC
                while chunk := f.read(1 << 20):  # in small reads: one big read inflates that much first
                    chunks.append(chunk)
            out = b"".join(chunks)
        except (
            zipfile.BadZipFile,
            zlib.error,
            NotImplementedError,
            RuntimeError,
            ValueError,
            OSError,
            EOFError,
        ) as exc:
            raise UnreadableSheet(UNREADABLE_EXCEL) from exc
        if len(out) != info.file_size:
            raise UnreadableSheet(UNREADABLE_EXCEL)
        return out

    repacked = io.BytesIO()
    with zipfile.ZipFile(repacked, "w", zipfile.ZIP_STORED) as out:
        if "mimetype" in by_name and part("mimetype").startswith(ODS_MIMETYPE) and "content.xml" in by_name:
            out.writestr("mimetype", part("mimetype"))
            content = part("content.xml")
            tables = _scan_ods(content, limits)
            for name in by_name:
                if name != "mimetype":
                    out.writestr(name, content if name == "content.xml" else part(name))
            del content
            merges = [t.merges for t in tables]
            patches = None
        elif any(name.endswith("workbook.xml") for name in by_name):
            sheets = _xlsx_sheets(part, by_name)
            scanned: dict[str, dict[tuple[int, int], str]] = {}
            for name in by_name:
                body = part(name)
                if name in sheets.values():
                    sheet_name = next(n for n, p in sheets.items() if p == name)
                    scanned[name] = _scan_xlsx_sheet(body, _Extent(sheet_name, limits))
                elif name.endswith("sharedStrings.xml"):
                    _scan_shared_strings(body, limits)
                out.writestr(name, body)
                del body
            patches = [scanned.get(p, {}) for p in sheets.values()]
            merges = None
        else:
            raise UnreadableSheet(UNSUPPORTED)
    return _calamine_grids(repacked.getvalue(), patches, merges)


def _xlsx_sheets(part: Any, by_name: dict[str, zipfile.ZipInfo]) -> dict[str, str]:
    """Sheet name -> the zip part holding it, in workbook order (calamine's order)."""
    try:
        rels = _xml(part("_rels/.rels"))
        target = next(
            r.get("Target", "") for r in rels if r.get("Type", "").endswith("/officeDocument") and r.get("Target")
        )
        workbook = target.lstrip("/")
        base = PurePosixPath(workbook).parent
        book_rels = _xml(part(str(base / "_rels" / (PurePosixPath(workbook).name + ".rels"))))
        paths = {}
        for r in book_rels:
            t = r.get("Target", "")
            paths[r.get("Id", "")] = t.lstrip("/") if t.startswith("/") else _normpath(base / t)
        out = {}
        for el in _xml(part(workbook)).iter():
            if el.tag.rpartition("}")[2] == "sheet":
                rid = next((v for k, v in el.attrib.items() if k.rpartition("}")[2] == "id"), "")
                out[el.get("name", "")] = paths.get(rid, "")
        return out
    except (KeyError, StopIteration, ValueError) as exc:
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc


def _normpath(path: PurePosixPath) -> str:
    parts: list[str] = []
    for p in path.parts:
        if p == "..":
            if parts:
                parts.pop()
        elif p not in (".", ""):
            parts.append(p)
    return "/".join(parts)


def _xml(data: bytes) -> Any:
    from xml.etree import ElementTree

    try:
        return ElementTree.fromstring(data)  # expat >= 2.4 refuses entity-expansion bombs
    except ElementTree.ParseError as exc:
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc


def _parse(data: bytes, start: Any, end: Any = None, chars: Any = None) -> None:
    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    if chars is not None:
        parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc


_CELL_REF = re.compile(r"\$?([A-Z]{1,3})\$?(\d{1,7})")


_CELL_TAG = re.compile(rb"<(?:[\w.-]+:)?c(?=[\s/>])([^>]*)>")
_CELL_R = re.compile(rb'\br\s*=\s*["\']\$?([A-Z]{1,3})\$?(\d{1,7})["\']')
_CELL_T = re.compile(rb"\bt\s*=")


def _scan_xlsx_sheet(data: bytes, extent: _Extent) -> dict[tuple[int, int], str]:
    """Check where a worksheet's cells are; returns the text of formulas saved without a value.

    Excel, WPS and LibreOffice give every cell its position (``r="B7"``), so the positions are read
    with one regular expression (a 50,000-row sheet in a tenth of a second); a sheet with a cell
    that has none is walked with the XML parser instead. A self-closing cell without a type is an
    empty formatted cell, which calamine leaves out too. The slower look at formulas runs only on
    a sheet that has any.
    """
    for m in _CELL_TAG.finditer(data):
        attrs = m.group(1)
        ref = _CELL_R.search(attrs)
        if ref is None:
            return _scan_xlsx_sheet_slowly(data, extent)
        if attrs.endswith(b"/") and not _CELL_T.search(attrs):
            continue
        col = 0
        for ch in ref.group(1):
            col = col * 26 + ch - 64
        extent.add(int(ref.group(2)) - 1, col - 1)
    extent.check_area()
    return _formulas_without_values(data) if b"<f" in data or b":f" in data else {}


def _scan_xlsx_sheet_slowly(data: bytes, extent: _Extent) -> dict[tuple[int, int], str]:
    """The same check for a sheet whose cells are positioned by their order, not by ``r``."""
    row, col, counted = -1, -1, True

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal row, col, counted
        name = name.rpartition(":")[2]
        if name == "c":
            ref = attrs.get("r")
            if ref:
                row, col = _cell_position(ref)
            else:
                col += 1
            if row < 0:
                raise UnreadableSheet(UNREADABLE_EXCEL)
            counted = False
            if attrs.get("t"):
                counted = True
                extent.add(row, col)
        elif name in ("v", "is", "f"):
            if not counted:
                counted = True
                extent.add(row, col)
        elif name == "row":
            r = attrs.get("r")
            row = int(r) - 1 if r and r.isdigit() else row + 1
            col = -1

    _parse(data, start)
    extent.check_area()
    return _formulas_without_values(data) if b"<f" in data or b":f" in data else {}


def _cell_position(ref: str) -> tuple[int, int]:
    m = _CELL_REF.fullmatch(ref)
    if not m:
        raise UnreadableSheet(UNREADABLE_EXCEL)
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)) - 1, col - 1


def _formulas_without_values(data: bytes) -> dict[tuple[int, int], str]:
    """The text of each formula saved with no value (a file written by a program, not by Excel)."""
    row, col = -1, -1
    inside, value = "", 0
    patches: dict[tuple[int, int], str] = {}
    collected: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal row, col, inside, value, collected
        name = name.rpartition(":")[2]
        if name == "row":
            r = attrs.get("r")
            row, col = (int(r) - 1 if r and r.isdigit() else row + 1), -1
        elif name == "c":
            ref = attrs.get("r")
            if ref:
                row, col = _cell_position(ref)
            else:
                col += 1
            collected, value = [], 0
        elif name in ("v", "is", "f"):
            inside = name

    def chars(text: str) -> None:
        nonlocal value
        if inside == "f" and len(collected) < 1000:
            collected.append(text)
        elif inside in ("v", "is"):
            value += len(text.strip())

    def end(name: str) -> None:
        nonlocal inside
        name = name.rpartition(":")[2]
        if name in ("v", "f", "is"):
            inside = ""
        elif name == "c" and collected and not value:
            patches[(row, col)] = "=" + "".join(collected)

    _parse(data, start, end, chars)
    return patches


def _scan_shared_strings(data: bytes, limits: Limits) -> None:
    count = [0]

    def start(name: str, attrs: dict[str, str]) -> None:
        name = name.rpartition(":")[2]
        if name == "sst":
            declared = attrs.get("uniqueCount", "0")
            if declared.isdigit() and int(declared) > limits.max_strings:  # calamine reserves this many
                raise _too_many_strings(limits)
        elif name == "si":
            count[0] += 1
            if count[0] > limits.max_strings:
                raise _too_many_strings(limits)

    _parse(data, start)


def _too_many_strings(limits: Limits) -> SheetTooLarge:
    return SheetTooLarge(
        f"表格中的文字超过了 {limits.max_strings} 条的上限，无法读取。请删去用不到的工作表和内容后重新上传。"
    )


@dataclass
class _OdsTable:
    extent: _Extent
    merges: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)


def _scan_ods(data: bytes, limits: Limits) -> list[_OdsTable]:
    """Check where every table's cells are, repeats counted; the merges calamine does not report for .ods."""
    tables: list[_OdsTable] = []
    s: dict[str, Any] = {"next": 0, "row": 0, "reps": 1, "col": 0, "cell": None, "depth": 0, "pushed": 0, "last": 0}

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
            tables.append(_OdsTable(_Extent(attrs.get("table:name", ""), limits)))
            s["next"] = 0
        elif name == "table:table-row" and tables:
            s["row"], s["reps"] = s["next"], number(attrs, "table:number-rows-repeated")
            s["next"] += s["reps"]
            s["col"], s["last"] = 0, 0
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
            s["pushed"] += s["last"]  # calamine keeps each row element up to its last non-empty cell
            if s["pushed"] > limits.max_cells:
                raise SheetTooLarge(
                    f"表格的单元格超过了 {limits.max_cells} 个的上限，无法读取。请删去用不到的工作表和内容后重新上传。"
                )

    _parse(data, start, end)
    for table in tables:
        table.extent.check_area()
    return tables


# BIFF record types (MS-XLS) whose first four bytes are the row and column of a cell with a value.
_XLS_CELLS = {0x0006, 0x00FD, 0x0203, 0x027E, 0x0204, 0x0205, 0x00D6}
_XLS_MULRK, _XLS_BOF, _XLS_EOF, _XLS_BOUNDSHEET = 0x00BD, 0x0809, 0x000A, 0x0085
_XLS_DIMENSIONS, _XLS_SST, _XLS_FILEPASS = 0x0200, 0x00FC, 0x002F


def _check_xls_dimensions(extent: _Extent, body: bytes) -> None:
    """calamine reserves room for the used range a sheet declares, computed as it does here (in
    32-bit arithmetic, so a first row past the last one wraps round to four billion rows)."""
    first_row, last_row, first_col, last_col = struct.unpack_from("<IIHH" if len(body) == 14 else "<HHHH", body)
    if first_col > 0xFF or last_col < first_col:
        first_col = 0
    end_row, end_col = (last_row - 1, last_col - 1) if last_row >= 1 and last_col >= 1 else (first_row, first_col)
    rows, cols = (end_row - first_row + 1) % (1 << 32), (end_col - first_col + 1) % (1 << 32)
    if rows * cols > extent.limits.max_cells:
        raise SheetTooLarge(
            f"工作表「{extent.sheet}」声明的数据区域过大（{rows} 行 × {cols} 列），超过了 {extent.limits.max_cells} 个单元格的上限。"
            "请在 Excel 或 WPS 中删去多余的行和列，另存为 .xlsx 后重新上传。"
        )


def _xls_grids(data: bytes, limits: Limits) -> list[_Grid]:
    """An .xls (or WPS .et): the compound file's header and the BIFF records are checked here, the
    declared dimensions and string count included (calamine reserves memory from them)."""
    sector = 1 << struct.unpack_from("<H", data, 0x1E)[0] if len(data) >= 512 else 0
    if sector not in (512, 4096):
        raise UnreadableSheet(UNREADABLE_EXCEL)
    sectors = len(data) // sector + 1
    fat, mini_fat, difat = (struct.unpack_from("<I", data, at)[0] for at in (0x2C, 0x40, 0x48))
    if fat > sectors or difat > sectors or (mini_fat > sectors and mini_fat != 0xFFFFFFFF):
        raise UnreadableSheet(UNREADABLE_EXCEL)
    try:
        ole = olefile.OleFileIO(data)
        if ole.exists("EncryptedPackage") or ole.exists("EncryptionInfo"):
            raise UnreadableSheet(PASSWORD)
        stream = next((s for s in ("Workbook", "Book") if ole.exists(s)), None)
        if stream is None:
            raise UnreadableSheet(UNREADABLE_EXCEL)
        book = ole.openstream(stream).read()
        ole.close()
    except (OSError, ValueError, IndexError, KeyError, struct.error) as exc:
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc
    biff8 = stream == "Workbook"
    sheets: dict[int, _Extent] = {}
    current: _Extent | None = None
    depth = 0  # substreams nested in a sheet (an embedded chart) carry cell-like records calamine skips
    pos = 0
    while pos + 4 <= len(book):
        kind, size = struct.unpack_from("<HH", book, pos)
        body = book[pos + 4 : pos + 4 + size]
        if kind == _XLS_BOF:
            if pos in sheets:
                current, depth = sheets[pos], 1
            elif current is not None:
                depth += 1
        elif kind == _XLS_EOF:
            depth -= 1
            if depth <= 0:
                current, depth = None, 0
        elif depth > 1:
            pass
        elif kind == _XLS_BOUNDSHEET and len(body) >= 8 and current is None:
            offset, cch = struct.unpack_from("<I", body)[0], body[6]
            if biff8 and len(body) > 7:
                raw = body[8 : 8 + cch * (2 if body[7] & 1 else 1)]
                name = raw.decode("utf-16-le" if body[7] & 1 else "latin-1", "replace")
            else:
                name = body[7 : 7 + cch].decode("gbk", "replace")
            sheets[offset] = _Extent(name, limits)
        elif kind == _XLS_FILEPASS and current is None:
            raise UnreadableSheet(PASSWORD)
        elif kind == _XLS_SST and len(body) >= 8 and struct.unpack_from("<I", body, 4)[0] > limits.max_strings:
            raise _too_many_strings(limits)
        elif current is not None and kind == _XLS_DIMENSIONS and len(body) in (10, 14):
            _check_xls_dimensions(current, body)
        elif current is not None and kind in _XLS_CELLS and len(body) >= 4:
            current.add(*struct.unpack_from("<HH", body))
        elif current is not None and kind == _XLS_MULRK and len(body) >= 6:
            row, first = struct.unpack_from("<HH", body)
            last = struct.unpack_from("<H", body, len(body) - 2)[0]
            if last >= first:
                current.add(row, first, cols=last - first + 1)
        pos += 4 + size
    for extent in sheets.values():
        extent.check_area()
    return _xls_in_child(data)
