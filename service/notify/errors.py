"""Errors of notices: each with a stable code and a Chinese message that says what to do."""

from __future__ import annotations

from service.errors import ConfigurationError, DocsignError, InvalidInput


class UnknownChannel(InvalidInput):
    code = "NOTIFY_UNKNOWN_CHANNEL"
    default_message = (
        "没有这种通知渠道：可选 email（邮件）、wecom（企业微信群机器人）、dingtalk（钉钉群机器人）、sms（短信）。"
    )


class ChannelNotConfigured(ConfigurationError):
    code = "NOTIFY_CHANNEL_NOT_CONFIGURED"
    default_message = "该通知渠道尚未配置，请管理员在设置中填写后再试。"


class RecipientInvalid(InvalidInput):
    code = "NOTIFY_RECIPIENT_INVALID"
    default_message = "收件人格式有误：邮件应为电子邮箱，短信应为11位手机号，机器人应为 https 地址。"


class DeliveryFailed(DocsignError):
    """The provider refused or could not be reached; the delivery stays in the log to be retried."""

    code = "NOTIFY_DELIVERY_FAILED"
    http_status = 502
    default_message = "通知发送失败，已记入发送记录，稍后会自动重试。"


class UrgedTooOften(DocsignError):
    code = "NOTIFY_URGED_TOO_OFTEN"
    http_status = 429
    default_message = "对该单位的催办过于频繁，请稍后再催。"


class NothingToUrge(InvalidInput):
    code = "NOTIFY_NOTHING_TO_URGE"
    default_message = "所选单位都已签署或不在本任务中，无需催办。"


class WebhookInvalid(InvalidInput):
    code = "WEBHOOK_INVALID"
    default_message = "订阅有误：地址应为 http(s) 地址，事件应从列出的事件中选择。"
