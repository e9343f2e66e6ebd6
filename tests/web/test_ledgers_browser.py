"""销号, the ledgers and the reports in the browser, on a phone: a school closes a case, sees it leave
the ledger, and generates, reviews and signs its monthly and its weekly report; the bureau's
dashboard shows the district's figures and the overdue list. Each test makes what it needs."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page

from tests.rosters.roster_data import resident_id
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
from tests.web.test_cases_browser import register_case


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
    page.select_option("form.export select[name=purpose]", "家访核查")  # an export says what it is for
    with page.expect_download() as download:
        page.click("text=导出 Excel")
    assert download.value.suggested_filename.endswith("辍学学生台账.xlsx")
    watch.clean()
    ctx.close()


def recurring_campaign(browser: Browser, server: Server, name: str, recurrence: str, due_day: int) -> None:
    """The bureau's recurring report campaign, made through the API unless it is there already."""
    ctx = context(browser, DESKTOP)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "bureau")
    if name not in page.request.get(server.url + "/api/campaigns").text():
        r = page.request.post(
            server.url + "/api/campaigns",
            data={"name": name, "year": 2026, "recurrence": recurrence, "due_day": due_day},
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


def sign_report(page: Page, server: Server, link: str) -> None:
    """From the school's list, review the report the link opens and sign it: a double tap signs
    once, and the first version is there as a PDF."""
    page.goto(server.url + "/sign")
    page.click(f"text={link}")
    page.wait_for_url(re.compile(r".*/(monthly|weekly)-reports/\d+$"))
    assert "未销号个案" in page.inner_text("main")
    no_horizontal_scroll(page)
    page.dblclick("text=已核对，签章报送")
    page.wait_for_selector("text=已签章报送，数据没有变化。", timeout=120_000)
    versions = page.locator("a:has-text('第 1 版')")
    assert versions.count() == 1 and page.locator("a:has-text('第 2 版')").count() == 0
    response = page.request.get(server.url + (versions.get_attribute("href") or ""))
    assert response.ok and response.body().startswith(b"%PDF")


def test_a_school_signs_its_monthly_report_on_a_phone(browser: Browser, server: Server) -> None:
    recurring_campaign(browser, server, "控辍保学动态管理月报", "monthly", 28)
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "hjl-bx-head")
    sign_report(page, server, "核对数据生成的月报表并签章")
    assert "新增疑似辍学（含失学）" in page.inner_text("main")
    shot(page, "monthly-report-signed-phone")
    watch.clean()
    ctx.close()
    both_widths(browser, server, "bureau", "/ledgers", "ledgers")
    both_widths(browser, server, "bureau", "/deadlines", "deadlines")
    both_widths(browser, server, "bureau", "/monthly-reports", "monthly-summary")


def test_a_school_signs_its_weekly_report_on_a_phone(browser: Browser, server: Server) -> None:
    recurring_campaign(browser, server, "辍学周报告", "weekly", 7)
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "dezx-head")
    page.goto(server.url + "/sign")
    assert "辍学周报告" in page.inner_text("main")
    sign_report(page, server, "核对数据生成的周报告并签章")
    main = page.inner_text("main")
    assert "辍学周报告" in main and "周末未销号个案" in main and "已签章版本" in main
    shot(page, "weekly-report-signed-phone")
    watch.clean()
    ctx.close()
    both_widths(browser, server, "bureau", "/weekly-reports", "weekly-summary")


