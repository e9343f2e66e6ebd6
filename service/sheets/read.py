"""The one way in: ``read_sheet`` (and ``read_table``) pick the reader by the file's content, not its name."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from service.sheets.columns import Column, Sheet
from service.sheets.csv import csv_grid
from service.sheets.errors import UNSUPPORTED, HiddenRows, UnreadableSheet
from service.sheets.grid import Grid
from service.sheets.limits import DEFAULT_LIMITS, Limits
from service.sheets.normalize import shown
from service.sheets.ods import is_ods, ods_grids
from service.sheets.parts import Package
from service.sheets.table import find_header, header_error, records
from service.sheets.xls import XLS_MAGIC, xls_grids
from service.sheets.xlsx import is_xlsx, xlsx_grids


def read_sheet(data: bytes, filename: str, columns: Sequence[Column], *, limits: Limits = DEFAULT_LIMITS) -> Sheet:
    """The rows under the header of the first sheet that has one; raises ``UnreadableSheet``
    (``SheetTooLarge``, ``HeaderNotFound``) with a Chinese message that says what to do."""
    best: tuple[int, int, Grid, int, dict[str, int]] | None = None
    empty = True
    for grid in _grids(data, filename, limits):
        found = find_header(grid, columns)
        if found is None:
            continue
        empty = False
        header_row, index, score = found
        if all(c.key in index for c in columns if c.required):
            refuse_hidden_rows(grid)
            return records(grid, header_row, index, columns)
        if best is None or score > best[0]:
            best = (score, len(index), grid, header_row, index)
    if empty:
        raise UnreadableSheet("表格是空的，没有任何内容。请确认上传的是填好的那个文件。")
    raise header_error(best, columns)


def read_table(data: bytes, filename: str, *, limits: Limits = DEFAULT_LIMITS) -> list[tuple[int, list[str]]]:
    """The non-empty rows of the first visible sheet as the text they show, each with its row number."""
    for grid in _grids(data, filename, limits):
        refuse_hidden_rows(grid)
        out = []
        for number, cells in grid.rows():
            texts = [shown(v) for v in cells]
            if any(texts):
                out.append((number, texts))
        return out
    return []


def refuse_hidden_rows(grid: Grid) -> None:
    """A row the sheet hides but that holds something would be imported although nobody looking at
    the sheet sees it (a clerk hides the children already done, or a filter hides the rest): say
    which rows, and import nothing."""
    if not grid.hidden_rows:
        return
    hidden = [n for n, cells in grid.rows() if n in grid.hidden_rows and any(shown(v) for v in cells)]
    if not hidden:
        return
    listed = "、".join(str(n) for n in hidden[:10]) + (f" 等 {len(hidden)} 行" if len(hidden) > 10 else " 行")
    raise HiddenRows(
        f"工作表「{grid.name}」的第 {listed}被隐藏了，隐藏的行也会被导入。请在 Excel 或 WPS 中取消隐藏"
        "（全选后右键「取消隐藏」，或清除筛选），删去不应导入的行后再上传。",
        details={"rows": hidden},
    )


def _grids(data: bytes, filename: str, limits: Limits) -> Iterator[Grid]:
    """Every sheet of the file, visible ones first; raises UnreadableSheet for a file we cannot read."""
    name = filename.lower()
    if data[:8] == XLS_MAGIC:  # an .xls, an .et, or an .xlsx with an opening password, whatever its name
        grids = xls_grids(data, limits)
    elif data[:4] == b"PK\x03\x04" or name.endswith((".xlsx", ".xlsm", ".ods")):
        grids = _zip_grids(data, limits)
    elif name.endswith((".csv", ".txt")):
        grids = [csv_grid(data, limits)]
    else:
        raise UnreadableSheet(UNSUPPORTED)
    yield from sorted(grids, key=lambda g: not g.visible)


def _zip_grids(data: bytes, limits: Limits) -> list[Grid]:
    """An .xlsx or an .ods, told apart by the parts the package holds."""
    package = Package(data, limits)
    if is_ods(package):
        return ods_grids(package, limits)
    if is_xlsx(package):
        return xlsx_grids(package, limits)
    raise UnreadableSheet(UNSUPPORTED)
