"""A campaign's notices end to end, on the test clock: issued, 3 days and 1 day before, overdue with
escalation (and a digest for the office), 催办; quiet hours and dedupe; webhooks signed per the
Standard Webhooks scheme, retried and replayed. Mails arrive at a real SMTP server, robot and SMS
requests at a local HTTP server."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from service.accounts.models import User
from service.campaigns.models import Assignment, Campaign
from service.campaigns.service import CampaignSpec
from service.container import Services
from service.documents.convert import Converter
from service.notify.errors import UrgedTooOften
from service.notify.models import Delivery, WebhookDelivery
from service.notify.service import ContactSpec
from service.pki.store import Pki
from service.settings import Settings
from tests.conftest import built_services
from tests.district import load_district, scope_of, unit
from tests.documents.test_sign import handwriting
from tests.ledgers.term import YEAR, goto, new_case
from tests.notify.servers import Mailbox, Provider

BEIJING = zoneinfo.ZoneInfo("Asia/Shanghai")
BASE = "https://kcbx.example.edu.cn"
DING_SECRET = "SEC4f1c0ffee"


@pytest.fixture
def notified(
    tmp_path: Path,
    settings: Settings,
    pki: Pki,
    converter: Converter,
    smtp: Mailbox,
    provider: Provider,
    migrated_database_url: str,
) -> Iterator[Services]:
    """Services on SQLite and on PostgreSQL (each test runs twice), each over a copy of a migrated
    database, with e-mail and SMS configured to the local servers."""
    own = settings.model_copy(
        update={
            "certs_dir": tmp_path / "certs",
            "smtp_url": SecretStr(smtp.url),
            "mail_from": "kcbx@lcjt.example.cn",
            "sms_endpoint": provider.url("/sms/"),
            "sms_access_key_id": "LTAI5tKey",
            "sms_access_key_secret": SecretStr("key-secret"),
            "sms_sign_name": "历城区教体局",
            "sms_template_code": "SMS_4700001",
        }
    )
    shutil.copytree(pki.dir, own.certs_dir)
    with built_services(tmp_path, own, converter, migrated_database_url) as built:
        yield built


def _to_beijing(services: Services, hour: int) -> None:
    """Move the clock on to the next ``hour``:00 Beijing time."""
    now = services.clock.now().astimezone(BEIJING)
    target = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if target <= now:
        target += dt.timedelta(days=1)
    services.clock.advance(target - now)


def _run(services: Services) -> list[tuple[str, str, str]]:
    """One run of the rules and sending (what the schedule does); what was sent: (kind, channel, unit code)."""
    with services.db.session() as s:
        report = services.notify.run(s, s.commit)
        return [(d.kind, d.channel, d.unit.code if d.unit else "") for d in report.sent]


def _contacts(services: Services, provider: Provider) -> None:
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        services.notify.set_contacts(
            s,
            bureau,
            unit(s, "WSR-SH"),
            ContactSpec(
                email="shihe@school.example.cn",
                mobile="138 0531 0001",
                wecom_webhook=provider.url("/cgi-bin/webhook/send?key=shihe"),
            ),
        )
        services.notify.set_contacts(
            s,
            bureau,
            unit(s, "WSR"),
            ContactSpec(
                email="wsr@office.example.cn",
                dingtalk_webhook=provider.url("/robot/send?access_token=wsr"),
                dingtalk_secret=DING_SECRET,
            ),
        )
        services.notify.set_contacts(s, bureau, unit(s, "LCJT"), ContactSpec(email="lcjt@bureau.example.cn"))
        for code in ("WSR-XD", "WSR-ZX"):
            services.notify.set_contacts(
                s, bureau, unit(s, code), ContactSpec(email=f"{code.lower()}@school.example.cn", channels=["email"])
            )
        s.commit()


def _issue(services: Services, deadline_days: int) -> int:
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        deadline = (services.clock.now().astimezone(BEIJING) + dt.timedelta(days=deadline_days)).replace(tzinfo=None)
        campaign = services.campaigns.create(
            s,
            bureau,
            CampaignSpec(
                name="2024年控辍保学责任书",
                year=2024,
                deadline=deadline,
                issue_date=None,
                kinds=("responsibility_office", "pledge"),
            ),
        )
        job, _ = services.campaigns.start_issue(s, bureau, campaign, services.jobs)
        s.commit()
    ended = services.jobs.run_here(job.id)
    assert ended.status == "done", ended.error_message
    return campaign.id


def _assignment(services: Services, cid: int, code: str) -> int:
    with services.db.session() as s:
        a = s.scalar(select(Assignment).where(Assignment.campaign_id == cid, Assignment.unit_id == unit(s, code).id))
        assert a is not None
        return a.id


def test_a_campaign_issued_reminded_overdue_and_urged(notified: Services, smtp: Mailbox, provider: Provider) -> None:
    services = notified
    load_district(services)
    _contacts(services, provider)
    _to_beijing(services, 9)
    cid = _issue(services, deadline_days=5)
    sh = _assignment(services, cid, "WSR-SH")
    sh_link = f"{BASE}/sign/{sh}"

    # issued: every unit that must sign and has a contact hears of it, on each of its channels
    sent = _run(services)
    assert sorted(sent) == sorted(
        [
            ("campaign.issued", "email", "WSR-SH"),
            ("campaign.issued", "wecom", "WSR-SH"),
            ("campaign.issued", "sms", "WSR-SH"),
            ("campaign.issued", "email", "WSR"),
            ("campaign.issued", "dingtalk", "WSR"),
            ("campaign.issued", "email", "WSR-XD"),
            ("campaign.issued", "email", "WSR-ZX"),
        ]
    )
    [mail] = smtp.to("shihe@school.example.cn")
    deadline = mail.get_content().split("请于 ", 1)[1].split(" 前签署", 1)[0]
    assert mail["Subject"] == "【待签署】2024年控辍保学责任书"
    assert mail.get_content().replace("\r\n", "\n").strip() == (
        f"历城区王舍人街道石河小学：教体局已下发「2024年控辍保学责任书（控辍保学承诺书）」，请于 {deadline} 前签署。\n"
        f"办理：{sh_link}（需登录）"
    )
    [wecom] = provider.at("/cgi-bin/webhook/send")
    assert wecom.json()["markdown"]["content"].startswith(
        "**【待签署】2024年控辍保学责任书**\n历城区王舍人街道石河小学"
    )
    [sms] = provider.at("/sms/")
    assert sms.query["PhoneNumbers"] == "13805310001" and sms.query["TemplateCode"] == "SMS_4700001"
    [ding] = provider.at("/robot/send")
    assert ding.query["access_token"] == "wsr" and ding.query["sign"] and ding.query["timestamp"]

    # a rerun (the schedule again, or a job rerun) sends nothing twice
    assert _run(services) == []
    assert len(smtp.mails) == 4

    # 3 days before the deadline (2 days on), then 1 day before (2 more days on): reminders
    services.clock.advance(dt.timedelta(days=2, hours=1))
    sent = _run(services)
    assert ("campaign.reminder", "email", "WSR-SH") in sent and ("campaign.reminder", "sms", "WSR-SH") in sent
    [mail] = [m for m in smtp.to("shihe@school.example.cn") if m["Subject"].startswith("【签署提醒】")]
    assert "还剩不到3天" in mail.get_content() and sh_link in mail.get_content()
    assert _run(services) == []

    # one school signs: it hears nothing more
    with services.db.session() as s:
        zx = s.get(Assignment, _assignment(services, cid, "WSR-ZX"))
        assert zx is not None
        services.campaigns.sign(s, scope_of(s, "wsr-zx-head"), zx, handwriting())
        s.commit()
        # and its office sends it on to the bureau (转交): the bureau is told to receive it
        assert zx.campaign is not None
        services.campaigns.forward(s, scope_of(s, "wsr-staff"), zx.campaign)
        s.commit()

    services.clock.advance(dt.timedelta(days=2))
    sent = _run(services)
    assert sorted(k for k in sent if k[2] == "WSR-SH") == [
        ("campaign.reminder", "email", "WSR-SH"),
        ("campaign.reminder", "sms", "WSR-SH"),
        ("campaign.reminder", "wecom", "WSR-SH"),
    ]
    assert not any(code == "WSR-ZX" for *_, code in sent)
    assert ("campaign.forwarded", "email", "LCJT") in sent
    [forwarded] = [m for m in smtp.to("lcjt@bureau.example.cn") if m["Subject"].startswith("【已转交】")]
    assert (
        "历城区王舍人街道教育办公室已转交所辖学校已签署的「2024年控辍保学责任书」1 份，请确认接收。"
        in forwarded.get_content()
    )
    assert "还剩不到1天" in smtp.to("shihe@school.example.cn")[-1].get_content()

    # past the deadline: the school is told, and its office hears of every late school in one digest
    services.clock.advance(dt.timedelta(days=1))
    sent = _run(services)
    assert ("campaign.overdue", "email", "WSR-SH") in sent
    assert ("digest", "email", "WSR") in sent and ("digest", "dingtalk", "WSR") in sent
    assert not any(kind == "campaign.escalation" and code == "WSR" for kind, _, code in sent)
    [digest] = [m for m in smtp.to("wsr@office.example.cn") if m["Subject"].startswith("【今日待办汇总】")]
    text = digest.get_content()
    assert digest["Subject"] == "【今日待办汇总】历城区王舍人街道教育办公室 共 3 项"
    assert "「历城区王舍人街道石河小学」" in text and "「历城区王舍人街道辛甸小学」" in text
    assert "中学" not in text.split("以下", 1)[1].split("1.", 1)[0]  # the signed school is not listed
    # the bureau hears of the late offices and 区直学校 (up the tree), also in one digest
    assert ("digest", "email", "LCJT") in sent
    [up] = smtp.to("lcjt@bureau.example.cn")[-1:]
    text = up.get_content()
    assert "下级单位「历城区王舍人街道教育办公室」" in text and f"{BASE}/campaigns/{cid}" in text
    assert "石河小学" not in text  # a school under an office is the office's to chase
    assert _run(services) == []

    # 催办 by the bureau: sent now, recorded; again within the hour is refused
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        campaign = s.get(Campaign, cid)
        assert campaign is not None
        urged = services.notify.urge(s, bureau, campaign, [unit(s, "WSR-SH").id])
        s.commit()
        report = services.notify.send_due(s, s.commit, only=[d.id for d in urged])
    assert sorted(d.channel for d in report.sent) == ["email", "sms", "wecom"]
    assert smtp.to("shihe@school.example.cn")[-1]["Subject"] == "【催办】2024年控辍保学责任书"
    with services.db.session() as s, pytest.raises(UrgedTooOften) as refused:
        services.notify.urge(s, scope_of(s, "bureau"), s.get(Campaign, cid), [unit(s, "WSR-SH").id])  # type: ignore[arg-type]
    assert refused.value.code == "NOTIFY_URGED_TOO_OFTEN" and "石河小学" in refused.value.message


def test_quiet_hours_hold_robots_and_sms_but_not_mail(notified: Services, smtp: Mailbox, provider: Provider) -> None:
    services = notified
    load_district(services)
    _contacts(services, provider)
    _to_beijing(services, 23)
    _issue(services, deadline_days=6)
    sent = _run(services)
    assert ("campaign.issued", "email", "WSR-SH") in sent
    assert not [k for k in sent if k[1] in ("sms", "wecom", "dingtalk")]
    assert provider.requests == []
    with services.db.session() as s:
        held = s.scalars(select(Delivery).where(Delivery.status == "queued")).all()
        assert sorted(d.channel for d in held) == ["dingtalk", "sms", "wecom"]
        assert {d.not_before.astimezone(BEIJING).hour for d in held} == {7}
        assert {d.recipient_masked for d in held if d.channel == "sms"} == {"138****0001"}
    services.clock.advance(dt.timedelta(hours=7, minutes=30))  # 06:30: still quiet
    assert _run(services) == []
    services.clock.advance(dt.timedelta(minutes=31))
    assert sorted(k[1] for k in _run(services)) == ["dingtalk", "sms", "wecom"]


def test_a_failing_provider_is_retried_with_back_off(notified: Services, smtp: Mailbox, provider: Provider) -> None:
    services = notified
    load_district(services)
    _contacts(services, provider)
    _to_beijing(services, 9)
    provider.answers["/sms/"] = lambda r: (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发流控"})
    _issue(services, deadline_days=6)
    assert ("campaign.issued", "sms", "WSR-SH") not in _run(services)
    with services.db.session() as s:
        sms = s.scalar(select(Delivery).where(Delivery.channel == "sms"))
        assert (
            sms is not None
            and (sms.status, sms.attempts) == ("queued", 1)
            and "BUSINESS_LIMIT_CONTROL" in (sms.answer or "")
        )
    assert _run(services) == []  # back-off: not before a minute has passed
    del provider.answers["/sms/"]
    services.clock.advance(dt.timedelta(minutes=1, seconds=5))
    assert _run(services) == [("campaign.issued", "sms", "WSR-SH")]
    assert len(provider.at("/sms/")) == 2


def test_webhooks_are_signed_retried_and_replayed(notified: Services, provider: Provider) -> None:
    services = notified
    load_district(services)
    _to_beijing(services, 9)
    with services.db.session() as s:
        sub = services.notify.subscribe(
            s, scope_of(s, "bureau"), provider.url("/oa/hook"), ["document.issued", "campaign.overdue"]
        )
        s.commit()
        secret = sub.secret
    failing = [True]
    provider.answers["/oa/hook"] = lambda r: (503, {"error": "busy"}) if failing[0] else (200, {"ok": True})
    cid = _issue(services, deadline_days=1)
    _run(services)
    with services.db.session() as s:
        deliveries = s.scalars(select(WebhookDelivery)).all()
        assert len(deliveries) == 10 and {d.event for d in deliveries} == {"document.issued"}
        assert {(d.status, d.attempts) for d in deliveries} == {("queued", 1)}
    failing[0] = False
    services.clock.advance(dt.timedelta(minutes=2))
    _run(services)
    received = [r for r in provider.at("/oa/hook")]
    assert len(received) == 20
    for request in received[10:]:
        payload = Webhook(secret).verify(request.body, request.headers)  # the receiver's own check
        assert payload["type"] == "document.issued" and payload["data"]["object_type"] == "document"
        assert set(payload["data"]) <= {"object_type", "object_id", "unit", "assignment", "campaign"}
    # overdue
    services.clock.advance(dt.timedelta(days=1, hours=1))
    _run(services)
    overdue = [Webhook(secret).verify(r.body, r.headers) for r in provider.at("/oa/hook")[20:]]
    assert len(overdue) == 10 and {p["type"] for p in overdue} == {"campaign.overdue"}
    assert {p["data"]["campaign"] for p in overdue} == {cid}
    # replay: the same message id again, freshly signed
    with services.db.session() as s:
        first = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).first()
        assert first is not None
        services.notify.replay(s, scope_of(s, "bureau"), first)
        s.commit()
        message_id = first.message_id
    _run(services)
    last = provider.at("/oa/hook")[-1]
    assert last.headers["webhook-id"] == message_id
    Webhook(secret).verify(last.body, last.headers)


def test_a_robot_gets_at_most_twenty_messages_a_minute(notified: Services, provider: Provider) -> None:
    services = notified
    robot = provider.url("/cgi-bin/webhook/send?key=busy")
    with services.db.session() as s:
        for _ in range(25):
            services.notify.test_message(s, "wecom", robot)
        s.commit()
        report = services.notify.send_due(s, s.commit)
    assert (len(report.sent), len(report.held)) == (20, 5)
    assert len(provider.at("/cgi-bin/webhook/send")) == 20
    services.clock.advance(dt.timedelta(seconds=61))
    with services.db.session() as s:
        assert len(services.notify.send_due(s, s.commit).sent) == 5
    assert len(provider.at("/cgi-bin/webhook/send")) == 25


def test_a_message_claimed_by_a_process_that_died_is_never_sent_again_by_itself(
    notified: Services, smtp: Mailbox
) -> None:
    services = notified
    load_district(services)
    with services.db.session() as s:
        delivery = services.notify.test_message(s, "email", "shihe@school.example.cn")
        delivery.status = "sending"  # claimed and committed, then the process was killed
        delivery.attempts = 1
        s.commit()
        assert services.notify.send_due(s, s.commit).sent == []
        assert services.notify.run(s, s.commit).sent == []
    assert smtp.mails == []


def test_a_provider_answer_keeps_no_address(notified: Services, provider: Provider) -> None:
    services = notified
    robot = provider.url("/cgi-bin/webhook/send?key=secret-key-1")
    provider.answers["/cgi-bin/webhook/send"] = lambda r: (500, {"errcode": -1, "errmsg": f"bad {robot} 13805310001"})
    with services.db.session() as s:
        delivery = services.notify.test_message(s, "wecom", robot)
        s.commit()
        services.notify.send_due(s, s.commit)
        assert delivery.status == "queued" and delivery.answer is not None
        assert "secret-key-1" not in delivery.answer and "13805310001" not in delivery.answer
        assert "138****0001" in delivery.answer


def test_a_case_step_due_then_overdue_reaches_the_school_its_office_and_the_bureau(
    notified: Services, smtp: Mailbox, provider: Provider
) -> None:
    services = notified
    load_district(services)
    _contacts(services, provider)
    goto(services.clock, dt.date(YEAR, 9, 1))
    with services.db.session() as s:
        case = new_case(services, s, "wsr-sh-head", "WSR-SH", 51, "韩疑似", confirmed=False)
        s.commit()
        link = f"{BASE}/cases/{case.id}"
    sent = _run(services)
    assert sorted(k for k in sent if k[0].startswith("case.")) == [
        ("case.due", "email", "WSR-SH"),
        ("case.due", "sms", "WSR-SH"),
        ("case.due", "wecom", "WSR-SH"),
    ]
    [mail] = smtp.to("shihe@school.example.cn")
    assert mail["Subject"].startswith("【个案待办】")
    text = mail.get_content()
    assert "学生韩**的个案应于 2027年09月04日 前完成" in text and link in text
    assert "韩疑似" not in text  # the child's name is masked
    assert _run(services) == []

    goto(services.clock, dt.date(YEAR, 9, 5))
    sent = _run(services)
    assert ("case.overdue", "email", "WSR-SH") in sent
    assert ("case.escalation", "email", "WSR") in sent and ("case.escalation", "dingtalk", "WSR") in sent
    assert ("case.escalation", "email", "LCJT") in sent
    [up] = smtp.to("lcjt@bureau.example.cn")
    assert up["Subject"].startswith("【个案督办】")
    assert "「历城区王舍人街道石河小学」学生韩**的个案" in up.get_content() and link in up.get_content()
    assert _run(services) == []


def test_the_log_forgets_addresses_after_its_period(notified: Services, smtp: Mailbox) -> None:
    services = notified
    with services.db.session() as s:
        delivery = services.notify.test_message(s, "email", "shihe@school.example.cn")
        s.commit()
        services.notify.send_due(s, s.commit)
        delivery_id = delivery.id
    services.clock.advance(dt.timedelta(days=services.settings.notify_log_days + 1))
    with services.db.session() as s:
        services.notify.run(s, s.commit)
    with services.db.session() as s:
        kept = s.get(Delivery, delivery_id)
        assert kept is not None and kept.status == "sent"
        assert kept.recipient == "" and kept.recipient_bidx is None
        assert kept.recipient_masked == "s***@school.example.cn"


def test_a_document_issued_close_to_its_deadline_gets_one_notice_not_a_reminder_too(
    notified: Services, smtp: Mailbox, provider: Provider
) -> None:
    services = notified
    load_district(services)
    _contacts(services, provider)
    _to_beijing(services, 9)
    _issue(services, deadline_days=2)
    sent = _run(services)
    assert {k for k in sent if k[2] == "WSR-SH"} == {
        ("campaign.issued", "email", "WSR-SH"),
        ("campaign.issued", "sms", "WSR-SH"),
        ("campaign.issued", "wecom", "WSR-SH"),
    }
    assert _run(services) == []
    services.clock.advance(dt.timedelta(days=1, hours=1))  # within a day of the deadline: the last reminder
    assert ("campaign.reminder", "email", "WSR-SH") in _run(services)
    assert [m["Subject"] for m in smtp.to("shihe@school.example.cn")] == [
        "【待签署】2024年控辍保学责任书",
        "【签署提醒】2024年控辍保学责任书",
    ]


def test_two_processes_sending_at_once_send_each_message_once(notified: Services, smtp: Mailbox) -> None:
    services = notified
    with services.db.session() as s:
        for n in range(12):
            services.notify.test_message(s, "email", f"school{n}@school.example.cn")
        s.commit()

    def sender() -> None:
        with services.db.session() as s:
            services.notify.send_due(s, s.commit)

    workers = [threading.Thread(target=sender) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert sorted(m["To"] for m in smtp.mails) == sorted(f"school{n}@school.example.cn" for n in range(12))
    with services.db.session() as s:
        assert {(d.status, d.attempts) for d in s.scalars(select(Delivery))} == {("sent", 1)}


def test_a_unit_hears_when_one_of_its_accounts_is_reset_or_disabled(
    notified: Services, smtp: Mailbox, provider: Provider
) -> None:
    """The school's head learns of a reset of their account at once, on the unit's channels (a reset
    nobody asked for is how a seal would be taken over), and of an account disabled; once each."""
    services = notified
    load_district(services)
    _contacts(services, provider)
    _to_beijing(services, 10)
    assert _run(services) == []  # the first run starts reading the log at its end
    with services.db.session() as s:
        head = s.scalars(select(User).where(User.username == "wsr-sh-head")).one()
        services.accounts.reset_password(s, scope_of(s, "secadmin"), head)
        services.accounts.disable(s, scope_of(s, "sysadmin"), head, "校长调任")
        s.commit()
    sent = _run(services)
    assert ("account.reset", "email", "WSR-SH") in sent and ("account.disabled", "email", "WSR-SH") in sent
    assert ("account.reset", "sms", "WSR-SH") in sent
    reset = [m for m in smtp.to("shihe@school.example.cn") if m["Subject"].startswith("【账号已重置】")]
    assert len(reset) == 1
    text = reset[0].get_content()
    assert (
        "wsr-sh-head" in text
        and "被 安全管理员孟琳（济南市历城区教育和体育局） 重置" in text
        and "请立即联系教体局" in text
    )
    disabled = [m for m in smtp.to("shihe@school.example.cn") if m["Subject"].startswith("【账号已停用】")]
    assert len(disabled) == 1 and "校长调任" in disabled[0].get_content()
    assert _run(services) == []  # once each

    # an activation is told to the unit too: a link someone else opened first shows up at once
    with services.db.session() as s:
        head = s.scalars(select(User).where(User.username == "wsr-sh-head")).one()
        services.accounts.enable(s, scope_of(s, "sysadmin"), head)
        link = services.accounts.reset_password(s, scope_of(s, "secadmin"), head)
        s.commit()
    token = link.url.rsplit("/", 1)[-1]
    with services.db.session() as s:
        services.accounts.activate(s, "203.0.113.8", token, "zhao-ming-own-secret-9", None)
        s.commit()
    sent = _run(services)
    assert ("account.activated", "email", "WSR-SH") in sent
    [activated] = [m for m in smtp.to("shihe@school.example.cn") if m["Subject"].startswith("【账号已激活】")]
    assert "如果不是本人操作" in activated.get_content() and "wsr-sh-head" in activated.get_content()


def test_a_unit_hears_once_a_streak_when_its_account_keeps_failing_to_sign_in(
    notified: Services, smtp: Mailbox, provider: Provider
) -> None:
    """Wrong passwords for the principal from many addresses (someone guessing): four tell nobody,
    seven tell the school once, with the count and the last address; more failures add nothing; after a good login a new streak
    is told again. Failures for a name nobody has tell nobody."""
    from service.accounts.errors import AuthFailed
    from tests.api.conftest import PASSWORD

    services = notified
    load_district(services)
    _contacts(services, provider)
    _to_beijing(services, 10)
    assert _run(services) == []

    def fail(times: int, username: str = "wsr-sh-head") -> None:
        for n in range(times):
            with services.db.session() as s, pytest.raises(AuthFailed):
                services.accounts.sign_in(s, f"198.51.100.{n + 1}", username, "not-the-password")
            services.clock.advance(dt.timedelta(minutes=1))

    fail(4)
    fail(3, "no-such-user")
    assert not [k for k in _run(services) if k[0] == "account.failed_logins"]
    fail(3)
    sent = _run(services)
    assert ("account.failed_logins", "email", "WSR-SH") in sent and ("account.failed_logins", "sms", "WSR-SH") in sent
    [told] = [m for m in smtp.to("shihe@school.example.cn") if m["Subject"] == "【登录失败过多】"]
    assert "wsr-sh-head" in told.get_content() and "已登录失败 7 次" in told.get_content()
    assert "来自 198.51.100.3" in told.get_content()  # the last try's address
    fail(2)
    assert _run(services) == []

    with services.db.session() as s:  # the holder signs in: the streak ends
        head = s.scalars(select(User).where(User.username == "wsr-sh-head")).one()
        head.failed_logins, head.last_login_at = 0, services.clock.now()
        s.commit()
    fail(5)
    assert ("account.failed_logins", "email", "WSR-SH") in _run(services)
    assert len([m for m in smtp.to("shihe@school.example.cn") if m["Subject"] == "【登录失败过多】"]) == 2
    assert PASSWORD  # the district's real password was never tried


def test_what_the_pki_upkeep_cannot_do_alone_is_told_to_the_bureau_once(
    notified: Services, smtp: Mailbox, provider: Provider, tmp_path: Path
) -> None:
    """With the root's key kept offline (as the README's production steps do), the root's CRL
    coming due is a matter for a person: the bureau is told, once however often the job runs."""
    from service.archive.tasks import maintain_pki

    services = notified
    load_district(services)
    _contacts(services, provider)
    _to_beijing(services, 10)
    assert _run(services) == []
    services.pki.export_root_key(tmp_path / "root.key", "kept-in-the-safe")
    services.clock.advance(dt.timedelta(days=320))  # the root's yearly CRL within 60 days of its end
    told: list[list[tuple[str, str, str]]] = []
    for _ in range(2):  # the daily job, twice: the same matter told once
        with services.db.session() as s:
            maintain_pki(s, services)
            s.commit()
        told.append([k for k in _run(services) if k[0] == "pki.attention"])
        services.clock.advance(dt.timedelta(days=1))
    assert ("pki.attention", "email", "LCJT") in told[0] and told[1] == []
    [mail] = [m for m in smtp.mails if m["Subject"] == "【证书需处理】"]
    assert (
        "根证书的吊销列表需要重新发布" in mail.get_content() and "docsign pki refresh --root-key" in mail.get_content()
    )


def test_runs_at_the_same_time_as_other_writers_wait_their_turn_instead_of_failing(
    notified: Services, smtp: Mailbox, provider: Provider
) -> None:
    """The rules read much, then write their cursor and log. With requests and another run writing
    all the while (on SQLite a reader that then writes would meet "database is locked" at once),
    every run finishes and the first run's cursor is made once."""
    from service.audit.service import SYSTEM, record

    services = notified
    load_district(services)
    _contacts(services, provider)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        while not stop.is_set():
            with services.db.session() as s:
                record(s, SYSTEM, "test.write", "test", "1", services.clock.now())
                s.commit()

    def runner() -> None:
        try:
            for _ in range(3):
                _run(services)
        except BaseException as exc:  # the failure the test is about
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=runner), threading.Thread(target=runner)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(120)
    stop.set()
    threads[0].join(30)
    assert errors == []
