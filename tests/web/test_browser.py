"""The whole Licheng campaign in a real browser: the bureau on a desktop, a principal on a phone,
the office forwarding, a parent verifying a notice from its QR code.

Each page is photographed at desktop and phone width (test-artifacts/screenshots/), must not scroll
sideways at 375 px, and must log no console error and no failed request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from service.archive.service import record_issued
from service.db.session import Database
from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.units.models import Unit
from tests import checks
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


def both_widths(browser: Browser, server: Server, username: str | None, path: str, name: str) -> None:
    """Open a page at desktop and phone width: photograph it, no sideways scroll, no errors."""
    for label, device in (("desktop", DESKTOP), ("phone", PHONE)):
        ctx = context(browser, device)
        watch = Watch()
        page = watch.attach(ctx.new_page())
        if username:
            login(page, server, username)
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle")
        shot(page, f"{name}-{label}")
        if label == "phone":
            no_horizontal_scroll(page)
            no_small_targets(page)
        watch.clean()
        ctx.close()


def draw_signature(page: Page) -> None:
    pad = page.locator("#pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box is not None
    x, y = box["x"], box["y"]
    page.mouse.move(x + 30, y + 120)
    page.mouse.down()
    for i, (dx, dy) in enumerate([(60, 40), (90, 130), (130, 50), (170, 140), (210, 60), (260, 120), (300, 70)]):
        page.mouse.move(x + dx, y + dy, steps=6 + i)
    page.mouse.up()


@pytest.fixture(scope="module")
def campaign_id(browser: Browser, server: Server) -> int:
    """The bureau creates and issues the campaign on a desktop."""
    ctx = context(browser, DESKTOP)
    watch = Watch()
    page = watch.attach(ctx.new_page())

    # a wrong password: the error sits next to the field and the username stays
    page.goto(server.url + "/login")
    page.fill("#username", "bureau")
    page.fill("#password", "wrong-password")
    page.click("main button[type=submit]")
    assert page.locator(".field.invalid .error").inner_text() == "用户名或密码错误，请重新输入。"
    assert page.input_value("#username") == "bureau"
    # signed in, the holder is first told of that failure, then goes on
    page.fill("#password", "kcbx-demo-2024")
    page.click("main button[type=submit]")
    assert "1 次登录失败" in page.locator("main .notice").inner_text()
    page.click("text=我已知晓，继续")
    page.wait_for_url(re.compile(r".*/dashboard$"))

    page.goto(server.url + "/campaigns/new")
    page.fill("#name", "2024年控辍保学目标责任书与承诺书")
    page.fill("#deadline_date", "2020-09-29")
    page.click("main button[type=submit]")
    error = page.locator(".field.invalid .error")
    assert "已经过去" in error.inner_text()
    assert page.input_value("#name") == "2024年控辍保学目标责任书与承诺书"  # kept
    shot(page, "campaign-new-error-desktop")
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    page.fill("#deadline_date", tomorrow.date().isoformat())
    page.fill("#deadline_time", "16:00")
    page.fill("#issue_date", "2024-09-25")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    cid = int(page.url.rsplit("/", 1)[1])
    assert "将向 10 个单位下发 12 份文书" in page.inner_text("main")

    # preview one filled document before issuing
    preview = page.request.get(server.url + page.get_attribute("a[href$='/preview/pledge.pdf']", "href"))  # type: ignore[operator]
    assert preview.ok and preview.body().startswith(b"%PDF")
    assert "历城区" in checks.pdftotext(preview.body())

    # issue, with a double click: one job, twelve documents
    page.dblclick("#job-slot button[type=submit]")
    page.wait_for_selector("text=已下发 12 份文书", timeout=180_000)
    # the progress below comes in by itself when the job ends, without a reload
    page.wait_for_selector("#counts")
    assert "已签 0 / 12" in page.inner_text("#counts") and "待签 12" in page.inner_text("#counts")
    assert page.locator(".chart svg").count() == 1
    shot(page, "campaign-issued-desktop")
    status = page.request.get(f"{server.url}/api/campaigns/{cid}/status").json()
    assert status["total"] == 12
    watch.clean()
    ctx.close()
    return cid


def test_principal_signs_on_a_phone(browser: Browser, server: Server, campaign_id: int) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-sh-head")
    assert page.url.endswith("/sign")
    page.click("text=控辍保学承诺书")
    page.wait_for_selector(".page img")
    page.wait_for_load_state("networkidle")
    assert page.locator(".page .slot").count() == 1  # where seal and signature land
    assert "待签署" in page.inner_text("#state")
    no_horizontal_scroll(page)
    shot(page, "sign-to-sign-phone")

    # confirming without a signature: the error sits next to the pad
    page.check("input[name=confirm]")
    page.click("#sign-submit")
    page.wait_for_load_state("networkidle")
    assert page.locator(".field.invalid .error").first.inner_text() == "请先在签名框中写下您的签名。"

    draw_signature(page)
    page.check("input[name=confirm]")
    page.dblclick("#sign-submit")  # a double tap signs once
    page.wait_for_selector("#download")
    page.wait_for_load_state("networkidle")
    assert "按时" in page.inner_text("#state")
    no_horizontal_scroll(page)
    shot(page, "sign-signed-phone")
    with page.expect_download() as download:
        page.click("#download")
    pdf = Path(download.value.path()).read_bytes()
    nss = _nss(server)
    report = checks.pdfsig(pdf, nss)
    assert report.count("Signature is Valid.") == 2 and report.count("Certificate is Trusted.") == 2, report
    doc_id = int(re.search(r"/documents/(\d+)/", page.get_attribute("#download", "href") or "").group(1))  # type: ignore[union-attr]
    versions = page.request.get(f"{server.url}/api/documents/{doc_id}").json()["versions"]
    assert [v["event"] for v in versions] == ["issued", "signed"]
    watch.clean()
    ctx.close()


INK = """() => { const c = document.getElementById("pad"), g = c.getContext("2d");
                   const d = g.getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""


def _own_assignment(page: Page, server: Server, campaign_id: int) -> int:
    mine = [a for a in page.request.get(f"{server.url}/api/assignments").json() if a["campaign_id"] == campaign_id]
    assert len(mine) == 1, mine
    return int(mine[0]["id"])


def test_a_forgotten_box_keeps_the_drawn_signature_on_a_phone(
    browser: Browser, server: Server, campaign_id: int
) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-zx-head")  # a school no other test signs for
    page.goto(f"{server.url}/sign/{_own_assignment(page, server, campaign_id)}")
    page.wait_for_function("() => window.SignaturePad !== undefined")
    page.wait_for_load_state("networkidle")

    # drawn, box not ticked: asked on the page, nothing sent, the drawing stays
    draw_signature(page)
    drawn = page.evaluate(INK)
    assert drawn > 500
    page.click("#sign-submit")
    error = page.locator("#signing .field.checks.invalid .error")
    error.wait_for()
    assert error.inner_text() == "请勾选确认后再签署。"
    assert in_viewport(page, "#signing .field.checks.invalid .error")
    assert page.evaluate(INK) == drawn
    assert "待签署" in page.inner_text("#state")
    page.check("input[name=confirm]")
    assert page.locator("#signing .field.checks.invalid").count() == 0
    page.uncheck("input[name=confirm]")

    # the same form sent without the page's check (an old page, no script): the server refuses it
    # and the page it sends back draws the signature again
    page.evaluate("""() => HTMLFormElement.prototype.submit.call(document.getElementById("sign-form"))""")
    page.wait_for_load_state("networkidle")
    assert page.locator(".field.checks.invalid .error").inner_text() == "请勾选确认后再签署。"
    page.wait_for_function("() => window.SignaturePad !== undefined")
    page.wait_for_function(INK.replace("return n; }", "return n > 500; }"))
    shot(page, "sign-box-forgotten-phone")

    # ticked now: the signature given back is the one signed
    page.check("input[name=confirm]")
    page.click("#sign-submit")
    page.wait_for_selector("#download")
    assert "按时" in page.inner_text("#state")
    watch.clean()
    ctx.close()


def test_the_document_reads_larger_on_a_phone(browser: Browser, server: Server, campaign_id: int) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "hjl-bx-head")
    page.goto(f"{server.url}/sign/{_own_assignment(page, server, campaign_id)}")
    page.wait_for_selector(".page img")
    page.wait_for_load_state("networkidle")
    small = page.evaluate("() => document.querySelector('.page img').getBoundingClientRect().width")
    assert small < 380  # the whole A4 width in a phone's: body text ~9 px

    # 放大查看: the pages at twice and more the width, scrolled in their own box, not the page
    page.click("#zoom-in")
    page.wait_for_selector(".pages.zoomed .page img")
    page.wait_for_load_state("networkidle")
    large = page.evaluate("() => document.querySelector('.page img').getBoundingClientRect().width")
    assert large >= 2.3 * small, (small, large)
    assert page.evaluate(
        "() => document.querySelector('.pages').scrollWidth > document.querySelector('.pages').clientWidth"
    )
    no_horizontal_scroll(page)
    no_small_targets(page)
    assert page.locator("#pad").count() == 1  # still the signing page
    shot(page, "sign-zoomed-phone")
    page.click("#zoom-out")
    page.wait_for_selector(".pages:not(.zoomed) .page img")

    # 打开 PDF: the document itself, shown in the browser's (the phone's) own viewer
    href = page.get_attribute("#open-pdf", "href")
    assert href is not None
    pdf = page.request.get(server.url + href)
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline;")
    assert "控辍保学承诺书" in checks.pdftotext(pdf.body())
    watch.clean()
    ctx.close()


