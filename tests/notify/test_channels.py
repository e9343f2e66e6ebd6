"""Each channel against a real local server, checking the exact request its provider documents."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from urllib.parse import quote

import httpx
import pytest

from service.notify.channels import (
    AliyunSms,
    DingtalkRobot,
    EmailChannel,
    Outgoing,
    SmtpServer,
    WecomRobot,
    aliyun_signature,
    mask_recipient,
    normalize_recipient,
)
from service.notify.errors import DeliveryFailed, RecipientInvalid
from tests.notify.servers import SMTP_USER, Mailbox, Provider

MESSAGE = Outgoing(
    recipient="",
    subject="【签署提醒】2024年控辍保学责任书",
    body="石河小学：请于 2024年09月29日 16:00 前签署。\n办理：https://kcbx.example.edu.cn/sign/7（需登录）",
    message_id="0f3c",
    params={"unit": "历城区王舍人街道石河小学", "task": "2024年控辍保学责任书", "deadline": "2024年09月29日 16:00"},
)


def _with(recipient: str, secret: str | None = None) -> Outgoing:
    return dataclasses.replace(MESSAGE, recipient=recipient, secret=secret)


def test_a_mail_reaches_a_real_smtp_server_with_login(smtp: Mailbox) -> None:
    server = SmtpServer.parse(smtp.url)
    assert (server.user, server.tls, server.starttls) == (SMTP_USER, False, False)
    channel = EmailChannel(server, "kcbx@lcjt.example.cn", "历城区控辍保学平台", timeout=5)
    assert channel.send(_with("shihe@school.example.cn")) == "250 accepted"
    [mail] = smtp.mails
    assert smtp.envelopes == [("kcbx@lcjt.example.cn", ["shihe@school.example.cn"])]
    assert mail["Subject"] == MESSAGE.subject
    assert mail["To"] == "shihe@school.example.cn"
    assert "kcbx@lcjt.example.cn" in mail["From"] and "历城区控辍保学平台" in str(mail["From"])
    assert mail.get_content().replace("\r\n", "\n").strip() == MESSAGE.body


def test_a_wrong_smtp_password_is_a_failed_delivery(smtp: Mailbox) -> None:
    server = SmtpServer.parse(smtp.url.replace("smtp-pass-1", "wrong"))
    with pytest.raises(DeliveryFailed) as failed:
        EmailChannel(server, "kcbx@lcjt.example.cn", "平台", timeout=5).send(_with("a@b.cn"))
    assert failed.value.code == "NOTIFY_DELIVERY_FAILED" and "邮件服务器" in failed.value.message


def test_smtp_urls() -> None:
    assert SmtpServer.parse("smtp://u%40x:p%2Fw@mail.example.cn:465?tls=1") == SmtpServer(
        "mail.example.cn", 465, "u@x", "p/w", True, False
    )
    assert SmtpServer.parse("smtp://mail.example.cn?starttls=1").port == 25


def test_the_wecom_robot_gets_a_markdown_post(provider: Provider) -> None:
    url = provider.url("/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa")
    WecomRobot(httpx.post).send(_with(url))
    [request] = provider.at("/cgi-bin/webhook/send")
    assert request.method == "POST" and request.query == {"key": "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"}
    assert request.json() == {"msgtype": "markdown", "markdown": {"content": f"**{MESSAGE.subject}**\n{MESSAGE.body}"}}


def test_a_robot_error_code_is_a_failed_delivery(provider: Provider) -> None:
    provider.answers["/cgi-bin/webhook/send"] = lambda r: (200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    with pytest.raises(DeliveryFailed) as failed:
        WecomRobot(httpx.post).send(_with(provider.url("/cgi-bin/webhook/send?key=x")))
    assert "93000" in failed.value.message


def test_the_dingtalk_robot_is_signed_as_documented(provider: Provider) -> None:
    secret = "SECa0ab7f3ba9742c0f9c6e8d1b0e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0"
    stamp = 1727580000123
    DingtalkRobot(httpx.post, lambda: stamp).send(_with(provider.url("/robot/send?access_token=abc"), secret))
    [request] = provider.at("/robot/send")
    # 钉钉's documented recipe: HmacSHA256(key=secret, timestamp + "\n" + secret), base64, URL-encoded
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert request.query == {"access_token": "abc", "timestamp": str(stamp), "sign": expected}
    assert request.json() == {
        "msgtype": "markdown",
        "markdown": {"title": MESSAGE.subject, "text": f"### {MESSAGE.subject}\n{MESSAGE.body}"},
    }


def _pct(value: str) -> str:
    """阿里云's POP encoding, as its documentation writes it with java.net.URLEncoder."""
    return quote(value, safe="").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


def test_the_aliyun_signature_matches_the_documented_example() -> None:
    # the worked example of 阿里云's SendSms signature documentation
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert aliyun_signature(params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_sms_goes_to_the_configured_endpoint_signed_with_the_template(provider: Provider) -> None:
    now = dt.datetime(2024, 9, 26, 2, 0, 5, tzinfo=dt.UTC)
    sms = AliyunSms(
        provider.url("/sms/"),
        "LTAI5tKey",
        "key-secret",
        "历城区教体局",
        "SMS_4700001",
        "cn-hangzhou",
        httpx.get,
        lambda: now,
    )
    answer = sms.send(_with(normalize_recipient("sms", "+86 138-0531-0001")))
    assert json.loads(answer)["Code"] == "OK"
    [request] = provider.at("/sms/")
    q = dict(request.query)
    signature = q.pop("Signature")
    assert q["PhoneNumbers"] == "13805310001"
    assert (q["Action"], q["Version"], q["SignName"], q["TemplateCode"]) == (
        "SendSms",
        "2017-05-25",
        "历城区教体局",
        "SMS_4700001",
    )
    assert json.loads(q["TemplateParam"]) == MESSAGE.params
    assert (q["Timestamp"], q["SignatureMethod"], q["SignatureVersion"]) == ("2024-09-26T02:00:05Z", "HMAC-SHA1", "1.0")
    canonical = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in sorted(q.items()))
    to_sign = "GET&%2F&" + _pct(canonical)
    assert signature == base64.b64encode(hmac.new(b"key-secret&", to_sign.encode(), hashlib.sha1).digest()).decode()


def test_an_sms_the_provider_refuses_is_a_failed_delivery(provider: Provider) -> None:
    provider.answers["/sms/"] = lambda r: (200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号"})
    sms = AliyunSms(
        provider.url("/sms/"), "k", "s", "签名", "SMS_1", "cn-hangzhou", httpx.get, lambda: dt.datetime.now(dt.UTC)
    )
    with pytest.raises(DeliveryFailed) as failed:
        sms.send(_with("13805310001"))
    assert "MOBILE_NUMBER_ILLEGAL" in failed.value.message


def test_recipients_are_checked_and_masked() -> None:
    with pytest.raises(RecipientInvalid) as bad:
        normalize_recipient("sms", "0531-88120000")
    assert bad.value.code == "NOTIFY_RECIPIENT_INVALID" and "11位" in bad.value.message
    with pytest.raises(RecipientInvalid):
        normalize_recipient("wecom", "http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=1")  # not https
    for odd in ("https://[::1", "https://qyapi.weixin.qq.com:99999/x", "https://"):
        with pytest.raises(RecipientInvalid):
            normalize_recipient("dingtalk", odd)
    assert mask_recipient("sms", "13805310001") == "138****0001"
    assert mask_recipient("email", "shihe@school.example.cn") == "s***@school.example.cn"
    assert (
        mask_recipient("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=secret")
        == "企业微信群机器人（qyapi.weixin.qq.com）"
    )
