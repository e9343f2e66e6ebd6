"""An .xls (or WPS .et, the same BIFF records in an OLE compound file): the compound file's header
and the BIFF records are checked here, then calamine parses the workbook in a child process whose
memory is capped, because its .xls reader aborts the whole process on some damaged files."""

from __future__ import annotations

import pickle
import resource
import struct
import subprocess
import sys
from dataclasses import replace
from functools import partial

import olefile

from service.sheets.errors import PASSWORD, UNREADABLE_EXCEL, SheetTooLarge, UnreadableSheet
from service.sheets.grid import Grid, calamine_grids
from service.sheets.limits import Extent, Limits, too_many_strings
from service.sheets.normalize import CellValue

#: The first bytes of an OLE compound file (.xls, .et; also an encrypted .xlsx).
XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# BIFF record types (MS-XLS) whose first four bytes are the row and column of a cell with a value.
_XLS_CELLS = {0x0006, 0x00FD, 0x0203, 0x027E, 0x0204, 0x0205, 0x00D6}
_XLS_MULRK, _XLS_BOF, _XLS_EOF, _XLS_BOUNDSHEET = 0x00BD, 0x0809, 0x000A, 0x0085
_XLS_DIMENSIONS, _XLS_SST, _XLS_FILEPASS = 0x0200, 0x00FC, 0x002F
#: A ROW record (MS-XLS 2.4.221): its flags at offset 12, where 0x20 (fDyZero) hides the row.
_XLS_ROW, _XLS_ROW_HIDDEN = 0x0208, 0x20


def _check_xls_dimensions(extent: Extent, body: bytes) -> None:
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


def xls_grids(data: bytes, limits: Limits) -> list[Grid]:
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
    sheets: dict[int, Extent] = {}
    hidden: dict[str, set[int]] = {}  # rows each sheet hides, numbered from 1 as the sheet shows them
    current: Extent | None = None
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
            sheets[offset] = Extent(name, limits)
        elif kind == _XLS_FILEPASS and current is None:
            raise UnreadableSheet(PASSWORD)
        elif kind == _XLS_SST and len(body) >= 8 and struct.unpack_from("<I", body, 4)[0] > limits.max_strings:
            raise too_many_strings(limits)
        elif current is not None and kind == _XLS_DIMENSIONS and len(body) in (10, 14):
            _check_xls_dimensions(current, body)
        elif current is not None and kind == _XLS_ROW and len(body) >= 16:
            if struct.unpack_from("<H", body, 12)[0] & _XLS_ROW_HIDDEN:
                hidden.setdefault(current.sheet, set()).add(struct.unpack_from("<H", body)[0] + 1)
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
    return [
        replace(grid, hidden_rows=frozenset(hidden.get(grid.name, ()))) if grid.name in hidden else grid
        for grid in calamine_in_child(data)
    ]


#: calamine's .xls reader (compound file and BIFF records) aborts the whole process on some damaged
#: files, with an allocation sized by a corrupt field: it runs in a child process whose memory is
#: capped, so a bad upload costs that child, never the server.
XLS_CHILD_MEMORY = 1 << 30
XLS_CHILD_SECONDS = 60


def calamine_in_child(data: bytes) -> list[Grid]:
    """The workbook's sheets as calamine reads them in a child process; the child's death is a refusal."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", f"from service.sheets.xls import child_main; child_main({XLS_CHILD_MEMORY})"],
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
    return [Grid(name, visible, merges, True, partial(iter, rows)) for name, visible, merges, rows in sheets]


def child_main(memory: int) -> None:
    """The child's side of ``calamine_in_child``: the workbook on stdin, its sheets pickled on stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    grids = calamine_grids(sys.stdin.buffer.read())
    pickle.dump([(g.name, g.visible, g.merges, list(g.rows())) for g in grids], sys.stdout.buffer)
