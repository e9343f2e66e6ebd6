"""From a grid of cells to the caller's rows: the header found below any title, merged cells and
blanks filled down, notes and repeated headers left out, every value normalised by its kind."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from service.sheets.columns import Column, Sheet, SheetRow, row_error
from service.sheets.errors import HeaderNotFound, UnreadableSheet
from service.sheets.grid import Grid
from service.sheets.normalize import CellValue, clean_text, normalize_cell, shown

#: How many non-empty rows from the top may come before the header (titles, a 填报单位 line…).
HEADER_SEARCH_ROWS = 10
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


def _header_key(text: str) -> str:
    """A header as compared: no spaces or asterisks, no trailing note such as （必填） or (18位)."""
    s = re.sub(r"[\s*]", "", clean_text(text))
    return re.sub(r"[(\[【][^()\[\]【】]*[)\]】]$", "", s) or s


def find_header(grid: Grid, columns: Sequence[Column]) -> tuple[int, dict[str, int], int] | None:
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


def header_error(best: tuple[int, int, Grid, int, dict[str, int]] | None, columns: Sequence[Column]) -> UnreadableSheet:
    """Why no sheet had a header: none near the top named any required column, or the best
    candidate ``(score, columns found, grid, its row, index)`` lacks some; each missing one listed."""
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


def records(grid: Grid, header_row: int, index: dict[str, int], columns: Sequence[Column]) -> Sheet:
    """The data rows under ``header_row``, ``index`` saying which cell holds each column found."""
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
            value_text, problem = normalize_cell(value, text, c)
            values[c.key], typed[c.key] = value_text, text
            if problem:
                problems.append(row_error(number, c.title, text, problem))
            if text:
                above[c.key] = (value, text)
        rows.append(SheetRow(number, values, typed, problems))
    headers = {key: shown(header_cells[i]) for key, i in index.items() if i < len(header_cells)}
    return Sheet(grid.name, header_row, headers, rows)
