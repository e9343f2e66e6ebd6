"""The channels a notice goes out on, each a small adapter behind one interface.

``send(outgoing)`` hands one message to the provider and returns the provider's answer (kept in
the delivery log), or raises :class:`DeliveryFailed` with what the provider said. Which channels
exist is decided by the settings alone (:func:`channels_from_settings`); a robot's address and
secret come with each message (they belong to the unit's contacts, not to the installation).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx

from service.notify.errors import ChannelNotConfigured, DeliveryFailed, RecipientInvalid, UnknownChannel
from service.settings import Settings

CHANNELS = ("email", "wecom", "dingtalk", "sms")
CHANNEL_TITLES = {"email": "邮件", "wecom": "企业微信群机器人", "dingtalk": "钉钉群机器人", "sms": "短信"}
#: Channels held during quiet hours (a mail waits in the inbox; a phone buzzes).
LOUD = frozenset({"wecom", "dingtalk", "sms"})
#: Channels counted per recipient per minute: 企业微信 and 钉钉 robots accept 20 messages a minute.
ROBOTS = frozenset({"wecom", "dingtalk"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


@dataclass(frozen=True)
class Outgoing:
    """One message as a channel sends it."""

    recipient: str
    subject: str
    body: str
    message_id: str
    #: A 钉钉 robot's 加签 secret.
    secret: str | None = None
    #: SMS template parameters.
    params: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    name: str

    def send(self, message: Outgoing) -> str:
        """Hand the message to the provider; the provider's answer, or :class:`DeliveryFailed`."""


def normalize_recipient(channel: str, value: str) -> str:
    """A recipient as the channel takes it, or :class:`RecipientInvalid`: mainland mobiles as 11
    digits (spaces, dashes and +86 dropped), addresses of robots as https (http only to localhost)."""
    value = value.strip()
    if channel == "email":
        if not _EMAIL.match(value):
            raise RecipientInvalid(f"「{value}」不是有效的电子邮箱。")
        return value
    if channel == "sms":
        digits = re.sub(r"[\s-]", "", value)
        digits = re.sub(r"^(\+86|0086|86(?=1\d{10}$))", "", digits)
        if not _MOBILE.match(digits):
            raise RecipientInvalid("短信收件人应为11位中国大陆手机号，例如 13805310001。")
        return digits
    if channel in ROBOTS:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - a port out of range raises here
        except ValueError:
            raise RecipientInvalid("机器人地址应为 https 开头的完整 Webhook 地址。") from None
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme not in ("https", "http") or not parts.hostname or (parts.scheme == "http" and not local):
            raise RecipientInvalid("机器人地址应为 https 开头的完整 Webhook 地址。")
        return value
    raise UnknownChannel()


def mask_recipient(channel: str, value: str) -> str:
    """What a page or a log line shows of a recipient."""
    if channel == "email":
        name, _, host = value.partition("@")
        return (name[:1] + "***@" + host) if host else "***"
    if channel == "sms":
        return value[:3] + "****" + value[-4:] if len(value) == 11 else "*" * len(value)
    host = urlsplit(value).hostname or "?"
    return f"{CHANNEL_TITLES.get(channel, channel)}（{host}）"


# --- e-mail -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    user: str
    password: str
    #: Implicit TLS from the first byte (port 465); ``starttls`` upgrades a plain connection.
    tls: bool
    starttls: bool

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """``smtp://user:pass@host:465?tls=1`` (or ``?starttls=1``); user and password may be absent."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ChannelNotConfigured("DOCSIGN_SMTP_URL 应形如 smtp://用户名:密码@主机:465?tls=1。")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        tls = parts.scheme == "smtps" or query.get("tls") in ("1", "true", "yes")
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            tls=tls,
            starttls=query.get("starttls") in ("1", "true", "yes"),
        )


class EmailChannel:
    name = "email"

    def __init__(self, server: SmtpServer, sender: str, sender_name: str, timeout: float) -> None:
        self.server = server
        self.sender = sender
        self.sender_name = sender_name
        self.timeout = timeout

    def message(self, message: Outgoing) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = formataddr((self.sender_name, self.sender))
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Message-ID"] = make_msgid(message.message_id, domain=self.sender.rsplit("@", 1)[-1])
        mail.set_content(message.body)
        return mail

    def send(self, message: Outgoing) -> str:
        s = self.server
        try:
            if s.tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=self.timeout)
            with client:
                if s.starttls:
                    client.starttls(context=ssl.create_default_context())
                if s.user:
                    client.login(s.user, s.password)
                refused = client.send_message(self.message(message))
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"邮件服务器未接收：{exc}") from exc
        if refused:
            raise DeliveryFailed(f"邮件服务器拒收：{refused}")
        return "250 accepted"


# --- group robots -----------------------------------------------------------------------------


def _robot_answer(response: httpx.Response, who: str) -> str:
    text = response.text[:400]
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200 or not isinstance(answer, dict) or answer.get("errcode") != 0:
        raise DeliveryFailed(f"{who}未接收（HTTP {response.status_code}）：{text}")
    return text


class WecomRobot:
    """企业微信 group robot: ``POST`` the webhook address (``.../cgi-bin/webhook/send?key=...``) with
    ``{"msgtype": "markdown", "markdown": {"content": ...}}``."""

    name = "wecom"

    def __init__(self, post: Callable[..., httpx.Response]) -> None:
        self.post = post

    def send(self, message: Outgoing) -> str:
        content = f"**{message.subject}**\n{message.body}"
        try:
            response = self.post(message.recipient, json={"msgtype": "markdown", "markdown": {"content": content}})
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise DeliveryFailed(f"企业微信机器人无法连接：{exc}") from exc
        return _robot_answer(response, "企业微信机器人")


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """钉钉's 加签: base64 of HMAC-SHA256 over ``timestamp + "\\n" + secret`` keyed by the secret
    (url-encoded by the caller as the ``sign`` query parameter)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class DingtalkRobot:
    """钉钉 group robot: ``POST`` the webhook address (``.../robot/send?access_token=...``) with
    ``&timestamp=...&sign=...`` added when the robot has a secret."""

    name = "dingtalk"

    def __init__(self, post: Callable[..., httpx.Response], now_ms: Callable[[], int]) -> None:
        self.post = post
        self.now_ms = now_ms

    def send(self, message: Outgoing) -> str:
        url = message.recipient
        if message.secret:
            stamp = self.now_ms()
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}timestamp={stamp}&sign={quote(dingtalk_sign(message.secret, stamp), safe='')}"
        body = {
            "msgtype": "markdown",
            "markdown": {"title": message.subject, "text": f"### {message.subject}\n{message.body}"},
        }
        try:
            response = self.post(url, json=body)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise DeliveryFailed(f"钉钉机器人无法连接：{exc}") from exc
        return _robot_answer(response, "钉钉机器人")


