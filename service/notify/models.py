"""Notices out: who each unit is reached at (sealed), every message sent (the delivery log), and
the webhook subscriptions of other systems with their own delivery log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, utcnow
from service.db.sealed import Sealed, SealedRow
from service.units.models import Unit


class DeliveryStatus:
    QUEUED = "queued"  # 待发送 (maybe held for quiet hours, a robot's limit, or a retry's back-off)
    SENDING = "sending"  # 发送中: claimed; a process that died here leaves it for a person to resend
    SENT = "sent"  # 已发送
    FAILED = "failed"  # 发送失败 (attempts exhausted)


STATUS_TITLES = {
    "queued": "待发送",
    "sending": "状态不明",
    "sent": "已发送",
    "failed": "发送失败",
    # items handled without a message of their own (the log page does not list them)
    "digested": "已并入汇总",
    "skipped": "已随下发通知告知",
}


class UnitContact(SealedRow, Base):
    """Where a unit is reached: e-mail, a mobile for SMS, its 企业微信 or 钉钉 group robot, and which
    of them it reads (``channels``). Addresses and phone numbers are personal data: sealed."""

    __tablename__ = "notify_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), unique=True)
    email = Sealed[str | None]()
    email_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    mobile = Sealed[str | None]()
    mobile_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The 企业微信 group robot's webhook address (its key is in the query).
    wecom_webhook = Sealed[str | None]()
    wecom_webhook_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    dingtalk_webhook = Sealed[str | None]()
    dingtalk_webhook_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The 钉钉 robot's 加签 secret (``SEC...``).
    dingtalk_secret = Sealed[str | None]()
    dingtalk_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The channels this unit wants, in order (email, wecom, dingtalk, sms); empty: every one it has.
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    unit: Mapped[Unit] = relationship(lazy="joined")


class Delivery(SealedRow, Base):
    """One message on one channel to one recipient. ``dedupe_key`` is unique: a rule run again, or a
    job rerun, finds the row and sends nothing twice."""

    __tablename__ = "notify_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient = Sealed[str](index="notify_recipient")
    recipient_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: Counts a robot's messages in the last minute without opening addresses.
    recipient_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    #: What pages and logs show: ``138****0002``, ``w***@example.cn``, the robot's host.
    recipient_masked: Mapped[str] = mapped_column(String(120))
    secret = Sealed[str | None]()
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    #: campaign.issued, campaign.reminder, campaign.overdue, campaign.urge, digest, test
    kind: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    #: SMS: the provider's template parameters.
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    urgent: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    answer: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Not sent before this time (quiet hours, a robot's limit, a retry's back-off).
    not_before: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)

    unit: Mapped[Unit | None] = relationship(lazy="joined")


class WebhookSubscription(Base):
    """A bureau's subscription: an address of another system and the events it hears of."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    #: The Standard Webhooks secret (``whsec_`` + base64), shown once to the bureau when created.
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one subscription: the signed payload, its attempts and the receiver's answer."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "event_key", name="uq_webhook_delivery_event"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    #: What the event is, once per subscription: ``audit:<audit event id>``, ``overdue:<assignment id>``.
    event_key: Mapped[str] = mapped_column(String(60))
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    answer: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    not_before: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]


class NotifyCursor(Base):
    """How far the audit log has been read for webhook events (one row per reader)."""

    __tablename__ = "notify_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    audit_event_id: Mapped[int] = mapped_column(default=0)