def test_the_bureau_dashboard_shows_the_districts_figures_and_overdue_list(browser: Browser, server: Server) -> None:
    ctx = context(browser, DESKTOP)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    # A school registers a child who left school three weeks ago: the 复学通知书 is overdue.
    login(page, server, "syxx-head")
    left = (dt.date.today() - dt.timedelta(days=21)).isoformat()
    school_id = next(u["id"] for u in page.request.get(server.url + "/api/units").json() if u["code"] == "SYXX")
    r = page.request.post(
        server.url + "/api/cases",
        data={
            "student_name": "邵逾期",
            "id_number": "370112201203070574",  # not a student other browser tests register
            "sex": "男",
            "birth_date": "2012-03-07",
            "grade": "六年级",
            "confirmed": True,
            "dropout_date": left,
            "school_id": school_id,
            "guardians": [{"name": "邵大海", "relation": "父亲", "phone": "13805310057"}],
        },
        headers=csrf_headers(page),
    )
    assert r.status in (201, 409), r.text()  # 409: an earlier run on this server registered him
    ctx.close()

    ctx = context(browser, DESKTOP)
    page = watch.attach(ctx.new_page())
    login(page, server, "bureau")
    page.goto(server.url + "/district")
    total = page.inner_text("[data-total]")
    assert re.search(r"未销号个案\s*[1-9]\d*（", total), total
    row = page.locator(f"tr[data-school='{school_id}']")
    cells = row.locator("td")
    assert cells.nth(0).inner_text() == "济南市历城区实验小学"
    assert int(cells.nth(2).inner_text()) + int(cells.nth(3).inner_text()) >= 1  # 辍学 or 劝返中
    assert int(cells.nth(4).inner_text()) >= 1  # its overdue items
    overdue = page.locator("section.card", has_text="逾期事项").last
    assert "应向监护人送达《义务教育复学通知书》" in overdue.inner_text() and "邵逾期" in overdue.inner_text()
    overdue.locator("a", has_text="邵逾期").first.click()
    page.wait_for_url(re.compile(r".*/cases/\d+$"))
    assert "邵逾期" in page.inner_text("main")
    shot(page, "district-overdue-desktop")
    watch.clean()
    ctx.close()
    both_widths(browser, server, "bureau", "/district", "district")


def test_a_monthly_report_counts_late_entered_cases_by_their_days_on_a_phone(browser: Browser, server: Server) -> None:
    """Three children entered today: two whose events fall in last month (the month this month's
    report counts) and one who left today. The review lists the children behind each figure, and
    each figure is the number of its children, counted by the days of the events, not of the typing."""
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    if today.day > 28:
        pytest.skip("a monthly campaign made after its due day (28) opens its first report next month")
    month_end = today.replace(day=1) - dt.timedelta(days=1)  # the month this month's report counts
    day = month_end.replace
    recurring_campaign(browser, server, "控辍保学动态管理月报", "monthly", 28)
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-zx-head")  # a school no other browser test registers a case for
    # 卫小燕: 疑似辍学 since the 10th of last month, still open at its end
    register_case(page, server, "卫小燕", resident_id(234, born="20130923"), dropout_date=day(day=10), confirmed=False)
    # 沈小军: 辍学 since the 12th, a 家访 on the 20th, back at school on the 25th
    returned_url = register_case(page, server, "沈小军", resident_id(235, born="20130923"), dropout_date=day(day=12))
    page.fill("#date", day(day=20).isoformat())
    page.fill("#result", "家长同意送返")
    page.click("form[action$='/attempts'] button[type=submit]")
    page.wait_for_url(returned_url + "?done=attempt")
    page.click("summary:text-is('已复学')")
    page.fill("#back_on", day(day=25).isoformat())
    page.click("form[action$='/returned'] button[type=submit]")
    page.wait_for_url(returned_url)
    assert "销号：已复学" in page.inner_text("main")
    # 韦小山: left today, entered today: not last month's
    register_case(page, server, "韦小山", resident_id(237, born="20130923"))

    page.goto(server.url + "/sign")
    page.click("text=核对数据生成的月报表并签章")
    page.wait_for_url(re.compile(r".*/monthly-reports/\d+$"))
    main = page.inner_text("main")
    assert f"统计 {day(day=1)} 至 {month_end}" in main
    figures = page.evaluate(
        """() => [...document.querySelectorAll("dl.figures dd")].map(dd => ({
            title: dd.previousElementSibling.textContent.trim(),
            count: parseInt(dd.firstChild.textContent, 10),
            children: [...dd.querySelectorAll("details.behind li")].map(li => li.textContent.trim()),
        }))"""
    )
    for f in figures:
        assert f["count"] == len(f["children"]), f
    behind = {f["title"]: [c.split("　")[0] + " " + c.split("　")[2] for c in f["children"]] for f in figures}
    assert behind == {
        "新增疑似辍学（含失学）": [f"卫*燕 {day(day=10)}"],
        "新增辍学（核实确认）": [f"沈*军 {day(day=12)}"],
        "劝返复学": [f"沈*军 {day(day=25)}"],
        "核销": [],
        "延缓入学/休学": [],
        "劝返次数": [f"沈*军 {day(day=20)}"],
        "月末未销号个案": [f"卫*燕 {day(day=10)}"],
    }, behind
    assert "韦*山" not in page.content()
    # the list opens under its figure, on screen at 375 px
    page.click("details[data-figure=attempts] summary")
    assert page.locator("details[data-figure=attempts] li").first.is_visible()
    no_horizontal_scroll(page)
    shot(page, "monthly-report-late-entries-phone")
    watch.clean()
    ctx.close()