# --- SMS --------------------------------------------------------------------------------------


def _pct(value: str) -> str:
    """阿里云's percent-encoding (RFC 3986: only A-Z a-z 0-9 - _ . ~ left as they are)."""
    return quote(value, safe="-_.~")


def aliyun_signature(params: dict[str, str], secret: str, method: str = "GET") -> str:
    """The RPC-style signature (SignatureVersion 1.0, HMAC-SHA1) 阿里云 documents for dysmsapi."""
    canonical = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{_pct('/')}&{_pct(canonical)}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AliyunSms:
    """阿里云 短信服务 (dysmsapi 2017-05-25) ``SendSms``, signed request over ``GET``."""

    name = "sms"

    def __init__(
        self,
        endpoint: str,
        key_id: str,
        key_secret: str,
        sign_name: str,
        template_code: str,
        region: str,
        get: Callable[..., httpx.Response],
        now: Callable[[], dt.datetime],
    ) -> None:
        self.endpoint = endpoint
        self.key_id = key_id
        self.key_secret = key_secret
        self.sign_name = sign_name
        self.template_code = template_code
        self.region = region
        self.get = get
        self.now = now

    def request(self, message: Outgoing, nonce: str | None = None) -> dict[str, str]:
        params = {
            "AccessKeyId": self.key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "OutId": message.message_id,
            "PhoneNumbers": message.recipient,
            "RegionId": self.region,
            "SignName": self.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": self.template_code,
            "TemplateParam": json.dumps(message.params, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": self.now().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }
        params["Signature"] = aliyun_signature(params, self.key_secret)
        return params

    def send(self, message: Outgoing) -> str:
        try:
            response = self.get(self.endpoint, params=self.request(message))
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise DeliveryFailed(f"短信服务无法连接：{exc}") from exc
        text = response.text[:400]
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200 or not isinstance(answer, dict) or answer.get("Code") != "OK":
            raise DeliveryFailed(f"短信服务未接收（HTTP {response.status_code}）：{text}")
        return text


def channels_from_settings(settings: Settings, now: Callable[[], dt.datetime]) -> dict[str, Channel]:
    """The channels the settings configure: robots always (their addresses are the units'), e-mail
    with ``DOCSIGN_SMTP_URL`` and a From address, SMS with 阿里云's key, signature and template."""
    timeout = settings.notify_timeout_seconds
    client = httpx.Client(timeout=timeout, trust_env=False)
    found: dict[str, Channel] = {
        "wecom": WecomRobot(client.post),
        "dingtalk": DingtalkRobot(client.post, lambda: int(time.time() * 1000)),
    }
    smtp_url = settings.smtp_url.get_secret_value()
    if smtp_url and settings.mail_from:
        found["email"] = EmailChannel(SmtpServer.parse(smtp_url), settings.mail_from, settings.mail_from_name, timeout)
    secret = settings.sms_access_key_secret.get_secret_value()
    if settings.sms_access_key_id and secret and settings.sms_sign_name and settings.sms_template_code:
        found["sms"] = AliyunSms(
            settings.sms_endpoint,
            settings.sms_access_key_id,
            secret,
            settings.sms_sign_name,
            settings.sms_template_code,
            settings.sms_region,
            client.get,
            now,
        )
    return found
