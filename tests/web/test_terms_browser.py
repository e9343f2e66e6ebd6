"""The term's 学生失学辍学信息报告 in the browser: a term campaign made before the bureau enters the
开学日期 waits for it, and opens when it is entered; one made after opens at once. The schools then
have the report to review, and the bureau's summary has its period."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, Page

from tests.web.conftest import DESKTOP, PHONE, Server, Watch, context, login, no_horizontal_scroll, shot


def new_term_campaign(page: Page, server: Server, name: str, year: int) -> str:
    """The bureau's recurring campaign of the 信息报告, due 15 days after each term's start."""
    page.goto(server.url + "/campaigns/new")
    form = page.locator("form[action='/campaigns/new-recurring']")
    form.locator("#r_name").fill(name)
    form.locator("#r_year").fill(str(year))
    form.locator("#r_recurrence").select_option("term")
    form.locator("#r_due_day").fill("15")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    assert name in page.inner_text("h1") and "每学期开学后15日内报送" in page.inner_text("main")
    return page.url


def test_term_campaigns_made_before_and_after_the_start_date_open_the_term_report(
    browser: Browser, server: Server
) -> None:
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    opened = f"{today.year}年{today.month}月{today.day}日开学"
    ctx = context(browser, DESKTOP)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "bureau")
    page.goto(server.url + "/deadlines")
    assert "尚未设置开学日期" in page.inner_text("main")  # no other browser test enters a term
    page.goto(server.url + "/info-reports")
    assert "还没有信息报告报送任务。" in page.inner_text("main")

    # made before the 开学日期: it says what it waits for
    before = new_term_campaign(page, server, "本学期学生失学辍学信息报告（开学前建）", today.year)
    main = page.inner_text("main")
    assert "等待开学日期" in main and "还没有录入开学日期" in main, main
    page.goto(server.url + "/info-reports")
    assert "还没有信息报告报送任务。" in page.inner_text("main")

    # the bureau enters the term's start (today) on its 法定期限 page: the waiting campaign opens
    page.goto(server.url + "/deadlines")
    term = page.locator("form[action='/deadlines/terms']")
    term.locator("input[name=name]").fill(f"{today.year}年本学期")
    term.locator("input[name=starts_on]").fill(today.isoformat())
    term.locator("button[type=submit]").click()
    page.wait_for_url(server.url + "/deadlines")
    assert f"{today.year}年本学期：{today.isoformat()}" in page.inner_text("main")
    page.goto(before)
    main = page.inner_text("main")
    assert "等待开学日期" not in main and opened in main, main

    # made after: open at once
    new_term_campaign(page, server, "本学期学生失学辍学信息报告（开学后建）", today.year)
    main = page.inner_text("main")
    assert "等待开学日期" not in main and opened in main, main

    page.goto(server.url + "/info-reports")
    main = page.inner_text("main")
    assert "还没有信息报告报送任务" not in main, main
    assert f"{opened}后报送" in main and "未报送：" in main and "济南市历城区第二中学" in main
    shot(page, "info-summary-desktop")
    watch.clean()
    ctx.close()

    # a school has the term's report to review and sign, on a phone
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "hjl-xx-head")
    page.goto(server.url + "/sign")
    assert "核对数据生成的失学辍学信息报告并签章" in page.inner_text("main")
    no_horizontal_scroll(page)
    shot(page, "sign-list-info-report-phone")
    page.click("text=核对数据生成的失学辍学信息报告并签章")
    page.wait_for_url(re.compile(r".*/info-reports/\d+$"))
    assert page.inner_text("h1") == "学生失学辍学信息报告"
    assert "历城区洪家楼小学" in page.inner_text("main") and f"{opened}后报送" in page.inner_text("main")
    no_horizontal_scroll(page)
    shot(page, "info-report-phone")
    # both campaigns ask the school for the same report: signing it once files it for both
    page.dblclick("text=已核对，签章报送")
    page.wait_for_selector("text=已签章报送，数据没有变化。", timeout=120_000)
    page.goto(server.url + "/sign")
    reports = page.locator("section.card", has_text="学生失学辍学信息报告")
    assert reports.count() == 2 and reports.locator("a:text-is('查看或更正信息报告')").count() == 2
    assert page.locator("text=核对数据生成的失学辍学信息报告并签章").count() == 0
    watch.clean()
    ctx.close()