def test_the_preview_box_goes_once_issued_on_a_phone(browser: Browser, server: Server) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "bureau")
    # its own campaign, to the two offices only (no school's list of pledges changes)
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    made = page.request.post(
        f"{server.url}/api/campaigns",
        data={
            "name": "教育办控辍保学目标责任书（预览测试）",
            "year": 2026,
            "kinds": ["responsibility_office"],
            "deadline": deadline.replace(tzinfo=None, microsecond=0).isoformat(),
        },
        headers=csrf_headers(page),
    )
    assert made.ok, made.text()
    page.goto(f"{server.url}/campaigns/{made.json()['id']}")
    assert page.locator("#issue-preview h2").inner_text() == "下发前预览"
    page.click("#job-slot button[type=submit]")
    page.wait_for_selector("text=已下发 2 份文书", timeout=180_000)
    page.wait_for_selector("#counts")
    assert page.locator("#issue-preview").count() == 0 and "下发前预览" not in page.inner_text("main")
    assert "预览一份" not in page.inner_text("main")
    no_horizontal_scroll(page)
    shot(page, "campaign-issued-phone")
    watch.clean()
    ctx.close()


SMALL_TARGETS = """() => {
  const small = [];
  const seen = new Set();
  for (const el of document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea, canvas")) {
    // a checkbox is tapped through its label
    const target = (el.type === "checkbox" || el.type === "radio") && el.closest("label") ? el.closest("label") : el;
    if (seen.has(target)) continue;
    seen.add(target);
    const box = target.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;  // not shown
    if (box.width < 43.5 || box.height < 43.5)
      small.push(`${target.tagName.toLowerCase()} "${(target.innerText || target.name || target.id || "").trim().slice(0, 20)}" ${Math.round(box.width)}×${Math.round(box.height)}`);
  }
  return small;
}"""


