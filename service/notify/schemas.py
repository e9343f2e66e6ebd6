"""API shapes and page view models of notices: recipients always masked."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from pydantic import BaseModel, Field

from service.notify.channels import CHANNEL_TITLES, mask_recipient
from service.notify.models import STATUS_TITLES, Delivery, UnitContact, WebhookDelivery, WebhookSubscription


class ContactIn(BaseModel):
    """Fields left out stay as they are; an empty string clears one."""

    email: str | None = Field(default=None, max_length=120, description="电子邮箱")
    mobile: str | None = Field(default=None, max_length=20, description="接收短信的手机号")
    wecom_webhook: str | None = Field(default=None, max_length=300, description="企业微信群机器人 Webhook 地址")
    dingtalk_webhook: str | None = Field(default=None, max_length=300, description="钉钉群机器人 Webhook 地址")
    dingtalk_secret: str | None = Field(default=None, max_length=100, description="钉钉机器人加签密钥（SEC 开头）")
    channels: list[str] | None = Field(
        default=None, description="接收渠道：email、wecom、dingtalk、sms；空列表为全部已填写的渠道"
    )


class ContactOut(BaseModel):
    unit_id: int
    email: str | None
    mobile: str | None
    wecom_webhook: str | None
    dingtalk_webhook: str | None
    dingtalk_signed: bool
    channels: list[str]

    @classmethod
    def of(cls, unit_id: int, c: UnitContact | None) -> ContactOut:
        if c is None:
            return cls(
                unit_id=unit_id,
                email=None,
                mobile=None,
                wecom_webhook=None,
                dingtalk_webhook=None,
                dingtalk_signed=False,
                channels=[],
            )

        def masked(channel: str, value: str | None) -> str | None:
            return mask_recipient(channel, value) if value else None

        return cls(
            unit_id=unit_id,
            email=masked("email", c.email),
            mobile=masked("sms", c.mobile),
            wecom_webhook=masked("wecom", c.wecom_webhook),
            dingtalk_webhook=masked("dingtalk", c.dingtalk_webhook),
            dingtalk_signed=bool(c.dingtalk_secret),
            channels=list(c.channels or []),
        )


class UrgeIn(BaseModel):
    unit_ids: list[int] = Field(min_length=1, max_length=500, description="要催办的单位编号")


class DeliveryOut(BaseModel):
    id: int
    message_id: str
    channel: str
    channel_title: str
    unit_id: int | None
    unit: str | None
    recipient: str
    kind: str
    subject: str
    status: str
    status_title: str
    attempts: int
    answer: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    not_before: dt.datetime
    resendable: bool

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(
            id=d.id,
            message_id=d.message_id,
            channel=d.channel,
            channel_title=CHANNEL_TITLES.get(d.channel, "无可用渠道"),
            unit_id=d.unit_id,
            unit=d.unit.name if d.unit else None,
            recipient=d.recipient_masked,
            kind=d.kind,
            subject=d.subject,
            status=d.status,
            status_title=STATUS_TITLES.get(d.status, d.status),
            attempts=d.attempts,
            answer=d.answer,
            created_at=d.created_at,
            sent_at=d.sent_at,
            not_before=d.not_before,
            resendable=d.status in ("failed", "sending") and d.channel in CHANNEL_TITLES,
        )


class UrgeOut(BaseModel):
    queued: int
    deliveries: list[DeliveryOut]


class WebhookIn(BaseModel):
    url: str = Field(max_length=500, description="接收地址（http 或 https）")
    events: list[str] = Field(min_length=1, description="订阅的事件")


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: dt.datetime
    #: Only in the answer that creates it: the receiver verifies signatures with it.
    secret: str | None = None

    @classmethod
    def of(cls, s: WebhookSubscription, *, with_secret: bool = False) -> WebhookOut:
        return cls(
            id=s.id,
            url=s.url,
            events=list(s.events),
            active=s.active,
            created_at=s.created_at,
            secret=s.secret if with_secret else None,
        )


class WebhookDeliveryOut(BaseModel):
    id: int
    message_id: str
    subscription_id: int
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    answer: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None

    @classmethod
    def of(cls, d: WebhookDelivery) -> WebhookDeliveryOut:
        return cls(
            id=d.id,
            message_id=d.message_id,
            subscription_id=d.subscription_id,
            event=d.event,
            payload=d.payload,
            status=d.status,
            attempts=d.attempts,
            answer=d.answer,
            created_at=d.created_at,
            sent_at=d.sent_at,
        )


STATUS_TONES = {"sent": "done", "failed": "missing", "sending": "late", "queued": "pending"}


def delivery_row(d: Delivery, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """One line of the delivery log page."""
    out = DeliveryOut.of(d)
    waiting = ""
    if d.status == "queued":
        waiting = f"{d.not_before.astimezone(tz):%m月%d日 %H:%M} 起发送"
    return {
        **out.model_dump(),
        "time": (d.sent_at or d.created_at).astimezone(tz).strftime("%Y年%m月%d日 %H:%M"),
        "unit": out.unit or "",
        "tone": STATUS_TONES.get(d.status, "pending"),
        "waiting": waiting,
    }


def webhook_row(d: WebhookDelivery, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """One line of the webhook page's delivery log."""
    return {
        **WebhookDeliveryOut.of(d).model_dump(),
        "time": (d.sent_at or d.created_at).astimezone(tz).strftime("%Y年%m月%d日 %H:%M"),
        "status_title": STATUS_TITLES.get(d.status, d.status),
        "tone": STATUS_TONES.get(d.status, "pending"),
    }
