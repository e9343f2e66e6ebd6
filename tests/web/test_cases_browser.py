"""Cases and rosters in the browser: row errors shown, good rows imported, notices issued with a
live progress bar, the print copy downloaded; forms keep what was typed."""

from __future__ import annotations

import re
import tempfile

from playwright.sync_api import Browser
from sqlalchemy import select

from service.archive.models import Document
from service.archive.store import open_store
from service.cases.models import RosterEntry
from service.db.session import Database
from tests import checks
from tests.cases.roster_data import HEADER, rows, xlsx
from tests.web.conftest import DESKTOP, PHONE, Server, Watch, context, login, no_horizontal_scroll, shot
from tests.web.test_browser import both_widths, in_viewport, no_small_targets


def test_roster_import_issue_and_print_on_a_phone(browser: Browser, server: Server) -> None:
    data = [list(r) for r in rows(30, ["WSR-SH"], seed=5)]
    data[3][2] = str(data[3][2])[:17] + ("1" if str(data[3][2])[-1] != "1" else "2")  # bad checksum
    data[7][9] = ""  # no guardian
    with tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False) as f:
        f.write(xlsx(data, HEADER))
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-sh-head")
    page.goto(server.url + "/rosters")
    page.set_input_files("#file", f.name)
    page.click("main form[action='/rosters'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    errors = page.locator("table[aria-label='名单中的错误'] tbody tr")
    assert errors.count() == 2
    assert "第 5 行" in errors.nth(0).inner_text() and "校验码" in errors.nth(0).inner_text()
    assert "第 9 行" in errors.nth(1).inner_text() and "监护人" in errors.nth(1).inner_text()
    no_horizontal_scroll(page)
    shot(page, "roster-errors-phone")

    page.set_input_files("#file", f.name)
    page.check("input[name=only_valid]")
    page.click("main form[action='/rosters'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/rosters/\d+$"))
    assert "共 28 份" in page.inner_text("main") and "跳过 2 行" in page.inner_text("main")
    page.click("#job-slot button[type=submit]")
    page.wait_for_selector("text=已全部签发", timeout=180_000)
    # the print files and counts come in by themselves when the job ends, without a reload
    page.wait_for_selector("a[href*='/print/']")
    assert "已签发 28 / 28" in page.inner_text("#live-stats")
    link = page.locator("a[href*='/print/']")
    assert link.count() == 1 and "28 份" in page.inner_text("main")
    response = page.request.get(server.url + (link.get_attribute("href") or ""))
    assert response.ok and response.body().startswith(b"%PDF")
    no_horizontal_scroll(page)
    shot(page, "roster-issued-phone")
    watch.clean()
    ctx.close()

    # a parent confirms one of the notices on a phone: the answer is on screen, not above it
    roster_id = int(page.url.rsplit("/", 1)[1])
    db = Database(server.settings())
    with db.session() as s:
        entry = s.scalars(
            select(RosterEntry).where(RosterEntry.roster_id == roster_id, RosterEntry.document_id.is_not(None))
        ).first()
        assert entry is not None
        row = entry.row
        document = s.get(Document, entry.document_id)
        assert document is not None
        # once issued, the database keeps only the code's hash: read the code off the notice itself
        pdf = open_store(server.settings(), "documents").get(document.current_sha256)
    db.dispose()
    code = checks.docsign_code(pdf)
    assert code is not None
    phone = str(data[row - 2][HEADER.index("监护人电话")])
    ctx = context(browser, PHONE)
    watch = Watch()
    parent = watch.attach(ctx.new_page())
    parent.goto(f"{server.url}/v/{code}")
    parent.fill("#digits", phone[-4:])
    parent.click("#confirm-receipt")
    parent.wait_for_selector("#receipt-message")
    parent.wait_for_load_state("load")
    assert "感谢您确认已阅知" in parent.inner_text("#receipt-message")
    assert in_viewport(parent, "#receipt-message"), "the receipt's answer is outside the screen"
    no_small_targets(parent)
    shot(parent, "verify-confirmed-phone")
    watch.clean()
    ctx.close()


def test_case_forms_keep_what_was_typed(browser: Browser, server: Server) -> None:
    ctx = context(browser, DESKTOP)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-xd-head")
    page.goto(server.url + "/cases/new")
    page.fill("#student_name", "孙小明")
    page.fill("#id_number", "370112201203070014")
    page.fill("#birth_date", "2012-03-07")
    page.fill("#grade", "六年级")
    page.fill("#guardian_name", "孙大明")
    page.fill("#guardian_phone", "13805310009")
    page.select_option("#guardian_relation", "父亲")
    page.click("main button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "校验码不正确" in page.locator(".field.invalid .error").first.inner_text()
    assert page.input_value("#student_name") == "孙小明" and page.input_value("#guardian_phone") == "13805310009"
    page.fill("#id_number", "370112201203070013")
    page.check("input[name=confirmed]")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/cases/\d+$"))
    assert "辍学" in page.inner_text("h1") and "复学通知书" in page.inner_text("main")
    # a 劝返 attempt with no result: the error, and the form as typed
    page.fill("#staff", "钱红（校长）")
    page.fill("#result", " ")
    page.click("form[action$='/attempts'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.input_value("#staff") == "钱红（校长）"
    page.fill("#result", "家长同意送返")
    page.click("form[action$='/attempts'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "劝返记录（1 次）" in page.inner_text("main")
    shot(page, "case-desktop")
    case_url = page.url
    watch.clean()
    ctx.close()

    # the case page on a phone: every control labelled and at least 44 px
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-xd-head")
    page.goto(case_url)
    page.wait_for_load_state("networkidle")
    no_small_targets(page)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("main input:not([type=hidden]), main select, main textarea")]
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map(e => e.name)"""
    )
    assert not unlabelled, unlabelled
    no_horizontal_scroll(page)
    shot(page, "case-phone")
    watch.clean()
    ctx.close()


def test_case_and_roster_pages_at_both_widths(browser: Browser, server: Server) -> None:
    both_widths(browser, server, "wsr-xd-head", "/cases", "cases")
    both_widths(browser, server, "wsr-xd-head", "/cases/new", "case-new")
    both_widths(browser, server, "wsr-sh-head", "/rosters", "rosters")
    both_widths(browser, server, "bureau", "/cases", "cases-bureau")