def no_small_targets(page: Page) -> None:
    small = page.evaluate(SMALL_TARGETS)
    assert not small, f"tap targets under 44 px on {page.url}: {small}"


def in_viewport(page: Page, selector: str) -> bool:
    return bool(
        page.evaluate(
            """s => { const b = document.querySelector(s).getBoundingClientRect();
                      return b.top >= 0 && b.bottom <= window.innerHeight && b.height > 0; }""",
            selector,
        )
    )


def test_a_tap_is_not_a_signature_and_errors_come_into_view_on_a_phone(
    browser: Browser, server: Server, campaign_id: int
) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-xd-head")
    page.click("text=控辍保学承诺书")
    page.wait_for_selector(".page img")
    page.wait_for_load_state("networkidle")
    no_small_targets(page)
    # the seal area is named above the pages: no label lies over the document's text
    assert page.locator(".page .slot").count() == 1 and page.inner_text(".page .slot") == ""
    legend, first_page = page.locator("#slot-legend").bounding_box(), page.locator(".page").first.bounding_box()
    assert legend is not None and first_page is not None and legend["y"] + legend["height"] <= first_page["y"]
    assert page.locator(".page").evaluate_all("ps => ps.every(p => p.innerText.trim() === '')")

    # submitted without a signature: after the reload the error is on screen, not far below
    page.check("input[name=confirm]")
    page.click("#sign-submit")
    page.wait_for_load_state("networkidle")
    assert page.locator(".field.invalid .error").first.inner_text() == "请先在签名框中写下您的签名。"
    assert in_viewport(page, ".field.invalid .error"), "the error is outside the screen"
    shot(page, "sign-error-phone")

    # one tap on the pad: refused on the page, with the reason next to the pad
    page.wait_for_function("() => window.SignaturePad !== undefined")
    box = page.locator("#pad").bounding_box()
    assert box is not None
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.check("input[name=confirm]")
    page.click("#sign-submit")
    error = page.locator("#signing .field.invalid .error")
    error.wait_for()
    assert "签名太短" in error.inner_text() and in_viewport(page, "#signing .field.invalid .error")
    assert "待签署" in page.inner_text("#state")  # nothing was sent

    # the same tap sent without the page's check (an old page, a script): the server refuses it
    with page.expect_navigation():  # wait for the page the server sends back, not the one sending
        page.evaluate(
            """() => { const c = document.createElement("canvas"); c.width = 686; c.height = 360;
                       const g = c.getContext("2d"); g.beginPath(); g.arc(300, 180, 4.4, 0, 7); g.fill();
                       const f = document.getElementById("sign-form");
                       f.querySelector("[name=signature_png]").value = c.toDataURL("image/png");
                       HTMLFormElement.prototype.submit.call(f); }"""
        )
    page.wait_for_load_state("networkidle")
    assert "签名太短" in page.locator(".field.invalid .error").first.inner_text()
    assert in_viewport(page, ".field.invalid .error")
    assert "待签署" in page.inner_text("#state")
    shot(page, "sign-tap-refused-phone")
    watch.clean()
    ctx.close()


