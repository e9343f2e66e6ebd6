"""The ledger (台账) of a campaign as an Excel workbook."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from collections.abc import Callable, Sequence

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from service.campaigns.models import STATE_TITLES, Assignment, AssignmentState, Campaign
from service.sheets.cells import safe_cell
from service.units.models import UnitType

HEADERS = [
    "序号",
    "单位",
    "单位类型",
    "上级单位",
    "文书",
    "期次",
    "状态",
    "截止时间",
    "查看时间",
    "签署时间（时间戳）",
    "是否按时",
    "转交时间",
    "接收时间",
]


def _local(t: dt.datetime | None, tz: zoneinfo.ZoneInfo) -> str:
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if t else ""


def ledger_workbook(
    campaign: Campaign,
    items: Sequence[Assignment],
    kind_titles: dict[str, str],
    tz: zoneinfo.ZoneInfo,
    now: dt.datetime,
    label: Callable[[Assignment], str] | None = None,
    report: bool = False,
) -> bytes:
    """The 台账: one row per unit and document (or report), its state in the words the campaign's
    page uses (``label``; 待签署, 已转交（按时）…), times in the bureau's time zone."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "台账"
    ws.append([safe_cell(f"{campaign.name} {'报送' if report else '签署'}台账（导出时间 {_local(now, tz)}）")])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADERS))
    ws["A1"].font = Font(bold=True, size=14)
    headers = (
        [("报表" if h == "文书" else "报送时间" if h.startswith("签署时间") else h) for h in HEADERS]
        if report
        else HEADERS
    )
    ws.append(headers)
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
        cell.alignment = Alignment(horizontal="center")
    type_titles = {UnitType.BUREAU: "教体局", UnitType.OFFICE: "街道教育办", UnitType.SCHOOL: "学校"}
    for n, a in enumerate(items, 1):
        unit = a.unit
        done = a.state in (AssignmentState.SIGNED, AssignmentState.FORWARDED, AssignmentState.RECEIVED)
        if done:
            timing = "逾期" if a.late else "按时"
        elif now > a.deadline:
            timing = "未报送（已逾期）" if report else "未签（已逾期）"
        else:
            timing = "未报送" if report else "未签"
        unit_type = "区直学校" if unit.is_direct_school else type_titles.get(UnitType(unit.type), unit.type)
        ws.append(
            [
                safe_cell(v)
                for v in (
                    n,
                    unit.name,
                    unit_type,
                    unit.parent.name if unit.parent else "",
                    kind_titles.get(a.kind, a.kind),
                    a.period,
                    label(a) if label else STATE_TITLES.get(AssignmentState(a.state), a.state),
                    _local(a.deadline, tz),
                    _local(a.viewed_at, tz),
                    _local(a.signed_at, tz),
                    timing,
                    _local(a.forwarded_at, tz),
                    _local(a.received_at, tz),
                )
            ]
        )
    widths = [6, 30, 12, 28, 26, 10, 10, 20, 20, 22, 14, 20, 20]
    for i, w in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(i)].width = w
    ws.freeze_panes = "A3"
    ws.auto_filter.ref = f"A2:{get_column_letter(len(HEADERS))}{len(items) + 2}"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
