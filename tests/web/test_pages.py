"""The login form, without a browser: it shares its checks with the API's login."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import func, select

from service.audit.models import AuditEvent
from service.http.deps import SESSION_COOKIE
from tests.api.conftest import PASSWORD, bootstrap_bureau, running_service, setup_licheng


def test_login_form_says_what_is_wrong_next_to_the_field_and_signs_in(tmp_path: Path) -> None:
    with running_service(tmp_path, login_rate_per_minute=2) as service:
        bootstrap_bureau(service)
        c = service.client
        r = c.post("/login", data={"username": "bureau", "password": "wrong-password", "next": "/campaigns"})
        assert r.status_code == 200 and "用户名或密码错误，请重新输入。" in r.text
        assert 'value="bureau"' in r.text  # what was typed is kept
        assert SESSION_COOKIE not in c.cookies
        with service.state.db.session() as s:
            failures = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "auth.login_failed")
            assert s.scalar(failures) == 1

        r = c.post(
            "/login", data={"username": "bureau", "password": PASSWORD, "next": "/campaigns"}, follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"] == "/campaigns"
        assert SESSION_COOKIE in c.cookies
        c.cookies.clear()

        r = c.post("/login", data={"username": "bureau", "password": PASSWORD})  # the third this minute
        assert r.status_code == 200 and "登录尝试过于频繁" in r.text
        assert SESSION_COOKIE not in c.cookies


def test_bureau_starts_a_weekly_report_from_the_campaign_page(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        service.login("bureau")
        c = service.client
        form = {"name": "控辍保学辍学周报告", "year": "2026", "recurrence": "weekly", "due_day": "9"}
        r = c.post("/campaigns/new-recurring", data=form)
        assert r.status_code == 200 and "每周报送请填 1（周一）到 7（周日）" in r.text
        assert 'value="控辍保学辍学周报告"' in r.text  # what was typed is kept
        r = c.post("/campaigns/new-recurring", data={**form, "recurrence": "yearly", "due_day": "3"})
        assert "请选择每月报送或每周报送。" in r.text
        assert c.get("/api/campaigns").json() == []  # nothing made by the bad forms

        r = c.post("/campaigns/new-recurring", data={**form, "due_day": "3"}, follow_redirects=False)
        assert r.status_code == 303
        (campaign,) = c.get("/api/campaigns").json()
        assert r.headers["location"] == f"/campaigns/{campaign['id']}"
        assert campaign["recurrence"] == "weekly" and campaign["due_day"] == 3 and campaign["status"] == "issued"
        # From Thursday on, the first week to report is the next one: it opens on its Monday.
        monday = dt.datetime.fromisoformat(campaign["deadline"]) - dt.timedelta(days=2, hours=15)
        if monday > service.clock.now():
            service.clock.advance(monday - service.clock.now())
            service.login("bureau")
        status = c.get(f"/api/campaigns/{campaign['id']}/status").json()
        assert status["total"] == 10 and status["pending"] == 10  # every office and school, this week
        page = c.get(r.headers["location"]).text
        assert "（每周三前报送）" in page and "周报" in page


def test_a_school_files_its_weekly_report_on_its_page(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        service.login("bureau")
        c = service.client
        form = {"name": "控辍保学辍学周报告", "year": "2026", "recurrence": "weekly", "due_day": "3"}
        assert c.post("/campaigns/new-recurring", data=form, follow_redirects=False).status_code == 303
        (campaign,) = c.get("/api/campaigns").json()
        monday = dt.datetime.fromisoformat(campaign["deadline"]) - dt.timedelta(days=2, hours=15)
        if monday > service.clock.now():
            service.clock.advance(monday - service.clock.now())

        service.login("wsr-sh-head")
        page = c.get("/sign").text
        assert "报表报送" in page and "周报" in page and "待报送" in page
        (mine,) = [a for a in c.get("/api/assignments").json() if a["kind"] == "weekly_report"]
        r = c.post(f"/reports/{mine['id']}", files={"file": ("周报.txt", b"not a report")})
        assert r.status_code == 200 and "报表应为 PDF 或 Excel（.xlsx）文件。" in r.text
        r = c.post(
            f"/reports/{mine['id']}", files={"file": ("周报.xlsx", b"PK\x03\x04 weekly")}, follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"] == "/sign"
        page = c.get("/sign").text
        assert "已报送（按时）" in page and f'action="/reports/{mine["id"]}"' not in page
        r = c.post(f"/reports/{mine['id']}", files={"file": ("again.pdf", b"%PDF-1.7")})
        assert "本期报表已经报送。" in r.text

        service.login("wsr-xd-head")  # another school's report answers 404
        assert c.post(f"/reports/{mine['id']}", files={"file": ("x.pdf", b"%PDF-1.7")}).status_code == 404


def test_a_signer_turns_on_the_second_factor_from_the_pages(tmp_path: Path) -> None:
    import pyotp

    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        html = {"accept": "text/html"}
        assert "开通动态口令" in c.get("/account/totp", headers=html).text
        page = c.post("/account/totp", headers=html).text
        uri = re.search(r"otpauth://[^<\s]+", page)
        assert uri is not None
        totp = pyotp.parse_uri(uri.group(0).replace("&amp;", "&"))
        wrong = c.post("/account/totp/confirm", data={"code": "12345x"}, headers=html)
        assert wrong.status_code == 422 and "动态口令不正确" in wrong.text and "otpauth://" in wrong.text
        done = c.post("/account/totp/confirm", data={"code": totp.at(service.clock.now())}, headers=html)
        assert done.status_code == 200 and "恢复码" in done.text
        assert len(re.findall(r"[0-9a-f]{6}-[0-9a-f]{6}", done.text)) == 10
        c.cookies.clear()
        r = c.post("/api/auth/login", json={"username": "wsr-sh-head", "password": PASSWORD})
        assert r.status_code == 401 and r.json()["code"] == "TOTP_REQUIRED"