def test_the_office_opens_a_pledge_before_forwarding_it(browser: Browser, server: Server, campaign_id: int) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "wsr-staff")
    card = page.locator(f"[data-campaign='{campaign_id}']")
    card.locator("a", has_text="控辍保学承诺书").first.click()
    page.wait_for_url(re.compile(r".*/sign/\d+$"))
    page.wait_for_selector(".page img")
    page.wait_for_load_state("networkidle")
    assert page.locator("#pad").count() == 0  # an office reads, it does not sign
    assert page.evaluate("() => document.querySelector('.page img').naturalWidth") > 0
    assert page.locator("#download, #download-unsigned").count() == 1
    no_horizontal_scroll(page)
    no_small_targets(page)
    shot(page, "office-opens-pledge-phone")
    watch.clean()
    ctx.close()


def test_verify_page_tap_targets_and_code_hint_on_a_phone(browser: Browser, server: Server) -> None:
    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    page.goto(server.url + "/v")
    no_small_targets(page)
    # the example in the box is not cut off at 375 px
    fits = page.evaluate(
        """() => { const i = document.getElementById("code"), s = getComputedStyle(i);
                   const g = document.createElement("canvas").getContext("2d"); g.font = s.font;
                   const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
                   return [g.measureText(i.placeholder).width, room]; }"""
    )
    assert fits[0] <= fits[1], fits
    page.fill("#code", "NOT-A-CODE")
    page.click("form[action='/v'] button")
    page.wait_for_load_state("networkidle")
    no_small_targets(page)
    watch.clean()
    ctx.close()


def _ensure_signed(browser: Browser, server: Server, campaign_id: int, username: str) -> None:
    """Sign the unit's pledge through the API unless the phone test above already did."""
    ctx = context(browser, DESKTOP)
    page = ctx.new_page()
    login(page, server, username)
    mine = [a for a in page.request.get(f"{server.url}/api/assignments").json() if a["campaign_id"] == campaign_id]
    assert len(mine) == 1, mine
    if mine[0]["state"] in ("issued", "viewed"):
        canvas = """() => { const c = document.createElement("canvas"); c.width = 686; c.height = 360;
                            const g = c.getContext("2d"); g.lineWidth = 6; g.beginPath(); g.moveTo(40, 200);
                            for (let x = 40; x < 640; x += 40) g.lineTo(x, x % 80 ? 80 : 280);
                            g.stroke(); return c.toDataURL("image/png"); }"""
        png = page.evaluate(canvas)
        signed = page.request.post(
            f"{server.url}/api/assignments/{mine[0]['id']}/sign",
            data={"signature_png": png, "confirm": True},
            headers=csrf_headers(page),
        )
        assert signed.ok, signed.text()
    ctx.close()


def test_office_forwards_and_dashboard_counts(browser: Browser, server: Server, campaign_id: int) -> None:
    # its own office and school: the phone tests sign in 王舍人, in any order
    _ensure_signed(browser, server, campaign_id, "hjl-xx-head")
    ctx = context(browser, DESKTOP)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "hjl-staff")
    assert page.url.endswith("/office")
    card = page.locator(f"[data-campaign='{campaign_id}']")
    card.locator("button[type=submit]").click()
    page.wait_for_selector("text=已将 1 份已签署的文书统一转交教体局")
    shot(page, "office-forwarded-desktop")
    watch.clean()
    ctx.close()

    ctx = context(browser, DESKTOP)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    login(page, server, "bureau")
    signed = [
        a
        for a in page.request.get(f"{server.url}/api/campaigns/{campaign_id}/assignments").json()
        if a["state"] not in ("issued", "viewed")
    ]
    stats = page.locator(f"[data-campaign='{campaign_id}'] .stats").inner_text()
    assert f"已签 {len(signed)} / 12" in stats, stats
    page.goto(f"{server.url}/campaigns/{campaign_id}?filter=signed")
    rows = page.locator("table.list tbody tr")
    assert rows.count() == len(signed)
    row = rows.filter(has_text="历城区洪家楼小学")
    assert "已转交（按时）" in row.inner_text()
    assert page.locator(".chart svg").count() == 1
    shot(page, "campaign-status-desktop")
    # before taking it in, the bureau opens the forwarded pledge from its row
    row.locator("a", has_text="控辍保学承诺书").click()
    page.wait_for_url(re.compile(r".*/sign/\d+$"))
    page.wait_for_selector(".page img")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("() => document.querySelector('.page img').naturalWidth") > 0
    assert "历城区洪家楼小学" in page.inner_text("main") and page.locator("#pad").count() == 0
    watch.clean()
    ctx.close()


