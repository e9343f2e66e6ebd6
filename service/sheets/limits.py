"""The hard limits on an uploaded sheet, and the running check of where its cells are.

Every format's scanner feeds the cell positions the file itself declares into an ``Extent`` before
calamine sees the file, so a sheet bomb is refused while memory stays flat.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.sheets.errors import SheetTooLarge


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
class Extent:
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
            raise SheetTooLarge(too_many_rows(self.sheet, last_row + 1, self.limits))
        if last_col >= self.limits.max_columns:
            raise SheetTooLarge(too_many_columns(self.sheet, last_col + 1, self.limits))
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
            raise SheetTooLarge(too_many_cells(self.sheet, self.limits))

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


def too_many_rows(sheet: str, rows: int, limits: Limits) -> str:
    where = f"工作表「{sheet}」" if sheet else "表格"
    return (
        f"{where}有内容写到了第 {rows} 行，超过了 {limits.max_rows} 行的上限。"
        "请删去多余的行（按 Ctrl+End 可以看到表格的最后一个单元格），或把名单分成几个文件上传。"
    )


def too_many_columns(sheet: str, columns: int, limits: Limits) -> str:
    where = f"工作表「{sheet}」" if sheet else "表格"
    return f"{where}有内容写到了第 {columns} 列，超过了 {limits.max_columns} 列的上限。请删去右侧多余的列后重新上传。"


def too_many_cells(sheet: str, limits: Limits) -> str:
    where = f"工作表「{sheet}」" if sheet else "表格"
    return (
        f"{where}的单元格超过了 {limits.max_cells} 个的上限，无法读取。请删去用不到的内容，或把名单分成几个文件上传。"
    )


def too_many_strings(limits: Limits) -> SheetTooLarge:
    return SheetTooLarge(
        f"表格中的文字超过了 {limits.max_strings} 条的上限，无法读取。请删去用不到的工作表和内容后重新上传。"
    )


def unpacked_too_large(limits: Limits) -> SheetTooLarge:
    return SheetTooLarge(
        f"表格解压后超过 {limits.max_unpacked_bytes // (1024 * 1024)} MB，无法读取。"
        "请删去图片和用不到的工作表，或在 Excel、WPS 中另存为新的文件后重新上传。"
    )
