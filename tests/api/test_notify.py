"""Notices through the API: contacts set and shown masked, 催办 sent by its job and limited per unit,
the delivery log, refusals with their codes, webhook subscriptions."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from tests.api.conftest import Service, running_service, setup_licheng
from tests.notify.servers import Mailbox, Provider, provider, smtp

__all__ = ["provider", "smtp"]  # fixtures


def _wait_for(predicate: object, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    raise AssertionError("not reached in time")


def _campaign(service: Service) -> int:
    c = service.client
    deadline = (service.clock.now() + dt.timedelta(days=2)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    r = c.post(
        "/api/campaigns",
        json={
            "name": "2024年控辍保学承诺书",
            "year": 2024,
            "kinds": ["pledge"],
            "deadline": deadline.replace(tzinfo=None, microsecond=0).isoformat(),
            "issue_date": "2024-09-25",
        },
    )
    assert r.status_code == 201, r.text
    cid = int(r.json()["id"])
    job = service.wait_job(c.post(f"/api/campaigns/{cid}/issue").json()["id"])
    assert job["status"] == "done", job
    return cid


def test_urge_through_the_api(tmp_path: Path, smtp: Mailbox, provider: Provider) -> None:
    with running_service(tmp_path, smtp_url=smtp.url, mail_from="kcbx@lcjt.example.cn") as service:
        c = service.client
        units = setup_licheng(service)
        service.login("bureau")

        r = c.put(f"/api/units/{units['WSR-SH']}/contacts", json={"mobile": "0531-88120001"})
        assert r.status_code == 422 and r.json()["code"] == "NOTIFY_RECIPIENT_INVALID", r.text
        assert "11位" in r.json()["message"]
        r = c.put(f"/api/units/{units['WSR-SH']}/contacts", json={"email": "a@b.cn", "channels": ["fax"]})
        assert r.status_code == 422 and r.json()["code"] == "NOTIFY_UNKNOWN_CHANNEL"
        r = c.put(
            f"/api/units/{units['WSR-SH']}/contacts",
            json={"email": "shihe@school.example.cn", "mobile": "13805310001", "channels": ["email"]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["email"] == "s***@school.example.cn" and r.json()["mobile"] == "138****0001"
        assert c.get(f"/api/units/{units['WSR-SH']}/contacts").json()["mobile"] == "138****0001"

        cid = _campaign(service)
        r = c.post(f"/api/campaigns/{cid}/urge", json={"unit_ids": [units["WSR-SH"], units["WSR-XD"]]})
        assert r.status_code == 202, r.text
        # 石河小学 has an e-mail; 辛甸小学 no contact: recorded as not reachable
        assert [d["recipient"] for d in r.json()["deliveries"]] == ["s***@school.example.cn"]
        _wait_for(lambda: any(m["Subject"] == "【催办】2024年控辍保学承诺书" for m in smtp.mails))
        [mail] = [m for m in smtp.mails if m["Subject"] == "【催办】2024年控辍保学承诺书"]
        assert mail["To"] == "shihe@school.example.cn"
        assert "https://kcbx.example.edu.cn/sign/" in mail.get_content()

        r = c.post(f"/api/campaigns/{cid}/urge", json={"unit_ids": [units["WSR-SH"]]})
        assert r.status_code == 429 and r.json()["code"] == "NOTIFY_URGED_TOO_OFTEN"
        r = c.post(f"/api/campaigns/{cid}/urge", json={"unit_ids": [units["LCJT"]]})
        assert r.status_code == 422 and r.json()["code"] == "NOTIFY_NOTHING_TO_URGE"

        _wait_for(lambda: c.get("/api/notify/deliveries?status=sent").json() != [])
        log = c.get(f"/api/notify/deliveries?campaign_id={cid}").json()
        by_unit = {d["unit"]: d for d in log if d["kind"] == "campaign.urge"}
        assert by_unit["历城区王舍人街道石河小学"]["status"] == "sent"
        assert by_unit["历城区王舍人街道辛甸小学"]["status_title"] == "发送失败"
        assert "13805310001" not in str(log) and "shihe@" not in str(log)
        metrics = c.get("/metrics").text  # the operator's dashboard counts messages by channel
        assert 'docsign_notify_deliveries{channel="email",status="sent"}' in metrics
        assert "shihe@" not in metrics

        # a school sees its own messages only, and may not urge
        service.login("wsr-sh-head")
        assert {d["unit"] for d in c.get("/api/notify/deliveries").json()} == {"历城区王舍人街道石河小学"}
        r = c.post(f"/api/campaigns/{cid}/urge", json={"unit_ids": [units["WSR-SH"]]})
        assert r.status_code == 403, r.text


def test_webhook_subscriptions_through_the_api(tmp_path: Path, provider: Provider) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        setup_licheng(service)
        service.login("bureau")
        r = c.post("/api/webhooks", json={"url": provider.url("/oa"), "events": ["document.teleported"]})
        assert r.status_code == 422 and r.json()["code"] == "WEBHOOK_INVALID"
        for odd in ("http://[::1", "ftp://oa.example.cn/x", "http://oa.example.cn:70000/x"):
            r = c.post("/api/webhooks", json={"url": odd, "events": ["document.signed"]})
            assert r.status_code == 422 and r.json()["code"] == "WEBHOOK_INVALID", (odd, r.text)
        r = c.post("/api/webhooks", json={"url": provider.url("/oa"), "events": ["document.signed"]})
        assert r.status_code == 201, r.text
        assert r.json()["secret"].startswith("whsec_")
        [listed] = c.get("/api/webhooks").json()
        assert listed["secret"] is None and listed["events"] == ["document.signed"]
        secret = r.json()["secret"]
        tested = c.post(f"/api/webhooks/{listed['id']}/test").json()
        assert tested["status"] == "sent" and tested["event"] == "webhook.test", tested
        [request] = provider.at("/oa")
        assert Webhook(secret).verify(request.body, request.headers)["type"] == "webhook.test"
        provider.answers["/oa"] = lambda r: (500, {"error": "down"})
        tested = c.post(f"/api/webhooks/{listed['id']}/test").json()
        assert tested["status"] == "failed" and tested["answer"].startswith("HTTP 500")  # a test is not retried
        assert [d["event"] for d in c.get("/api/webhooks/deliveries").json()] == ["webhook.test", "webhook.test"]
        service.login("wsr-sh-head")
        r = c.post("/api/webhooks", json={"url": provider.url("/oa"), "events": ["document.signed"]})
        assert r.status_code == 403
        assert c.get("/api/webhooks").json() == []
