"""Excel copies of what the ledger pages show: the due list, a monthly report, the district figures."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from service.ledgers.deadlines import DueItem
from service.ledgers.district import District, Figures
from service.ledgers.reports import Draft
from service.sheets.cells import safe_cell


def _book(title: str, heading: str) -> tuple[Workbook, Worksheet]:
    wb = Workbook()
    ws = wb.active
    assert isinstance(ws, Worksheet)
    ws.title = title
    ws.append([heading])
    ws["A1"].font = Font(bold=True)
    return wb, ws


def _bytes(wb: Workbook) -> bytes:
    for ws in wb.worksheets:
        fit_columns(ws)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


#: Column widths in Excel's units (about one Latin character): a Chinese character takes two.
MIN_WIDTH, MAX_WIDTH = 6, 50
#: 巩固率 as Excel shows a share: 0.998 reads 99.80%.
PERCENT = "0.00%"


def _text_width(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, float):
        value = f"{value:.4f}"
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in str(value))


def fit_columns(ws: Worksheet, skip_rows: int = 1) -> None:
    """Each column as wide as its longest entry (below the sheet's title row), within bounds,
    so an exported sheet opens readable instead of at Excel's 8.43 characters a column."""
    widths: dict[int, int] = {}
    for row in ws.iter_rows(min_row=skip_rows + 1):
        for cell in row:
            if cell.value not in (None, ""):
                widths[cell.column] = max(widths.get(cell.column, 0), _text_width(cell.value))
    for column, width in widths.items():
        ws.column_dimensions[get_column_letter(column)].width = min(MAX_WIDTH, max(MIN_WIDTH, width + 2))


def due_workbook(heading: str, items: Sequence[DueItem]) -> bytes:
    wb, ws = _book("到期事项", heading)
    ws.append(["状态", "事项", "依据", "学校", "学生", "个案编号", "期限"])
    for i in items:
        ws.append(
            [
                safe_cell(v)
                for v in (
                    "已逾期" if i.overdue else "待办",
                    i.title,
                    i.source or "",
                    i.school,
                    i.student or "",
                    i.case_id or "",
                    i.due.isoformat(),
                )
            ]
        )
    return _bytes(wb)


def report_workbook(draft: Draft) -> bytes:
    kind = draft.kind
    wb, ws = _book(kind.short, f"{draft.unit.name}{kind.title}")
    ws.append([f"统计期间：{draft.start.isoformat()} 至 {draft.end.isoformat()}"])
    ws.append(["项目", "人数"])
    for key, title in kind.rows:
        ws.append([title, draft.figures[key]])
    for key, title in kind.breakdowns:
        ws.append([f"{kind.end}未销号个案（按{title}）", ""])
        for name, n in sorted(draft.figures[key].items()):
            ws.append([safe_cell(name), n])
    if kind.lists_children:
        ws.append([])
        ws.append(["学校", "姓名", "年级班级", "类别", "重点群体", "原因", "去向及情况"])
        for c in draft.figures["students"]:
            ws.append(
                [
                    safe_cell(str(c[k]))
                    for k in ("school", "name", "grade", "category", "groups", "reason", "whereabouts")
                ]
            )
    if draft.parts:
        ws.append(["汇总单位", safe_cell("、".join(draft.parts))])
    if draft.missing:
        ws.append(["未报送单位", safe_cell("、".join(draft.missing))])
    return _bytes(wb)


def district_workbook(district: District) -> bytes:
    wb, ws = _book("总览", f"{district.unit.name}控辍保学总览（{district.year}学年）")
    ws.append(["单位", "上级", "疑似辍学", "辍学", "劝返中", "逾期事项", "迟报", "未报", "在籍", "巩固率"])

    def line(f: Figures, parent: str) -> None:
        ws.append(
            [
                safe_cell(f.name),
                safe_cell(parent),
                f.suspected,
                f.dropped,
                f.persuading,
                f.overdue,
                f.reports_late,
                f.reports_missing,
                f.students if f.students is not None else "",
                round(f.retention, 4) if f.retention is not None else "",
            ]
        )
        ws.cell(ws.max_row, 10).number_format = PERCENT

    for office in district.offices:
        line(office, district.unit.name)
        for school in office.children:
            line(school, office.name)
    line(district.total, "合计")
    return _bytes(wb)
