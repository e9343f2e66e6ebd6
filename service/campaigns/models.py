from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, utcnow
from service.units.models import Unit


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    year: Mapped[int]
    #: Document kinds assigned (responsibility_office, responsibility_direct, pledge), or the report a recurring campaign collects (["report"] monthly, ["weekly_report"] weekly).
    kinds: Mapped[list[str]] = mapped_column(JSON)
    deadline: Mapped[dt.datetime]
    #: The date printed on the documents (文书落款日期).
    issue_date: Mapped[dt.date]
    #: None for a one-off campaign; "monthly" for a report due every month on ``due_day``.
    recurrence: Mapped[str | None] = mapped_column(String(16))
    due_day: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    issued_at: Mapped[dt.datetime | None]

    bureau: Mapped[Unit] = relationship(lazy="joined")


class AssignmentState(StrEnum):
    ISSUED = "issued"  # 已下发
    VIEWED = "viewed"  # 已查看
    SIGNING = "signing"  # 签署中: claimed by one request while its signature is made
    SIGNED = "signed"  # 已签署 (or, for a report, 已报送)
    FORWARDED = "forwarded"  # 教育办已转交
    RECEIVED = "received"  # 教体局已接收


STATE_TITLES = {
    AssignmentState.ISSUED: "已下发",
    AssignmentState.VIEWED: "已查看",
    AssignmentState.SIGNING: "签署中",
    AssignmentState.SIGNED: "已签署",
    AssignmentState.FORWARDED: "已转交",
    AssignmentState.RECEIVED: "已接收",
}


class Assignment(Base):
    """One unit's part in a campaign: a document to sign (or a report to file) by a deadline."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("campaign_id", "unit_id", "kind", "period", name="uq_assignment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    #: "" for a one-off campaign, "2024-10" for a monthly period.
    period: Mapped[str] = mapped_column(String(16), default="")
    deadline: Mapped[dt.datetime]
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=AssignmentState.ISSUED)
    issued_at: Mapped[dt.datetime | None]
    viewed_at: Mapped[dt.datetime | None]
    #: For a signature: the time in its timestamp token; for a report: when it was received.
    signed_at: Mapped[dt.datetime | None]
    forwarded_at: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime | None]
    late: Mapped[bool | None]
    forward_batch_id: Mapped[int | None] = mapped_column(ForeignKey("forward_batches.id"))
    #: A filed report (recurring campaigns): its archive hash and file name.
    report_sha256: Mapped[str | None] = mapped_column(String(64))
    report_name: Mapped[str | None] = mapped_column(String(128))
    #: While SIGNING: until when the claim holds (wall clock); recovery releases it after that.
    claimed_until: Mapped[dt.datetime | None]

    campaign: Mapped[Campaign] = relationship(lazy="joined")
    unit: Mapped[Unit] = relationship(lazy="joined")


class ForwardBatch(Base):
    """A 街道教育办 sending its schools' signed documents to the bureau in one go."""

    __tablename__ = "forward_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    count: Mapped[int]
    note: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TermStart(Base):
    """The day a term starts in a bureau's district, entered once a term; term deadlines count from it,
    and a campaign recurring each term (the 学生失学辍学信息报告) opens a period for it."""

    __tablename__ = "term_starts"
    __table_args__ = (UniqueConstraint("bureau_id", "starts_on", name="uq_term_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(30))
    starts_on: Mapped[dt.date]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
