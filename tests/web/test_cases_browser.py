"""Cases and rosters in the browser: row errors shown, good rows imported, notices issued with a
live progress bar, the print copy downloaded; forms keep what was typed."""

from __future__ import annotations

import datetime as dt
import re
import tempfile

from playwright.sync_api import Browser, Page
from sqlalchemy import select

from service.archive.models import Document
from service.db.session import Database
from service.rosters.models import RosterEntry
from service.storage import open_store
from tests import checks
from tests.rosters.roster_data import HEADER, resident_id, rows, xlsx
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
    page.wait_for_selector("button[formaction*='/print/']")
    assert "已签发 28 / 28" in page.inner_text("#live-stats")
    link = page.locator("button[formaction*='/print/']")
    assert link.count() == 1 and "28 份" in page.inner_text("main")
    response = page.request.get(server.url + (link.get_attribute("formaction") or ""), params={"purpose": "存档"})
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


def test_a_refused_form_stays_at_its_own_address_on_a_phone(browser: Browser, server: Server) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "hjl-zx-head")  # a school no other browser test records cases in
    page.goto(server.url + "/cases/new")
    page.fill("#student_name", "周小刚")
    page.fill("#id_number", resident_id(731, born="20120307"))
    page.fill("#birth_date", "2012-03-07")
    page.fill("#grade", "八年级")
    page.fill("#guardian_name", "周大刚")
    page.fill("#guardian_phone", "13805310731")
    page.select_option("#guardian_relation", "父亲")
    page.check("input[name=confirmed]")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/cases/\d+$"))
    case_url = page.url

    # a 劝返 record without its result: refused, the page at the case's address, the form as typed
    page.fill("#staff", "王丽娟（校长）")
    page.fill("#result", " ")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/attempts")):
        page.click("form[action$='/attempts'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("p.error[role=alert]").count() == 1
    assert page.input_value("#staff") == "王丽娟（校长）"
    assert page.url == case_url, page.url
    no_horizontal_scroll(page)

    # a reload opens the case page (a GET), it does not send the refused form again
    with page.expect_response(lambda r: r.request.is_navigation_request()) as reload:
        page.reload()
    assert reload.value.request.method == "GET" and reload.value.url == case_url
    assert "劝返记录（" not in page.inner_text("main") or "劝返记录（0 次）" in page.inner_text("main")
    watch.clean()
    ctx.close()


def register_case(
    page: Page,
    server: Server,
    name: str,
    id_number: str,
    *,
    dropout_date: dt.date | None = None,
    confirmed: bool = True,
) -> str:
    """A case registered through the new-case form by the school logged in; its page's address."""
    page.goto(server.url + "/cases/new")
    page.fill("#student_name", name)
    page.fill("#id_number", id_number)
    page.select_option("#sex", "男" if int(id_number[16]) % 2 else "女")
    page.fill("#birth_date", f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}")
    page.fill("#grade", "七年级")
    page.fill("#guardian_name", name[0] + "建华")
    page.select_option("#guardian_relation", "父亲")
    page.fill("#guardian_phone", "1380531" + id_number[-5:-1])
    if dropout_date is not None:
        page.fill("#dropout_date", dropout_date.isoformat())
    if confirmed:
        page.check("input[name=confirmed]")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/cases/\d+$"))
    return page.url


#: A 1x1 PNG, a one-page PDF and a few bytes of MP3: what a 劝返 record carries.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5b6f3c90000000049454e44ae426082"
)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 4


def test_a_persuasion_record_keeps_its_three_attachments_on_a_phone(browser: Browser, server: Server) -> None:
    """Three files with one 劝返 record on the embedded SQLite profile: each file is journaled apart
    from the request's transaction (once "database is locked"); all three are listed and download
    as sent, with their own type."""
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-xd-head")
    case_url = register_case(page, server, "冯小川", resident_id(231, born="20130923"))
    files = {
        "家访照片.png": ("image/png", PNG),
        "监护人承诺书.pdf": ("application/pdf", PDF),
        "通话录音.mp3": ("audio/mpeg", MP3),
    }
    page.fill("#staff", "钱红（校长）、班主任李梅")
    page.select_option("#method", "家访")
    page.fill("#result", "监护人承诺下周一送返")
    page.set_input_files("#attachments", [{"name": n, "mimeType": t, "buffer": data} for n, (t, data) in files.items()])
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/attempts")) as posted:
        page.click("form[action$='/attempts'] button[type=submit]")
    assert posted.value.status == 303, posted.value.text()[:500]
    page.wait_for_url(case_url + "?done=attempt")
    assert "已记录这次劝返。" in page.inner_text("main")
    assert "劝返记录（1 次）" in page.inner_text("main")
    links = page.locator("a[href*='/files/']")
    assert sorted(links.all_inner_texts()) == sorted(f"附件：{n}" for n in files)
    for link in links.all():
        name = link.inner_text().removeprefix("附件：")
        response = page.request.get(server.url + (link.get_attribute("href") or ""))
        media_type, data = files[name]
        assert response.ok and response.body() == data, name
        assert response.headers["content-type"] == media_type, response.headers
    no_horizontal_scroll(page)
    shot(page, "case-attempt-attachments-phone")
    watch.clean()
    ctx.close()


def test_a_write_off_keeps_both_evidence_files(browser: Browser, server: Server) -> None:
    """核销 with two files of evidence: the case closes as 核销 and both files are kept, listed under
    the 销号 (not the 劝返 record's photo) and opened from there as they were sent."""
    ctx = context(browser, DESKTOP)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-xd-head")
    case_url = register_case(page, server, "蒋小禾", resident_id(232, born="20130923"))
    # a 劝返 photo first: it stays with its 劝返 record, not among the 销号's material
    page.fill("#result", "家长称孩子户籍在外地重复登记")
    page.set_input_files("#attachments", [{"name": "家访照片.png", "mimeType": "image/png", "buffer": PNG}])
    page.click("form[action$='/attempts'] button[type=submit]")
    page.wait_for_url(case_url + "?done=attempt")
    files = {"户籍注销证明.pdf": ("application/pdf", PDF), "派出所证明照片.png": ("image/png", PNG)}
    page.click("summary:text-is('核销（非真实性失学辍学）')")
    page.select_option("#reason", "duplicate_registration")
    page.set_input_files("#evidence", [{"name": n, "mimeType": t, "buffer": data} for n, (t, data) in files.items()])
    page.fill("#write_off_note", "户籍已由派出所注销")
    page.click("form[action$='/write-off'] button[type=submit]")
    page.wait_for_url(case_url)
    main = page.inner_text("main")
    assert "核销" in page.inner_text("h1 .badge"), page.inner_text("h1")
    assert "销号：核销" in main and "户籍重复（含迁出未注销）" in main and "户籍已由派出所注销" in main
    closure = page.locator("section.card", has=page.locator("h2", has_text="销号：核销"))
    links = closure.locator("a[href*='/files/']")
    assert sorted(links.all_inner_texts()) == sorted(files)
    for link in links.all():
        response = page.request.get(server.url + (link.get_attribute("href") or ""))
        media_type, data = files[link.inner_text()]
        assert response.ok and response.body() == data and response.headers["content-type"] == media_type
    assert page.locator("form[action$='/write-off']").count() == 0  # closed: no more 销号 forms
    assert page.locator("a[href*='/files/']", has_text="附件：家访照片.png").count() == 1
    shot(page, "case-written-off-desktop")
    watch.clean()
    ctx.close()
