"""One sheet as every format hands it over (a ``Grid``), and calamine's workbooks turned into grids."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import python_calamine

from service.sheets.errors import PASSWORD, UNREADABLE_EXCEL, UnreadableSheet
from service.sheets.normalize import CellValue, shown


@dataclass
class Grid:
    """One sheet: its rows as lists indexed by column (0 = A), numbered from 1, and its merges."""

    name: str
    visible: bool
    merges: list[tuple[tuple[int, int], tuple[int, int]]]
    #: False for a CSV: its blank cells may be merged cells, filled down where the caller allows.
    knows_merges: bool
    _rows: Callable[[], Iterator[tuple[int, list[CellValue]]]]
    #: The numbers (from 1) of the rows the sheet hides (.xlsx, .xls and .ods say which).
    hidden_rows: frozenset[int] = frozenset()

    def rows(self) -> Iterator[tuple[int, list[CellValue]]]:
        return self._rows()


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


def calamine_grids(
    workbook_bytes: bytes,
    patches: Sequence[dict[tuple[int, int], str]] | None = None,
    merges: Sequence[list[tuple[tuple[int, int], tuple[int, int]]]] | None = None,
    hidden: Sequence[frozenset[int]] | None = None,
) -> list[Grid]:
    """Every worksheet of a workbook calamine reads, with the texts of formulas saved without a value
    (``patches``, per sheet) and, where calamine does not report them (.ods), the ``merges``."""
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
                Grid(
                    meta.name,
                    meta.visible == python_calamine.SheetVisibleEnum.Visible,
                    list(sheet_merges or []),
                    sheet_merges is not None,
                    _sheet_rows(sheet, patches[i] if patches and i < len(patches) else {}),
                    hidden[i] if hidden and i < len(hidden) else frozenset(),
                )
            )
        return grids


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
