"""The login form, without a browser: it shares its checks with the API's login."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
import subprocess
import tempfile
import time
import zipfile
from html import unescape as html_unescape
from pathlib import Path

from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import func, select

from service.audit.models import AuditEvent
from service.http.deps import SESSION_COOKIE
from tests import checks
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
        # signed in, and first told of the failure since the last login, with the way on
        assert r.status_code == 200 and "登录提醒" in r.text and "1 次登录失败" in r.text
        assert 'href="/campaigns"' in r.text
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
        assert "请选择每月报送、每周报送或每学期开学后报送。" in r.text
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
        # a report campaign speaks of reports, not signatures
        assert "已报送 <b>0</b> / 10" in page and "未报送" in page and "导出报送材料（zip）" in page
        assert "报送进度" in page and "确认接收已报送的报表" in page
        for word in ("已签", "缺签", "签署件", "签署进度", "签署时间"):
            assert word not in page, word
        dashboard = c.get("/dashboard").text
        assert "已报送 <b>0</b> / 10" in dashboard and "缺签" not in dashboard


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
        # the due list names the report once, then its week: "控辍保学辍学周报告（2026年第N周）",
        # not "…周报告（控辍保学辍学周报告）"
        due = c.get("/cases").text
        assert re.search(r"控辍保学辍学周报告（\d{4}年第\d+周）\s*<", due) and "（控辍保学辍学周报告）" not in due
        (mine,) = [a for a in c.get("/api/assignments").json() if a["kind"] == "weekly_report"]
        # 报送 with no file chosen: a message at the report, not silence
        r = c.post(f"/reports/{mine['id']}", files={"file": ("", b"", "application/octet-stream")})
        assert r.status_code == 200 and "请选择要上传的报表文件（PDF 或 Excel）。" in r.text
        r = c.post(f"/reports/{mine['id']}", data={})
        assert r.status_code == 200 and "请选择要上传的报表文件（PDF 或 Excel）。" in r.text
        assert 'type="file" accept=".pdf,.xlsx' in r.text and "required>" not in r.text.split("报表报送")[1]
        r = c.post(f"/reports/{mine['id']}", files={"file": ("周报.txt", b"not a report")})
        assert r.status_code == 200 and "报表应为 PDF 或 Excel（.xlsx）文件。" in r.text
        r = c.post(
            f"/reports/{mine['id']}", files={"file": ("周报.xlsx", b"PK\x03\x04 weekly")}, follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"] == f"/sign?filed={mine['id']}"
        page = c.get(r.headers["location"]).text
        assert "已报送本期报表。" in page and "已报送（按时）" in page and f'action="/reports/{mine["id"]}"' not in page
        r = c.post(f"/reports/{mine['id']}", files={"file": ("again.pdf", b"%PDF-1.7")})
        assert "本期报表已经报送。" in r.text

        service.login("wsr-xd-head")  # another school's report answers 404
        assert c.post(f"/reports/{mine['id']}", files={"file": ("x.pdf", b"%PDF-1.7")}).status_code == 404

        # the bureau: 确认接收 says what it took in; the zip holds the filed report, its manifest in Chinese
        service.login("bureau")
        r = c.post(f"/campaigns/{campaign['id']}/receive")
        assert r.status_code == 200 and "已确认接收 1 份。" in r.text
        r = c.post(f"/campaigns/{campaign['id']}/receive")
        assert "没有新的可接收的文书或报表" in r.text
        r = c.get(f"/api/campaigns/{campaign['id']}/archive.zip?purpose=存档")
        assert r.status_code == 200 and "%E6%8A%A5%E9%80%81%E6%9D%90%E6%96%99.zip" in r.headers["content-disposition"]
        zf = zipfile.ZipFile(io.BytesIO(r.content))
        rows = list(csv.reader(io.StringIO(zf.read("manifest.csv").decode("utf-8-sig"))))
        assert rows[0][:4] == ["文件", "SHA-256 摘要", "字节数", "单位"] and "报送时间（北京时间）" in rows[0]
        (row,) = rows[1:]
        record = dict(zip(rows[0], row, strict=True))
        assert record["单位"] == "历城区王舍人街道石河小学" and record["原文件名"] == "周报.xlsx"
        assert record["状态"] == "已接收（按时）" and record["是否逾期"] == "否"
        filed_at = dt.datetime.strptime(record["报送时间（北京时间）"], "%Y-%m-%d %H:%M:%S")
        beijing = service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
        assert abs((beijing - filed_at).total_seconds()) < 600  # Beijing time, not UTC
        assert zf.read(record["文件"]) == b"PK\x03\x04 weekly"
        assert json.loads(zf.read("manifest.json"))["generated_at"].endswith("+08:00")
        # the 台账 says what the page says
        ws = load_workbook(io.BytesIO(c.get(f"/api/campaigns/{campaign['id']}/ledger.xlsx").content)).active
        states = {r[1]: r[6] for r in ws.iter_rows(min_row=3, values_only=True)}
        assert states["历城区王舍人街道石河小学"] == "已接收（按时）" and states["历城区王舍人街道辛甸小学"] == "待报送"
        assert "报送台账" in ws["A1"].value and ws["G2"].value == "状态" and ws["E2"].value == "报表"


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
        assert read_qr_svg(page) == html_unescape(uri.group(0))  # a QR code to scan, not only the address to type
        totp = pyotp.parse_uri(uri.group(0).replace("&amp;", "&"))
        wrong = c.post("/account/totp/confirm", data={"code": "12345x"}, headers=html)
        assert wrong.status_code == 422 and "动态口令不正确" in wrong.text and "otpauth://" in wrong.text
        done = c.post("/account/totp/confirm", data={"code": totp.at(service.clock.now())}, headers=html)
        assert done.status_code == 200 and "恢复码" in done.text
        assert len(re.findall(r"[0-9a-f]{6}-[0-9a-f]{6}", done.text)) == 10
        c.cookies.clear()
        r = c.post("/api/auth/login", json={"username": "wsr-sh-head", "password": PASSWORD})
        assert r.status_code == 401 and r.json()["code"] == "TOTP_REQUIRED"


def test_a_principal_activates_their_account_on_the_pages_and_is_told_of_a_reset(tmp_path: Path) -> None:
    """The activation page (a phone's width, Chinese): password, then the second factor by QR code,
    then the recovery codes once; the link is used up; a reset sends the principal through it again,
    and their next login shows who reset the account and when before going on."""
    import pyotp
    from fastapi.testclient import TestClient

    with running_service(tmp_path, require_totp=True) as service:
        bootstrap_bureau(service)
        c = service.client
        from sqlalchemy import select as sql_select

        from service.accounts.models import User
        from service.accounts.scope import Scope

        admin_totp = {}
        with service.state.db.session() as s:
            for name in ("sysadmin", "secadmin"):  # the administrators' second factor, made at installation
                admin = s.scalars(sql_select(User).where(User.username == name)).one()
                uri, _ = service.state.accounts.enroll_totp(s, Scope.operator(s, admin.unit), admin)
                admin_totp[name] = pyotp.parse_uri(uri)
            s.commit()

        def admin_in(name: str) -> None:
            service.clock.advance(dt.timedelta(seconds=30))
            c.cookies.clear()
            r = c.post(
                "/api/auth/login",
                json={"username": name, "password": PASSWORD, "otp": admin_totp[name].at(service.clock.now())},
            )
            assert r.status_code == 200, r.text
            c.headers["X-CSRF-Token"] = c.cookies["docsign_csrf"]

        admin_in("sysadmin")
        unit_id = c.get("/api/auth/me").json()["unit_id"]
        made = c.post(
            "/api/users",
            json={"username": "sh-head", "display_name": "赵明", "role": "unit_signer", "unit_id": unit_id},
        )
        path = made.json()["activation"]["activation_url"].removeprefix(service.settings.public_base_url)
        phone = TestClient(c.app)
        html = {"accept": "text/html"}
        page = phone.get(path, headers=html)
        assert page.status_code == 200 and "赵明" in page.text and "sh-head" in page.text
        assert 'name="viewport" content="width=device-width' in page.text and "只能使用一次" in page.text
        mismatch = phone.post(
            path, data={"password": "zhao-own-secret-1", "password_again": "zhao-own-secret-2"}, headers=html
        )
        assert mismatch.status_code == 422 and "不一致" in mismatch.text
        step = phone.post(
            path, data={"password": "zhao-own-secret-1", "password_again": "zhao-own-secret-1"}, headers=html
        )
        assert step.status_code == 200 and "开通动态口令" in step.text
        found = re.search(r"otpauth://[^<\s]+", step.text)
        assert found is not None and read_qr_svg(step.text) == html_unescape(found.group(0))
        totp = pyotp.parse_uri(html_unescape(found.group(0)))
        assert phone.get(path, headers=html).text.count("otpauth://") >= 1  # reopened: the same secret waits
        wrong = phone.post(path + "/confirm", data={"code": "12345x"}, headers=html)
        assert wrong.status_code == 422 and "动态口令不正确" in wrong.text
        done = phone.post(path + "/confirm", data={"code": totp.at(service.clock.now())}, headers=html)
        assert done.status_code == 200 and "账号已激活" in done.text
        assert len(re.findall(r"[0-9a-f]{6}-[0-9a-f]{6}", done.text)) == 10
        used = phone.get(path, headers=html)
        assert used.status_code == 404 and "已经用过" in used.text

        # reset by the security administrator; activated again; the next login shows the reset before going on
        admin_in("secadmin")
        with service.state.db.session() as s:
            signer_id = s.scalars(sql_select(User.id).where(User.username == "sh-head")).one()
        again = c.post(f"/api/users/{signer_id}/reset-password").json()["activation_url"]
        again_path = again.removeprefix(service.settings.public_base_url)
        page = phone.get(again_path, headers=html)
        assert "已被安全管理员重置" in page.text
        step = phone.post(
            again_path, data={"password": "zhao-own-secret-3", "password_again": "zhao-own-secret-3"}, headers=html
        )
        found = re.search(r"otpauth://[^<\s]+", step.text)
        assert found is not None
        totp = pyotp.parse_uri(html_unescape(found.group(0)))
        assert (
            phone.post(again_path + "/confirm", data={"code": totp.at(service.clock.now())}, headers=html).status_code
            == 200
        )
        service.clock.advance(dt.timedelta(seconds=30))
        phone.cookies.clear()
        notes = phone.post(
            "/login",
            data={
                "username": "sh-head",
                "password": "zhao-own-secret-3",
                "otp": totp.at(service.clock.now()),
                "next": "/sign",
            },
            headers=html,
            follow_redirects=False,
        )
        assert notes.status_code == 200 and "登录提醒" in notes.text
        assert "被 孟琳（济南市历城区教育和体育局） 重置" in notes.text and 'href="/sign"' in notes.text
        assert phone.get("/api/auth/me").json()["username"] == "sh-head"  # signed in behind the notes


def read_qr_svg(page: str) -> str:
    """Decode the page's inline SVG QR code (modules drawn as ``M{x} {y}h1v1h-1z``) with zxing-cpp."""
    import zxingcpp
    from PIL import Image

    svg = re.search(r'<svg class="qr".*?viewBox="-2 -2 (\d+) \d+".*?<path d="([^"]*)"', page, re.S)
    assert svg is not None
    n = int(svg.group(1)) - 4
    image = Image.new("L", (n + 8, n + 8), 255)
    for x, y in re.findall(r"M(\d+) (\d+)h1v1h-1z", svg.group(2)):
        image.putpixel((int(x) + 4, int(y) + 4), 0)
    # Only QR codes: in about 1 % of random secrets zxing also reads a stray ITF barcode in the modules.
    (found,) = zxingcpp.read_barcodes(
        image.resize(((n + 8) * 4, (n + 8) * 4), Image.Resampling.NEAREST),
        formats=zxingcpp.BarcodeFormat.QRCode,
    )
    return str(found.text)


def _light_grey_share(pdf: bytes) -> float:
    """The share of page 1's pixels in light grey: a watermark's tone, rare in black text on white."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "d.pdf").write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-r", "50", "-gray", "-png", "-singlefile", "-f", "1", "-l", "1", "d.pdf", "p"],
            cwd=tmp,
            check=True,
            timeout=60,
        )
        image = Image.open(Path(tmp) / "p.png").convert("L")
    histogram = image.histogram()
    return sum(histogram[205:236]) / (image.width * image.height)


def test_a_preview_is_marked_as_a_draft_and_carries_no_code(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        service.login("bureau")
        c = service.client
        deadline = (dt.date.today() + dt.timedelta(days=5)).isoformat() + "T16:00:00"
        r = c.post(
            "/api/campaigns",
            json={"name": "2026年控辍保学承诺书", "year": 2026, "kinds": ["pledge"], "deadline": deadline},
        )
        assert r.status_code == 201, r.text
        preview = c.get(f"/campaigns/{r.json()['id']}/preview/pledge.pdf")
        assert preview.status_code == 200 and preview.content.startswith(b"%PDF")
        pdf = preview.content
        info = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
        assert "样稿（未签发）" in info
        for page in range(1, checks.page_count(pdf) + 1):  # no code a phone could take for a real one
            assert checks.qr_codes(pdf, page) == []
        assert checks.docsign_code(pdf) is None
        assert "控辍保学承诺书" in checks.pdftotext(pdf)  # the text itself is still there to read
        assert _light_grey_share(pdf) > 0.05, "no 样稿 across the page"


def test_the_issue_progress_advances_as_documents_are_done(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        service.login("bureau")
        c = service.client
        deadline = (dt.date.today() + dt.timedelta(days=5)).isoformat() + "T16:00:00"
        r = c.post("/api/campaigns", json={"name": "2026年控辍保学目标责任书", "year": 2026, "deadline": deadline})
        assert r.status_code == 201 and r.json()["planned"] == 12, r.text
        job = c.post(f"/api/campaigns/{r.json()['id']}/issue").json()
        # what the campaign page's progress bar polls (every second there, as often as it can here):
        # each line it showed, with when
        shown: list[tuple[str, float]] = []
        start = time.monotonic()
        while True:
            fragment = c.get(f"/jobs/{job['id']}").text
            if "已下发" in fragment or "下发失败" in fragment:
                break
            line = re.sub(r"<[^>]+>", "", fragment.split("<p>")[1].split("</p>")[0])
            if not shown or shown[-1][0] != line:
                shown.append((line, time.monotonic() - start))
        end = time.monotonic() - start
        assert "已下发 12 份文书" in fragment
        # the first campaign makes a key pair per unit before any document: the bar counts them
        keys = [t for line, t in shown if line.startswith("正在为各单位准备签章证书")]
        # and nothing sits unchanged for most of the run: the longest stretch of one line is
        # well under the whole (it was 0 / 12 for 4.8 s of 4.9 s)
        times = [t for _, t in shown] + [end]
        longest = max(b - a for a, b in itertools.pairwise(times))
        assert len(keys) >= 3 and longest < 0.6 * end, (shown, end)
