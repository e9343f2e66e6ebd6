"""What campaigns look like from outside: API shapes, and the rows and labels the pages show."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field
from pypdf import PdfReader
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.accounts.models import Role, User
from service.archive.models import Document
from service.campaigns.models import STATE_TITLES, Assignment, AssignmentState, Campaign
from service.campaigns.service import DONE_STATES, KIND_TITLES, period_label, plan, state_label
from service.documents.registry import get_kind
from service.documents.sign import empty_field_box
from service.errors import DocsignError
from service.units.models import Unit, UnitType


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, title="任务名称", examples=["2024年控辍保学责任书"])
    year: int = Field(ge=2000, le=2100, title="年度", examples=[2024])
    kinds: list[str] = Field(
        default=["responsibility_office", "responsibility_direct", "pledge"],
        title="文书类型：responsibility_office、responsibility_direct、pledge；周期任务不需要填写（月报为 report，周报为 weekly_report，信息报告为 info_report）",
    )
    deadline: dt.datetime | None = Field(
        default=None, title="截止时间（不带时区时按北京时间），例如 2024-09-29T16:00", examples=["2024-09-29T16:00:00"]
    )
    issue_date: dt.date | None = Field(default=None, title="文书落款日期，默认今天")
    recurrence: str | None = Field(
        default=None,
        title="周期：留空为一次性任务，monthly 为每月报送，weekly 为每周报送，term 为每学期开学后报送（学生失学辍学信息报告）",
    )
    due_day: int | None = Field(
        default=None,
        ge=1,
        le=28,
        title="截止日（周期任务）：每月的几日（1–28），或每周的星期几（1 为周一，3 为周三）",
        examples=[20],
    )


class CampaignOut(BaseModel):
    id: int
    name: str
    year: int
    kinds: list[str]
    deadline: dt.datetime
    deadline_local: str
    issue_date: dt.date
    recurrence: str | None
    due_day: int | None
    status: str
    bureau_id: int
    planned: int
    issued: int

    @classmethod
    def of(cls, session: Session, c: Campaign, tz: zoneinfo.ZoneInfo) -> CampaignOut:
        issued = session.scalar(select(func.count()).select_from(Assignment).where(Assignment.campaign_id == c.id)) or 0
        planned = len(plan(session, c.bureau, c.kinds)) if c.recurrence is None else issued
        return cls(
            id=c.id,
            name=c.name,
            year=c.year,
            kinds=c.kinds,
            deadline=c.deadline,
            deadline_local=local_time(c.deadline, tz, "%Y年%-m月%-d日 %H:%M"),
            issue_date=c.issue_date,
            recurrence=c.recurrence,
            due_day=c.due_day,
            status=c.status,
            bureau_id=c.bureau_id,
            planned=planned,
            issued=issued,
        )


class AssignmentOut(BaseModel):
    id: int
    campaign_id: int
    campaign_name: str
    unit_id: int
    unit_name: str
    kind: str
    kind_title: str
    period: str
    deadline: dt.datetime
    state: str
    state_title: str
    document_id: int | None
    document_status: str | None
    issued_at: dt.datetime | None
    viewed_at: dt.datetime | None
    signed_at: dt.datetime | None
    forwarded_at: dt.datetime | None
    received_at: dt.datetime | None
    late: bool | None
    overdue: bool

    @classmethod
    def of(cls, a: Assignment, doc: Document | None, now: dt.datetime) -> AssignmentOut:
        return cls(
            id=a.id,
            campaign_id=a.campaign_id,
            campaign_name=a.campaign.name,
            unit_id=a.unit_id,
            unit_name=a.unit.name,
            kind=a.kind,
            kind_title=KIND_TITLES.get(a.kind, a.kind),
            period=a.period,
            deadline=a.deadline,
            state=a.state,
            state_title=STATE_TITLES[AssignmentState(a.state)],
            document_id=a.document_id,
            document_status=doc.status if doc else None,
            issued_at=a.issued_at,
            viewed_at=a.viewed_at,
            signed_at=a.signed_at,
            forwarded_at=a.forwarded_at,
            received_at=a.received_at,
            late=a.late,
            overdue=a.state not in DONE_STATES and now > a.deadline,
        )


class SignIn(BaseModel):
    signature_png: str = Field(min_length=20, max_length=3_000_000, title="手写签名图片：PNG 的 data URL 或 base64")
    seal_png: str | None = Field(
        default=None, max_length=3_000_000, title="单位公章图片（可选，透明背景 PNG）；不给则按单位名称生成"
    )
    confirm: bool = Field(title="确认签署：必须为 true")


class ForwardOut(BaseModel):
    batch_id: int
    count: int


class ReceiveOut(BaseModel):
    received: int


def local_time(t: dt.datetime | None, tz: zoneinfo.ZoneInfo, fmt: str = "%Y年%m月%d日 %H:%M") -> str:
    """A time as people in the bureau's time zone read it; empty for None."""
    return t.astimezone(tz).strftime(fmt) if t else ""


