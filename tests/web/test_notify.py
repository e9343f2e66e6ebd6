"""The pages of notices: 催办 from the campaign's page, the delivery log with its resend."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from service.notify.models import Delivery
from tests.api.conftest import running_service, setup_licheng
from tests.api.test_notify import _campaign
from tests.notify.servers import Mailbox, Provider, provider, smtp

__all__ = ["provider", "smtp"]  # fixtures


def test_the_bureau_urges_from_the_campaign_page_and_reads_the_log(
    tmp_path: Path, smtp: Mailbox, provider: Provider
) -> None:
    with running_service(tmp_path, smtp_url=smtp.url, mail_from="kcbx@lcjt.example.cn") as service:
        c = service.client
        units = setup_licheng(service)
        service.login("bureau")
        assert (
            c.put(f"/api/units/{units['WSR-SH']}/contacts", json={"email": "shihe@school.example.cn"}).status_code
            == 200
        )
        # 辛甸小学's robot answers with an error: its message fails, and the bureau can resend it
        provider.answers["/cgi-bin/webhook/send"] = lambda r: (200, {"errcode": 93000, "errmsg": "invalid webhook url"})
        r = c.put(
            f"/api/units/{units['WSR-XD']}/contacts",
            json={"wecom_webhook": provider.url("/cgi-bin/webhook/send?key=xd")},
        )
        assert r.status_code == 200, r.text
        cid = _campaign(service)

        page = c.get(f"/campaigns/{cid}").text
        assert "催办所选单位" in page and f'name="unit_id" value="{units["WSR-SH"]}"' in page

        r = c.post(
            f"/campaigns/{cid}/urge",
            data={"unit_id": [str(units["WSR-SH"]), str(units["WSR-XD"])]},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == f"/campaigns/{cid}?urged=2"
        assert "已催办：2 条提醒正在发送" in c.get(r.headers["location"]).text

        end = time.monotonic() + 30
        while time.monotonic() < end and not smtp.mails:
            time.sleep(0.1)
        assert smtp.mails[-1]["Subject"] == "【催办】2024年控辍保学承诺书"

        # the robot's failure is retried with back-off until the attempts run out (moved on by the
        # clock; the service's own sending job may take a turn, or hold the message, meanwhile)
        for _ in range(40):
            service.clock.advance(dt.timedelta(hours=1))
            with service.state.db.session() as s:
                service.state.notify.send_due(s, s.commit)
                statuses = set(s.scalars(select(Delivery.status).where(Delivery.channel == "wecom")))
            if statuses == {"failed"}:
                break
        assert statuses == {"failed"}, statuses
        service.login("bureau")  # the hours moved on ended the session
        log = c.get(f"/notices?campaign_id={cid}").text
        assert "s***@school.example.cn" in log and "shihe@" not in log
        assert "已发送" in log and "发送失败" in log and "93000" in log
        assert "重发" in log

        failed = [d for d in c.get("/api/notify/deliveries?status=failed").json()]
        assert [d["channel"] for d in failed] == ["wecom"]
        del provider.answers["/cgi-bin/webhook/send"]
        r = c.post(f"/notices/{failed[0]['id']}/resend", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/notices?resent=1"
        # the resend queues it again at once; a job sends it
        end = time.monotonic() + 30
        while time.monotonic() < end and len(c.get("/api/notify/deliveries?status=sent").json()) < 2:
            time.sleep(0.1)
        assert [d["status"] for d in c.get("/api/notify/deliveries?status=sent").json()] == ["sent", "sent"]
        assert c.get("/api/notify/deliveries?status=failed").json() == []
        assert "已重新排队发送" in c.get("/notices?resent=1").text

        # a school sees its own log, and no resend
        service.login("wsr-xd-head")
        page = c.get("/notices").text
        assert "企业微信群机器人" in page and "重发" not in page and "石河小学" not in page


def test_a_units_contacts_are_set_on_its_page_and_shown_masked(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        service.login("bureau")
        sh = units["WSR-SH"]
        assert f'href="/units/{sh}/contacts"' in c.get("/units").text
        r = c.post(f"/units/{sh}/contacts", data={"mobile": "0531-88120001"})
        assert r.status_code == 422 and "11位中国大陆手机号" in r.text
        r = c.post(
            f"/units/{sh}/contacts",
            data={"email": "shihe@school.example.cn", "mobile": "13805310001", "channel": ["email", "sms"]},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == f"/units/{sh}/contacts?saved=1"
        page = c.get(r.headers["location"]).text
        assert "联系方式已保存" in page and "s***@school.example.cn" in page and "138****0001" in page
        assert "13805310001" not in page and "shihe@" not in page
        # empty fields keep what is stored; 清除 removes one
        c.post(f"/units/{sh}/contacts", data={"clear": ["mobile"], "channel": ["email"]})
        shown = c.get(f"/api/units/{sh}/contacts").json()
        assert (shown["email"], shown["mobile"], shown["channels"]) == ("s***@school.example.cn", None, ["email"])
        # a school sets its own; an office's staff may look but not change a school's
        service.login("wsr-sh-head")
        r = c.post(
            f"/units/{sh}/contacts", data={"wecom_webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}
        )
        assert r.status_code == 200 and "企业微信群机器人（qyapi.weixin.qq.com）" in r.text
        service.login("wsr-staff")
        r = c.post(f"/units/{sh}/contacts", data={"email": "x@y.cn"})
        assert r.status_code == 403 and "只有本单位或教体局工作人员可以修改联系方式" in r.text


def test_the_webhook_page_tests_a_subscription_and_replays_a_delivery(tmp_path: Path, provider: Provider) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        setup_licheng(service)
        service.login("bureau")
        r = c.post("/api/webhooks", json={"url": provider.url("/oa"), "events": ["document.issued"]})
        assert r.status_code == 201, r.text
        sub = r.json()
        assert "推送测试事件" in c.get("/webhooks").text
        r = c.post(f"/webhooks/{sub['id']}/test", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/webhooks?done=tested"
        page = c.get(r.headers["location"]).text
        assert "测试事件已推送" in page and "webhook.test" in page and "已发送" in page
        [delivery] = c.get("/api/webhooks/deliveries").json()
        r = c.post(f"/webhooks/deliveries/{delivery['id']}/replay", follow_redirects=False)
        assert r.status_code == 303 and "已重新排队推送" in c.get(r.headers["location"]).text
        with service.state.db.session() as s:
            service.state.notify.send_webhooks(s, s.commit)
        first, again = provider.at("/oa")
        assert first.headers["webhook-id"] == again.headers["webhook-id"] == delivery["message_id"]
        Webhook(sub["secret"]).verify(again.body, again.headers)
        service.login("wsr-sh-head")
        assert c.get("/webhooks").status_code == 403