def _nss(server: Server) -> str:
    return checks.nss_db(server.home / "nss", server.home / "certs" / "root" / "ca.crt")


def test_parent_scans_a_notice_and_a_tampered_copy_fails(browser: Browser, server: Server) -> None:
    # A school issues an enrollment notice (issue 5 brings the pages for it; here the engine does it).
    settings = server.settings()
    engine = DocumentEngine(settings)
    fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    # pyHanko runs its own event loop: keep it off the thread Playwright's loop runs on
    with ThreadPoolExecutor(1) as pool:
        doc = pool.submit(engine.issue, IssueRequest("enrollment_notice", fields, issuer_key="unit-lcjt")).result()
    engine.close()
    db = Database(settings)
    with db.session() as s:
        bureau = s.query(Unit).filter_by(code="LCJT").one()
        record_issued(
            s,
            doc,
            issuer=bureau,
            at=dt.datetime.now(dt.UTC),
        )
        s.commit()
    db.dispose()
    (url,) = checks.qr_codes(doc.pdf)  # what the parent's phone camera reads

    ctx = context(browser, PHONE)
    watch = Watch()
    page = watch.attach(ctx.new_page())
    page.goto(url)
    # recorded a moment ago, before the background check: the page says so and checks on request
    assert page.locator(".verdict .big").inner_text() == "核验中"
    page.click("#check-now")
    page.wait_for_load_state("networkidle")
    verdict = page.locator(".verdict .big").inner_text()
    assert verdict == "真实有效"
    main = page.inner_text("main")
    for text in ("义务教育入学通知书", "济南市历城区实验小学", "2024年8月31日", "张*雨"):
        assert text in main
    assert "张小雨" not in main
    no_horizontal_scroll(page)
    shot(page, "verify-genuine-phone")

    tampered = bytearray(doc.pdf)
    tampered[doc.pdf.index(b"stream", 2000) + 30] ^= 0x01
    with tempfile.NamedTemporaryFile(suffix=".pdf", delete=False) as f:
        f.write(bytes(tampered))
    page.goto(server.url + "/v")
    page.set_input_files("#file", f.name)
    page.click("form[action='/v/check'] button")
    page.wait_for_selector(".verdict")
    assert page.locator(".verdict .big").inner_text() == "不是真实有效的文书"
    assert "被改动" in page.inner_text("main")
    no_horizontal_scroll(page)
    shot(page, "verify-tampered-phone")
    watch.clean()
    ctx.close()
    assert hashlib.sha256(doc.pdf).hexdigest() == doc.sha256


def test_every_page_at_both_widths(browser: Browser, server: Server, campaign_id: int) -> None:
    both_widths(browser, server, None, "/login", "login")
    both_widths(browser, server, None, "/v", "verify-home")
    both_widths(browser, server, "bureau", "/dashboard", "dashboard")
    both_widths(browser, server, "bureau", "/campaigns/new", "campaign-new")
    both_widths(browser, server, "bureau", f"/campaigns/{campaign_id}", "campaign")
    both_widths(browser, server, "bureau", f"/campaigns/{campaign_id}?filter=missing", "campaign-missing")
    both_widths(browser, server, "bureau", "/units", "units")
    both_widths(browser, server, "wsr-staff", "/office", "office")
    both_widths(browser, server, "hjl-xx-head", "/sign", "sign-list")
    # the notices' pages: the delivery log, webhooks, a unit's contacts
    both_widths(browser, server, "bureau", "/notices", "notices")
    both_widths(browser, server, "bureau", "/webhooks", "webhooks")
    db = Database(server.settings())
    with db.session() as s:
        school = s.scalars(select(Unit.id).where(Unit.code == "WSR-SH")).one()
    db.dispose()
    both_widths(browser, server, "bureau", f"/units/{school}/contacts", "unit-contacts")