def countdown(deadline: dt.datetime, now: dt.datetime) -> str:
    left = deadline - now
    if left.total_seconds() <= 0:
        return "已截止"
    days, rest = divmod(int(left.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    return f"剩余 {days} 天 {hours} 小时 {rest // 60} 分" if days else f"剩余 {hours} 小时 {rest // 60} 分"


def office_of(unit: Unit) -> Unit | None:
    """The 街道教育办 a unit belongs to for tracking: itself, its parent office, or none (区直)."""
    if unit.type == UnitType.OFFICE:
        return unit
    parent = unit.parent
    if unit.type == UnitType.SCHOOL and parent is not None and parent.type == UnitType.OFFICE:
        return parent
    return None


DIRECT_GROUP = "区直学校"


def assignment_row(a: Assignment, doc: Document | None, now: dt.datetime, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """One unit's line on a campaign or office page."""
    label, tone = state_label(a, now, revoked=bool(doc and doc.status == "revoked"))
    return {
        "unit": a.unit.name,
        "unit_id": a.unit_id,
        "kind_title": KIND_TITLES.get(a.kind, a.kind),
        "label": label,
        "tone": tone,
        "done": a.state in DONE_STATES,
        "signed_at": local_time(a.signed_at, tz),
        "assignment_id": a.id,
        "document_id": a.document_id,
    }


ROW_FILTERS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "all": lambda row: True,
    "missing": lambda row: row["tone"] == "missing",
    "late": lambda row: row["tone"] == "late",
    "pending": lambda row: row["tone"] == "pending",
    "signed": lambda row: row["done"],
}


def office_groups(
    session: Session, items: list[Assignment], now: dt.datetime, tz: zoneinfo.ZoneInfo, flt: str = "all"
) -> list[dict[str, Any]]:
    """A campaign's assignments grouped by 街道教育办 (区直学校 last), with counts and filtered rows."""
    groups: dict[str, list[Assignment]] = {}
    for a in items:
        office = office_of(a.unit)
        groups.setdefault(office.name if office else DIRECT_GROUP, []).append(a)
    keep = ROW_FILTERS.get(flt, ROW_FILTERS["all"])
    out = []
    for title in sorted(groups, key=lambda t: (t == DIRECT_GROUP, t)):
        members = groups[title]
        rows = [
            assignment_row(a, session.get(Document, a.document_id) if a.document_id else None, now, tz) for a in members
        ]
        out.append(
            {
                "title": title,
                "total": len(members),
                "done": sum(1 for a in members if a.state in DONE_STATES),
                "rows": [r for r in rows if keep(r)],
            }
        )
    return out


#: The words a campaign's pages use: a document is signed (签), a report is filed (报送).
SIGNING_WORDS = {
    "done": "已签",
    "late": "逾期签署",
    "missing": "缺签",
    "pending": "待签",
    "progress": "签署进度",
    "time": "签署时间",
    "export": "导出签署件（zip）",
    "receive": "确认接收已报送的文书",
    "kind": "签署任务",
}
REPORT_WORDS = {
    "done": "已报送",
    "late": "逾期报送",
    "missing": "未报送",
    "pending": "待报送",
    "progress": "报送进度",
    "time": "报送时间",
    "export": "导出报送材料（zip）",
    "receive": "确认接收已报送的报表",
    "kind": "报送任务",
}


def campaign_words(c: Campaign) -> dict[str, str]:
    """The words for a campaign's kind: a recurring campaign collects reports, a one-off one signatures."""
    return REPORT_WORDS if c.recurrence else SIGNING_WORDS


CAMPAIGN_STATUS_TITLES = {"draft": "待下发", "issuing": "下发中", "issued": "已下发"}
#: Who signs each document, as the signing page names them.
SIGNER_TITLES = {"responsibility_office": "教育办主任", "responsibility_direct": "校长", "pledge": "校长"}


def campaign_row(c: Campaign, status: dict[str, Any], tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """A campaign's line on the bureau's dashboard."""
    total = status["total"] or 1
    return {
        "id": c.id,
        "name": c.name,
        "status_title": CAMPAIGN_STATUS_TITLES.get(c.status, c.status),
        "status": c.status,
        "total": status["total"],
        "done": status["done"],
        "late": status["late"],
        "missing": status["missing"],
        "on_time_pct": 100 * status["on_time"] / total,
        "late_pct": 100 * status["late"] / total,
        "deadline_local": local_time(c.deadline, tz),
        "words": campaign_words(c),
    }


def signing_view(
    a: Assignment, doc: Document, pdf: bytes, user: User, now: dt.datetime, tz: zoneinfo.ZoneInfo
) -> dict[str, Any]:
    """What the signing page shows: the document's pages with the signer's empty field marked, the
    state in words, and whether this user may sign it now."""
    revoked = doc.status == "revoked"
    label, tone = state_label(a, now, revoked)
    can_sign = not revoked and a.state not in DONE_STATES and user.role == Role.SIGNER and user.unit_id == a.unit_id
    own = user.unit_id == a.unit_id
    if revoked:
        text = f"该文书已于 {local_time(doc.revoked_at, tz)} 撤回（{doc.revoke_reason}），无需再签署。"
    elif not own and a.state not in DONE_STATES:
        late = "已过截止时间，尚未签署" if now > a.deadline else f"尚未签署，截止 {local_time(a.deadline, tz)}"
        text = f"{a.unit.name}{late}。以下是下发给该单位的文书。"
    elif a.state in DONE_STATES:
        text = f"已于 {local_time(a.signed_at, tz)} 签署，{'晚于截止时间（逾期）' if a.late else '在截止时间之前（按时）'}。"
    elif now > a.deadline:
        text = "已过截止时间，请尽快签署；签署时间以可信时间戳为准，将记为逾期。"
    else:
        text = f"待签署：请阅读全文后在下方签名，截止 {local_time(a.deadline, tz)}（{countdown(a.deadline, now)}）。"
    reader = PdfReader(io.BytesIO(pdf))
    kind = get_kind(a.kind)
    slot_page, slot_box = None, None
    if can_sign and kind.later_signers:
        try:
            slot_page, slot_box = empty_field_box(pdf, kind.later_signers[0].field_name)
        except DocsignError:
            slot_page = None
    pages = []
    for i, page in enumerate(reader.pages):
        w, h = float(page.mediabox.width), float(page.mediabox.height)
        slot = None
        if slot_page == i and slot_box is not None:
            x0, y0, x1, y1 = slot_box
            slot = {
                "left": 100 * x0 / w,
                "top": 100 * (h - y1) / h,
                "width": 100 * (x1 - x0) / w,
                "height": 100 * (y1 - y0) / h,
            }
        pages.append({"number": i + 1, "width": 900, "height": round(900 * h / w), "slot": slot})
    return {
        "a": {
            "id": a.id,
            "document_id": a.document_id,
            "kind_title": KIND_TITLES.get(a.kind, a.kind),
            "campaign_name": a.campaign.name,
            "unit_name": a.unit.name,
            "state": a.state,
        },
        "own": own,
        "state": {
            "text": text,
            "tone": {"ok": "ok", "late": "warn", "missing": "bad", "revoked": "bad"}.get(tone, "warn"),
        },
        "label": label,
        "deadline_local": local_time(a.deadline, tz),
        "pages": pages,
        "can_sign": can_sign,
        "sha256": doc.current_sha256,
        "signer_title": SIGNER_TITLES.get(a.kind, "负责人"),
        "errors": {},
    }


def report_row(a: Assignment, now: dt.datetime, tz: zoneinfo.ZoneInfo, error: str = "") -> dict[str, Any]:
    """A period's report on the unit's page."""
    label, tone = state_label(a, now)
    return {
        "id": a.id,
        "kind": a.kind,
        "title": f"{period_label(a.period)}{KIND_TITLES.get(a.kind, a.kind)}",
        "label": label,
        "tone": tone,
        "done": a.state in DONE_STATES,
        "campaign_name": a.campaign.name,
        "deadline_local": local_time(a.deadline, tz),
        "error": error,
    }
