"""An .xlsx/.xlsm (Office Open XML): every worksheet's cell positions and the shared strings are
checked against the limits before calamine reads the workbook, and the text of formulas saved
without a value (a file written by a program, not by Excel) is kept to patch in."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath

from service.sheets.errors import UNREADABLE_EXCEL, UnreadableSheet
from service.sheets.grid import Grid, calamine_grids
from service.sheets.limits import Extent, Limits, too_many_strings
from service.sheets.parts import Package, element_tree, parse


def is_xlsx(package: Package) -> bool:
    return any(name.endswith("workbook.xml") for name in package.by_name)


def xlsx_grids(package: Package, limits: Limits) -> list[Grid]:
    """Each part scanned as it is repacked (uncompressed) for calamine, one part in memory at a time."""
    repacked = io.BytesIO()
    with zipfile.ZipFile(repacked, "w", zipfile.ZIP_STORED) as out:
        sheets = _xlsx_sheets(package)
        scanned: dict[str, dict[tuple[int, int], str]] = {}
        hidden: dict[str, frozenset[int]] = {}
        for name in package.by_name:
            body = package.part(name)
            if name in sheets.values():
                sheet_name = next(n for n, p in sheets.items() if p == name)
                scanned[name] = _scan_xlsx_sheet(body, Extent(sheet_name, limits))
                hidden[name] = _hidden_rows(body)
            elif name.endswith("sharedStrings.xml"):
                _scan_shared_strings(body, limits)
            out.writestr(name, body)
            del body
    return calamine_grids(
        repacked.getvalue(),
        [scanned.get(p, {}) for p in sheets.values()],
        None,
        [hidden.get(p, frozenset()) for p in sheets.values()],
    )


def _xlsx_sheets(package: Package) -> dict[str, str]:
    """Sheet name -> the zip part holding it, in workbook order (calamine's order)."""
    try:
        rels = element_tree(package.part("_rels/.rels"))
        target = next(
            r.get("Target", "") for r in rels if r.get("Type", "").endswith("/officeDocument") and r.get("Target")
        )
        workbook = target.lstrip("/")
        base = PurePosixPath(workbook).parent
        book_rels = element_tree(package.part(str(base / "_rels" / (PurePosixPath(workbook).name + ".rels"))))
        paths = {}
        for r in book_rels:
            t = r.get("Target", "")
            paths[r.get("Id", "")] = t.lstrip("/") if t.startswith("/") else _normpath(base / t)
        out = {}
        for el in element_tree(package.part(workbook)).iter():
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


_CELL_REF = re.compile(r"\$?([A-Z]{1,3})\$?(\d{1,7})")
_CELL_TAG = re.compile(rb"<(?:[\w.-]+:)?c(?=[\s/>])([^>]*)>")
_CELL_R = re.compile(rb'\br\s*=\s*["\']\$?([A-Z]{1,3})\$?(\d{1,7})["\']')
_CELL_T = re.compile(rb"\bt\s*=")
_ROW_TAG = re.compile(rb"<(?:[\w.-]+:)?row(?=[\s/>])([^>]*)>")
_ROW_HIDDEN = re.compile(rb'\bhidden\s*=\s*["\'](?:1|true)["\']')
_ROW_R = re.compile(rb'\br\s*=\s*["\'](\d{1,7})["\']')


def _hidden_rows(data: bytes) -> frozenset[int]:
    """The rows a worksheet hides (``<row r="3" hidden="1">``); rows without a number are never
    hidden by the programs that write them."""
    if b"hidden" not in data:
        return frozenset()
    found = set()
    for m in _ROW_TAG.finditer(data):
        attrs = m.group(1)
        if _ROW_HIDDEN.search(attrs) and (r := _ROW_R.search(attrs)) is not None:
            found.add(int(r.group(1)))
    return frozenset(found)


def _scan_xlsx_sheet(data: bytes, extent: Extent) -> dict[tuple[int, int], str]:
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
        if attrs.endswith(b"/") or data.startswith(b"</", m.end()):
            continue  # an empty cell, only formatted (with a type or not): calamine leaves it out too
        col = 0
        for ch in ref.group(1):
            col = col * 26 + ch - 64
        extent.add(int(ref.group(2)) - 1, col - 1)
    extent.check_area()
    return _formulas_without_values(data) if b"<f" in data or b":f" in data else {}


def _scan_xlsx_sheet_slowly(data: bytes, extent: Extent) -> dict[tuple[int, int], str]:
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
            counted = False  # counted once it holds a value: an empty formatted cell is left out
        elif name in ("v", "is", "f"):
            if not counted:
                counted = True
                extent.add(row, col)
        elif name == "row":
            r = attrs.get("r")
            row = int(r) - 1 if r and r.isdigit() else row + 1
            col = -1

    parse(data, start)
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

    parse(data, start, end, chars)
    return patches


def _scan_shared_strings(data: bytes, limits: Limits) -> None:
    count = [0]

    def start(name: str, attrs: dict[str, str]) -> None:
        name = name.rpartition(":")[2]
        if name == "sst":
            declared = attrs.get("uniqueCount", "0")
            if declared.isdigit() and int(declared) > limits.max_strings:  # calamine reserves this many
                raise too_many_strings(limits)
        elif name == "si":
            count[0] += 1
            if count[0] > limits.max_strings:
                raise too_many_strings(limits)

    parse(data, start)
