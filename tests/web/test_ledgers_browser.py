"""销号, the ledgers and the monthly report in the browser, on a phone: a school closes a case, sees
it leave the ledger, and generates, reviews and signs its monthly report; pages fit the screen."""

from __future__ import annotations

import re

from playwright.sync_api import Browser

from tests.web.conftest import (
    DESKTOP,
    PHONE,
    Server,
    Watch,
    context,
    csrf_headers,
    login,
    no_horizontal_scroll,
    shot,
)
from tests.web.test_browser import both_widths


def test_a_school_closes_a_case_on_a_phone_and_it_leaves_the_ledger(browser: Browser, server: Server) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "hjl-bx-head")
    page.goto(server.url + "/cases/new")
    page.fill("#student_name", "韩晓东")
    page.fill("#id_number", "370112201203072019")  # not a student other browser tests register
    page.fill("#birth_date", "2012-03-07")
    page.fill("#grade", "六年级")
    page.fill("#guardian_name", "韩大成")
    page.select_option("#guardian_relation", "父亲")
    page.fill("#guardian_phone", "13805310019")
    page.check("input[name=confirmed]")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/cases/\d+$"))
    case_url = page.url
    page.click("text=延缓入学/休学（已记录联合劝返 0 次）")
    page.select_option("#basis", "joint_persuasion")
    page.fill("#authority", "历城区人民政府")
    page.click("form[action$='/defer'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "满三次后才能以此为依据办理" in page.inner_text("form[action$='/defer'] .error")
    no_horizontal_scroll(page)
    shot(page, "case-close-error-phone")
    page.click("summary:text-is('已复学')")
    page.fill("#returned_note", "班主任家访后返校")
    page.click("form[action$='/returned'] button[type=submit]")
    page.wait_for_url(case_url)
    main = page.inner_text("main")
    assert "销号：已复学" in main and "班主任家访后返校" in main and "辍学→已复学" in main
    no_horizontal_scroll(page)
    shot(page, "case-closed-phone")

    page.goto(server.url + "/ledgers/dropouts")
    sections = page.locator("main section.card")
    assert "韩晓东" not in sections.nth(0).inner_text() and "韩晓东" in sections.nth(1).inner_text()
    no_horizontal_scroll(page)
    shot(page, "ledger-dropouts-phone")
    with page.expect_download() as download:
        page.click("text=导出 Excel")
    assert download.value.suggested_filename.endswith("辍学学生台账.xlsx")
    watch.clean()
    ctx.close()


def test_a_school_signs_its_monthly_report_on_a_phone(browser: Browser, server: Server) -> None:
    ctx = context(browser, DESKTOP)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "bureau")
    if "控辍保学动态管理月报" not in page.request.get(server.url + "/api/campaigns").text():
        r = page.request.post(
            server.url + "/api/campaigns",
            data={
                "name": "控辍保学动态管理月报",
                "year": 2026,
                "recurrence": "monthly",
                "due_day": 28,
                "kinds": ["report"],
            },
            headers=csrf_headers(page),
        )
        assert r.ok, r.text()
        job = page.request.post(f"{server.url}/api/campaigns/{r.json()['id']}/issue", headers=csrf_headers(page)).json()
        for _ in range(600):
            if page.request.get(f"{server.url}/api/jobs/{job['id']}").json()["status"] in ("done", "failed"):
                break
            page.wait_for_timeout(200)
    watch.clean()
    ctx.close()

    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "hjl-bx-head")
    page.goto(server.url + "/sign")
    page.click("text=核对数据生成的月报表并签章")
    page.wait_for_url(re.compile(r".*/monthly-reports/\d+$"))
    assert "新增疑似辍学（含失学）" in page.inner_text("main")
    no_horizontal_scroll(page)
    shot(page, "monthly-report-review-phone")
    page.dblclick("text=已核对，签章报送")  # a double tap signs once
    page.wait_for_selector("text=已签章报送，数据没有变化。", timeout=120_000)
    versions = page.locator("a:has-text('第 1 版')")
    assert versions.count() == 1 and page.locator("a:has-text('第 2 版')").count() == 0
    response = page.request.get(server.url + (versions.get_attribute("href") or ""))
    assert response.ok and response.body().startswith(b"%PDF")
    shot(page, "monthly-report-signed-phone")
    watch.clean()
    ctx.close()
    both_widths(browser, server, "bureau", "/ledgers", "ledgers")
    both_widths(browser, server, "bureau", "/deadlines", "deadlines")
    both_widths(browser, server, "bureau", "/monthly-reports", "monthly-summary")
    both_widths(browser, server, "bureau", "/district", "district")
