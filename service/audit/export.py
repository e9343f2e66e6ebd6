"""The audit administrator's export of a filtered log as an Excel workbook; the export itself is
appended to the audit log (``audit.export``), apart from the request's transaction."""

from __future__ import annotations

import datetime as dt
import io
import json
import zoneinfo
from collections.abc import Sequence
from typing import Any, Protocol

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.orm import Session

from service.audit import repository
from service.audit.models import AccessEntry, AuditEvent
from service.audit.schemas import local_time
from service.audit.service import Actor, record_apart
from service.audit.titles import action_title, subject_title
from service.sheets.cells import safe_cell

EVENT_COLUMNS = (
    "编号",
    "时间（北京时间）",
    "人员",
    "账号编号",
    "单位编号",
    "操作",
    "操作代码",
    "对象",
    "客户端地址",
    "详情",
)
ACCESS_COLUMNS = (
    "编号",
    "时间（北京时间）",
    "用户名",
    "账号编号",
    "角色",
    "单位编号",
    "查看内容",
    "记录",
    "途径",
    "条件",
    "行数",
    "导出用途",
    "客户端地址",
)


class ExportsAudit(repository.ReadsAudit, Protocol):
    @property
    def actor(self) -> Actor: ...


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""


def event_row(e: AuditEvent, tz: zoneinfo.ZoneInfo) -> list[Any]:
    return [
        e.id,
        local_time(e.at, tz),
        e.actor,
        e.actor_user_id or "",
        e.unit_id or "",
        action_title(e.action),
        e.action,
        f"{e.object_type} {e.object_id}",
        e.client or "",
        _text(e.detail),
    ]


def access_row(a: AccessEntry, tz: zoneinfo.ZoneInfo) -> list[Any]:
    return [
        a.id,
        local_time(a.at, tz),
        a.username,
        a.user_id or "",
        a.role or "",
        a.unit_id or "",
        subject_title(a.subject),
        a.subject_id,
        a.via,
        _text(a.filter),
        "" if a.rows is None else a.rows,
        a.purpose or "",
        a.client or "",
    ]


def workbook(title: str, heading: str, columns: Sequence[str], rows: Sequence[list[Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert isinstance(ws, Worksheet)
    ws.title = title
    ws.append([safe_cell(heading)])
    ws["A1"].font = Font(bold=True)
    ws.append(list(columns))
    for row in rows:
        ws.append([safe_cell(v) if isinstance(v, str) else v for v in row])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def export_log(
    session: Session,
    scope: ExportsAudit,
    log: str,
    f: repository.LogFilter,
    now: dt.datetime,
    tz: zoneinfo.ZoneInfo,
) -> tuple[bytes, int]:
    """The filtered audit log (``log="events"``) or access log (``"access"``) as a workbook, newest
    first, and its row count. Only the audit administrator exports; the export is audited."""
    stamp = now.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    if log == "access":
        rows = [access_row(a, tz) for a in repository.access_for_export(session, scope, f)]
    else:
        rows = [event_row(e, tz) for e in repository.events_for_export(session, scope, f)]
    title = "访问日志" if log == "access" else "审计日志"
    heading = f"{title}（导出于 {stamp}）"
    if len(rows) >= repository.EXPORT_ROWS:
        heading += f"：只含最新的 {len(rows)} 条，更早的请缩小时间范围后另行导出"
    data = workbook(title, heading, ACCESS_COLUMNS if log == "access" else EVENT_COLUMNS, rows)
    record_apart(session, scope.actor, "audit.export", "audit_log", log, now, filter=f.query(), rows=len(rows))
    return data, len(rows)
