from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class UnitOut(BaseModel):
    id: int
    code: str
    name: str
    type: str
    type_title: str
    parent_id: int | None
    head_name: str | None
    phone: str | None
    is_direct_school: bool


class ImportOut(BaseModel):
    created: int
    updated: int


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, title="任务名称", examples=["2024年控辍保学责任书"])
    year: int = Field(ge=2000, le=2100, title="年度", examples=[2024])
    kinds: list[str] = Field(
        default=["responsibility_office", "responsibility_direct", "pledge"],
        title="文书类型：responsibility_office、responsibility_direct、pledge；周期任务不需要填写（月报为 report，周报为 weekly_report）",
    )
    deadline: dt.datetime | None = Field(
        default=None, title="截止时间（不带时区时按北京时间），例如 2024-09-29T16:00", examples=["2024-09-29T16:00:00"]
    )
    issue_date: dt.date | None = Field(default=None, title="文书落款日期，默认今天")
    recurrence: str | None = Field(default=None, title="周期：留空为一次性任务，monthly 为每月报送，weekly 为每周报送")
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


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    total: int
    done: int
    stage: str | None
    error_code: str | None
    error_message: str | None


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


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200, title="撤回原因")


class DocumentOut(BaseModel):
    id: int
    kind: str
    title: str
    status: str
    status_title: str
    issuer: str
    subject: str | None
    issued_at: dt.datetime
    sha256: str
    pages: int
    revoked_at: dt.datetime | None
    revoke_reason: str | None
    versions: list[dict[str, Any]]
