"""The audit administrator's page (/audit): the audit log and the access log, filtered, in Beijing
time, paged, with an export link; refused to everyone else; linked from the audit administrator's
navigation only; readable on a 375 px phone."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from playwright.sync_api import Browser
from sqlalchemy import select

from service.accounts.models import User
from tests.api.conftest import running_service, setup_licheng
from tests.web.conftest import PHONE, Server, Watch, context, login, no_horizontal_scroll, shot

HTML = {"accept": "text/html"}


def test_the_audit_page_filters_the_logs_and_is_the_audit_administrators_alone(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        with service.state.db.session() as s:
            head_id = s.scalars(select(User.id).where(User.username == "wsr-sh-head")).one()
        service.login("bureau")
        assert 'href="/audit"' not in c.get("/dashboard", headers=HTML).text  # not in another's navigation
        assert c.post(f"/api/users/{head_id}/reset-password").status_code == 403  # a refusal to find
        service.login("wsr-sh-head")
        assert c.get("/api/cases").status_code == 200  # a read of children's data
        service.state.access.flush()

        # everyone else is refused the page and the export, in Chinese
        for username in ("bureau", "sysadmin", "secadmin", "wsr-sh-head"):
            service.login(username)
            for url in ("/audit", "/audit/export.xlsx"):
                r = c.get(url, headers=HTML)
                assert r.status_code == 403 and "只有审计管理员" in r.text, (username, url, r.status_code)

        service.login("auditor")
        home = c.get("/", headers=HTML)
        assert home.url.path == "/audit" and 'href="/audit"' in home.text  # sent there, and in the navigation
        page = home.text
        assert "审计日志" in page and "访问日志" in page and 'data-label="时间"' in page
        # times are Beijing's
        beijing = service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d")
        assert re.search(rf"<td data-label=\"时间\">{beijing} \d\d:\d\d:\d\d</td>", page)
        # the refusal, with its reason, by the quick filter
        denied = c.get("/audit", params={"action": "access.denied"}, headers=HTML).text
        assert "拒绝访问" in denied and "只有安全管理员可以重置账号。" in denied and "韩玮玮" in denied
        # (and the eight refusals of the page and its export above)
        assert denied.count('<td data-label="时间">') == 9 and denied.count("只有审计管理员") == 8
        # by person and unit: the office's clerk's logins
        office = c.get(
            "/audit", params={"person": "WSR办事员", "unit_id": units["WSR"], "action": "auth."}, headers=HTML
        ).text
        assert "登录" in office and "历城区王舍人街道教育办公室" in office and "韩玮玮" not in office
        assert f'<option value="{units["WSR"]}" selected>' in office  # the form keeps what was asked
        # the export link carries the filter
        link = re.search(r'href="(/audit/export\.xlsx\?[^"]+)"', office)
        assert link is not None and "person=" in link.group(1) and "action=auth." in link.group(1)
        assert c.get(link.group(1).replace("&amp;", "&")).status_code == 200
        # the access log's tab: the school's read of its case list
        reads = c.get("/audit", params={"log": "access", "person": "wsr-sh-head"}, headers=HTML).text
        assert "个案列表" in reads and "GET /api/cases" in reads and "单位负责人（签署人）" in reads
        # nothing found, and a bad date explained
        empty = c.get("/audit", params={"person": "nobody-at-all"}, headers=HTML).text
        assert "没有符合条件的记录" in empty
        bad = c.get("/audit", params={"from": "2026-02-30"}, headers=HTML)
        assert bad.status_code == 422 and "起始时间应写成" in bad.text


def test_the_audit_page_pages_through_the_log(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        setup_licheng(service)
        for _ in range(60):  # with the district's own, more logins than a page holds
            service.login("hjl-staff")
        service.login("auditor")
        first = c.get("/audit", params={"action": "auth.login"}, headers=HTML).text
        assert first.count('<td data-label="时间">') == 50 and "下一页" in first and "上一页" not in first
        more = re.search(r'href="(\?[^"]*page=2[^"]*)"', first)
        assert more is not None
        second = c.get("/audit" + more.group(1).replace("&amp;", "&"), headers=HTML).text
        assert "上一页" in second and 0 < second.count('<td data-label="时间">') < 50
        assert "第 2/2 页" in second


def test_the_audit_page_reads_on_a_phone(browser: Browser, server: Server) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "auditor")
    page.goto(server.url + "/audit")
    page.wait_for_load_state("networkidle")
    assert page.locator("header nav a[href='/audit']").is_visible()
    page.fill("#action", "auth.")
    page.click("form[action='/audit'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "action=auth." in page.url and page.locator("td[data-label='操作']").first.is_visible()
    no_horizontal_scroll(page)
    shot(page, "audit-phone")
    page.click("nav.tabs a:has-text('访问日志')")
    page.wait_for_load_state("networkidle")
    assert "log=access" in page.url
    no_horizontal_scroll(page)
    watch.clean()
    ctx.close()
