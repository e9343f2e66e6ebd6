"""Public verification: masked pages, nothing for guessed codes, rate limits, uploads checked."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import zoneinfo
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from service.archive.models import Document, DocumentVersion
from service.archive.service import record_issued
from service.audit.models import AuditEvent
from service.documents.codes import new_code
from service.documents.ltv import add_archive_timestamp
from service.documents.pipeline import IssueRequest
from service.documents.registry import KINDS, example_fields
from service.documents.sign import LocalTimeStamper
from service.units.models import Unit
from tests import checks
from tests.api.conftest import Service, bootstrap_bureau, running_service, setup_licheng
from tests.rosters.roster_data import rows, xlsx

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def issue_notice(service: Service) -> tuple[str, bytes, int]:
    """An enrollment notice issued and recorded, as a school would (issue 5 adds the web flow)."""
    state = service.state
    fields = example_fields(KINDS["enrollment_notice"], state.settings.schemas_dir)
    doc = checks.off_loop(state.engine.issue, IssueRequest("enrollment_notice", fields, issuer_key="unit-lcjt"))
    with state.db.session() as s:
        bureau = s.query(Unit).filter_by(code="LCJT").one()
        record = record_issued(
            s,
            doc,
            issuer=bureau,
            at=service.clock.now(),
        )
        s.commit()
        return doc.code, doc.pdf, record.id


def test_a_real_code_shows_the_masked_page(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        code, _, _ = issue_notice(service)
        # before the background check reaches it: 核验中, the page refreshing and offering 立即核验
        pending = service.client.get(f"/v/{code}")
        assert pending.status_code == 200 and "核验中" in pending.text and "真实有效" not in pending.text
        assert 'http-equiv="refresh"' in pending.text and f'action="/v/{code}/verdict"' in pending.text
        assert service.client.get(f"/v/{code}?format=json").json()["pending"] is True
        checked = service.client.post(f"/v/{code}/verdict", follow_redirects=False)
        assert checked.status_code == 303 and checked.headers["location"] == f"/v/{code}"
        page = service.client.get(f"/v/{code}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        html = page.text
        assert "核验中" not in html and 'http-equiv="refresh"' not in html
        for text in (
            "真实有效",
            "义务教育入学通知书",
            "济南市历城区教育和体育局",
            "2024年8月10日",
            "济南市历城区实验小学",
            "2024年8月31日",
            "张*雨",
            "张*国",
        ):
            assert text in html, text
        for secret in ("张小雨", "张建国", "370112201804150027", "3701", "0027"):
            assert secret not in html, secret
        data = service.client.get(f"/v/{code}", headers={"accept": "application/json"}).json()
        assert data["found"] and data["genuine"] and data["status"] == "valid"
        assert data["fields"] == {
            "school_name": "济南市历城区实验小学",
            "report_by": "2024-08-31",
            "subject": "张*雨",
            "guardian": "张*国",
        }
        # the printed form with hyphens and look-alike letters works too
        typed = "-".join(code[i : i + 4] for i in range(0, 28, 4)).lower().replace("1", "l")
        assert service.client.post("/v", data={"code": typed}, follow_redirects=True).status_code == 200


def test_revoked_document_says_so(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        code, _, document_id = issue_notice(service)
        service.login("bureau")
        r = service.client.post(f"/api/documents/{document_id}/revoke", json={"reason": "学生已随父母迁居外省"})
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        page = service.client.get(f"/v/{code}").text
        assert "已撤回" in page
        assert "迁居" not in page  # the reason staff typed may name the child: never public
        data = service.client.get(f"/v/{code}?format=json").json()
        assert data["genuine"] is False and data["status"] == "revoked" and "迁居" not in str(data)
        service.login("bureau")
        assert service.client.get(f"/api/documents/{document_id}").json()["revoke_reason"] == "学生已随父母迁居外省"


def test_a_scan_reads_the_stored_verdict_and_unknown_codes_find_nothing(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        code, _, document_id = issue_notice(service)
        archive = service.state.archive
        with service.state.db.session() as s:
            assert checks.off_loop(archive.check_pending, s) == 1  # the background check: stored once
            s.commit()
            version = s.scalar(select(DocumentVersion).where(DocumentVersion.document_id == document_id))
            assert version is not None and version.verdict == "genuine" and version.verified_at is not None
            # what a scan shows comes from that record, not from parsing the PDF again
            version.verdict = "not_genuine"
            version.verdict_problems = [{"code": "CONTENT_ALTERED", "message": "签署后文件内容被改动。"}]
            s.commit()
        data = service.client.get(f"/v/{code}", headers={"accept": "application/json"}).json()
        assert data["genuine"] is False and data["verdict"] == "异常" and data["problems"] == ["签署后文件内容被改动。"]
        for _ in range(300):
            r = service.client.get(f"/v/{new_code()}", headers={"accept": "application/json"})
            assert r.status_code == 404 and r.json()["found"] is False
        assert service.client.get("/v/not-a-code").status_code == 404


def test_a_client_over_the_limit_gets_429(tmp_path: Path) -> None:
    with running_service(tmp_path, verify_rate_per_minute=5) as service:
        bootstrap_bureau(service)
        for _ in range(5):
            assert service.client.get(f"/v/{new_code()}").status_code == 404
        r = service.client.get(f"/v/{new_code()}")
        assert r.status_code == 429 and r.json()["code"] == "TOO_MANY_REQUESTS"
        assert int(r.headers["retry-after"]) > 0


def test_uploaded_pdf_is_checked_against_the_archive(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        _code, pdf, _ = issue_notice(service)
        ok = service.client.post(
            "/v/check", files={"file": ("通知书.pdf", pdf, "application/pdf")}, headers={"accept": "application/json"}
        ).json()
        assert ok["genuine"] is True and ok["verdict"] == "真实有效"

        tampered = bytearray(pdf)
        i = pdf.index(b"stream", 2000) + 30
        tampered[i] ^= 0x01
        bad = service.client.post(
            "/v/check",
            files={"file": ("通知书.pdf", bytes(tampered), "application/pdf")},
            headers={"accept": "application/json"},
        ).json()
        assert bad["genuine"] is False and bad["verdict"] == "不是真实有效的文书"
        assert any("被改动" in p for p in bad["problems"]), bad["problems"]
        page = service.client.post("/v/check", files={"file": ("x.pdf", bytes(tampered), "application/pdf")})
        assert "不是真实有效的文书" in page.text and "被改动" in page.text

        appended = service.client.post(
            "/v/check",
            files={"file": ("x.pdf", pdf + b"\n%extra\n", "application/pdf")},
            headers={"accept": "application/json"},
        ).json()
        assert appended["genuine"] is False and any("末尾" in p for p in appended["problems"])


def test_a_schools_print_bundle_is_named_as_one_not_listed_as_forgeries(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        report_by = (dt.date.today() + dt.timedelta(days=10)).isoformat()
        r = c.post(
            "/api/rosters",
            files={"file": ("名单.xlsx", xlsx(rows(4, ["WSR-SH"], seed=3)))},
            data={"kind": "enrollment_notice", "report_by": report_by},
        )
        assert r.status_code == 201, r.text
        roster_id = r.json()["id"]
        assert service.wait_job(c.post(f"/api/rosters/{roster_id}/issue").json()["id"])["status"] == "done"
        roster_page = c.get(f"/rosters/{roster_id}").text
        href = re.search(r'formaction="(/api/rosters/\d+/print/\d+\.pdf)"', roster_page)
        assert href is not None
        bundle = c.get(href.group(1), params={"purpose": "存档"}).content
        assert bundle.startswith(b"%PDF")

        c.cookies.clear()  # a parent, not signed in
        answer = c.post(
            "/v/check", files={"file": ("打印.pdf", bundle, "application/pdf")}, headers={"accept": "application/json"}
        ).json()
        assert answer["verdict"] == "打印合订本" and answer["genuine"] is False
        assert answer["problems"] == [] and answer["code"] == "PRINT_BUNDLE"
        page = c.post("/v/check", files={"file": ("打印.pdf", bundle, "application/pdf")}).text
        assert "打印合订本" in page and "4 份通知书" in page and "二维码" in page
        assert "不是真实有效的文书" not in page and "原因" not in page

        # changed by one byte it is no longer the school's file: judged as any other upload
        changed = bundle + b"\n%extra\n"
        other = c.post(
            "/v/check", files={"file": ("打印.pdf", changed, "application/pdf")}, headers={"accept": "application/json"}
        ).json()
        assert other["verdict"] == "不是真实有效的文书"


def test_verify_page_and_pki_downloads(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        home = service.client.get("/v")
        assert home.status_code == 200 and "输入文书上的验证码" in home.text
        bad = service.client.post("/v", data={"code": "123"})
        assert bad.status_code == 200 and "28 位" in bad.text and 'value="123"' in bad.text
        assert service.client.get("/pki/root.crt").text.startswith("-----BEGIN CERTIFICATE-----")
        assert service.client.get("/pki/issuing.crl").status_code == 200
        assert service.client.get("/static/site.css").status_code == 200


def _case_notice(service: Service) -> tuple[str, int]:
    """A 复学通知书 issued for a case whose guardian's phone is 138 0531 0001: its code and id."""
    from service.accounts.models import User
    from service.accounts.scope import Scope
    from service.cases.service import CaseIn, GuardianIn
    from service.units.models import Unit as UnitRow

    services = service.state
    with services.db.session() as s:
        school = s.scalar(select(UnitRow).where(UnitRow.code == "WSR-SH"))
        user = s.scalar(select(User).where(User.username == "wsr-sh-head"))
        assert school is not None and user is not None
        scope = Scope.of_user(s, user)
        case = services.cases.create(
            s,
            scope,
            school.id,
            CaseIn(
                student_name="王浩然",
                id_number="370112201203070013",
                sex="男",
                birth_date=dt.date(2012, 3, 7),
                grade="六年级",
                confirmed=True,
                guardians=[GuardianIn("王德福", "父亲", "138 0531 0001")],
            ),
        )
        s.commit()
        doc = checks.off_loop(
            services.cases.issue_notice, s, scope, case, "return_notice", services.cases.today() + dt.timedelta(days=7)
        )
        s.commit()
        # the code, as a guardian gets it: from the QR code printed on the notice
        (url,) = set(checks.qr_codes(services.archive.documents.get(doc.current_sha256)))
        return url.rsplit("/", 1)[1], doc.id


def _document(service: Service, document_id: int) -> Document:
    with service.state.db.session() as s:
        doc = s.get(Document, document_id)
        assert doc is not None
        s.expunge(doc)
        return doc


def test_a_receipt_asks_for_the_guardians_phone_digits(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        code, document_id = _case_notice(service)
        c = service.client
        c.cookies.clear()  # the guardian is nobody's session
        page = c.get(f"/v/{code}").text
        assert "我已阅知" in page and "电话号码后四位" in page
        assert _document(service, document_id).confirmed_at is None  # a GET never records a receipt
        wrong = c.post(f"/v/{code}/confirm", data={"digits": "1234"})
        assert wrong.status_code == 200 and "后四位不对" in wrong.text
        assert _document(service, document_id).confirmed_at is None
        right = c.post(f"/v/{code}/confirm", data={"digits": "0001"})
        assert "感谢您确认已阅知" in right.text and "确认阅知" in right.text
        doc = _document(service, document_id)
        assert doc.confirmed_at is not None and doc.confirmed_via == "phone_digits"
        with service.state.db.session() as s:
            event = s.scalar(select(AuditEvent).where(AuditEvent.action == "notice.confirm"))
            assert event is not None and event.detail == {"via": "phone_digits"}


def test_wrong_receipt_digits_slow_the_next_try_down_but_never_lock_the_family_out(tmp_path: Path) -> None:
    """Five free tries; then each next try waits 1, 2, 4 … minutes after the last wrong one (at
    most a day), for every client alike: a stranger's guesses slow the family down, never shut them
    out, and guessing 10,000 endings becomes hopeless."""
    with running_service(tmp_path) as service:
        setup_licheng(service)
        code, document_id = _case_notice(service)
        c = service.client
        c.cookies.clear()

        def confirm(digits: str) -> str:
            r = c.post(f"/v/{code}/confirm", data={"digits": digits}, headers={"accept": "application/json"})
            return str(r.json()["receipt"])

        answers = [confirm(d) for d in ("1111", "2222", "3333", "4444", "5555", "0001")]
        assert answers == ["wrong_digits"] * 4 + ["slowed", "slowed"]  # even the right digits wait
        assert _document(service, document_id).confirmed_at is None
        assert "1 分钟后再试" in c.get(f"/v/{code}").text
        service.clock.advance(dt.timedelta(minutes=1, seconds=1))
        assert confirm("6666") == "slowed"  # the 6th wrong try: the next waits 2 minutes
        service.clock.advance(dt.timedelta(minutes=1))
        assert confirm("0001") == "slowed"
        assert "分钟后再试" in c.get(f"/v/{code}").text
        service.clock.advance(dt.timedelta(minutes=1, seconds=1))
        assert confirm("0001") == "confirmed"  # the family, after the wait
        doc = _document(service, document_id)
        assert doc.confirmed_at is not None and doc.receipt_failures == 6


def test_only_a_page_a_person_sees_counts_as_opened(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        code, document_id = _case_notice(service)
        c = service.client
        c.cookies.clear()
        for _ in range(3):  # what a link previewer does: fetch the page, run no script
            assert c.get(f"/v/{code}", headers={"user-agent": "facebookexternalhit/1.1"}).status_code == 200
        assert c.post(f"/v/{code}/opened", headers={"sec-purpose": "prefetch"}).status_code == 204
        service.state.opens.flush()
        assert _document(service, document_id).opened_count == 0
        page = c.get(f"/v/{code}").text  # a guardian's browser runs the page's script
        assert f'data-opened="/v/{code}/opened"' in page
        for _ in range(2):
            assert c.post(f"/v/{code}/opened").status_code == 204
        assert _document(service, document_id).opened_count == 0  # counted in memory, written in batches
        assert service.state.opens.flush() == 2
        doc = _document(service, document_id)
        assert doc.opened_count == 2 and doc.opened_at is not None


def test_public_responses_carry_the_headers_of_a_public_site(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        code, _, _ = issue_notice(service)
        for path in (f"/v/{code}", "/v", "/login", "/api/auth/me"):
            r = service.client.get(path)
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-store", path
            assert "strict-transport-security" not in r.headers  # served over plain HTTP here
        assert "no-store" not in service.client.get("/static/site.css").headers.get("cache-control", "")
    with running_service(tmp_path / "https", secure_cookies=True) as service:
        assert service.client.get("/v").headers["strict-transport-security"].startswith("max-age=")


def test_hostile_uploads_are_refused_in_chinese_while_lookups_go_on(tmp_path: Path) -> None:
    with running_service(
        tmp_path, upload_cpu_seconds=1, upload_max_signatures=100, upload_max_revisions=100, upload_rate_per_minute=5
    ) as service:
        bootstrap_bureau(service)
        code, pdf, _ = issue_notice(service)
        pki = service.state.pki
        crls = [c.public_bytes(serialization.Encoding.DER) for c in pki.crls()]

        def stamped(pdf: bytes) -> bytes:
            stamper = LocalTimeStamper(pki)  # its key loaded once
            for _ in range(80):  # genuine structure, but its check costs seconds of CPU, even on a fast machine
                pdf = add_archive_timestamp(pdf, timestamper=stamper, crls=crls)
            return pdf

        heavy = checks.off_loop(stamped, pdf)
        c = service.client
        answers: list[float] = []
        stop = threading.Event()

        def lookups() -> None:
            while not stop.is_set():
                assert c.get(f"/v/{code}", headers={"accept": "application/json"}).json()["found"]
                answers.append(time.monotonic())

        looking = threading.Thread(target=lookups)
        looking.start()
        try:
            r = c.post(
                "/v/check", files={"file": ("x.pdf", heavy, "application/pdf")}, headers={"accept": "application/json"}
            )
            finished = time.monotonic()
        finally:
            stop.set()
            looking.join()
        data = r.json()
        assert data["genuine"] is False and "UPLOAD_TOO_COMPLEX" in data["codes"], data
        assert any("CPU" in p or "计算" in p or "太复杂" in p for p in data["problems"]), data["problems"]
        # the scans went on while the check ran (answered before it ended), not after it: no wall-clock
        # bound, which a loaded machine stretches (the check's limit is CPU seconds, taken at low priority)
        assert sum(1 for at in answers if at < finished) >= 3, (answers, finished)

        revisions = pdf + b"".join(b"\n%%EOF\n" for _ in range(120))
        r = c.post(
            "/v/check", files={"file": ("x.pdf", revisions, "application/pdf")}, headers={"accept": "application/json"}
        )
        assert "UPLOAD_TOO_COMPLEX" in r.json()["codes"]
        ours = c.post(
            "/v/check", files={"file": ("x.pdf", pdf, "application/pdf")}, headers={"accept": "application/json"}
        ).json()
        assert ours["genuine"] is True and ours["source"] == "archive"  # answered from the record, not parsed
        for _ in range(2):
            c.post("/v/check", files={"file": ("x.pdf", pdf, "application/pdf")})
        limited = c.post(
            "/v/check", files={"file": ("x.pdf", pdf, "application/pdf")}, headers={"accept": "application/json"}
        )
        assert limited.status_code == 429 and "上传过于频繁" in limited.json()["message"]
        assert c.get(f"/v/{code}").status_code == 200  # lookups have a limit of their own


def test_the_page_shows_until_when_the_signature_is_protected_and_never_calls_an_old_notice_forged(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        code, _, document_id = issue_notice(service)
        state = service.state
        with state.db.session() as s:
            checks.off_loop(state.archive.check_pending, s)
            s.commit()
            version = s.scalars(select(DocumentVersion).where(DocumentVersion.document_id == document_id)).one()
            assert version.protected_until is not None
            until = version.protected_until.astimezone(SHANGHAI)
        page = service.client.get(f"/v/{code}").text
        assert "长期验证" in page and f"{until.year}年{until.month}月{until.day}日" in page
        data = service.client.get(f"/v/{code}", headers={"accept": "application/json"}).json()
        assert data["genuine"] and dt.datetime.fromisoformat(data["protected_until"]) == version.protected_until
        # years on, with no archive timestamp added, the record says so: a warning, not 异常
        with state.db.session() as s:
            version = s.scalars(select(DocumentVersion).where(DocumentVersion.document_id == document_id)).one()
            version.verdict = "needs_timestamp"
            version.verdict_problems = [{"code": "NEEDS_ARCHIVE_TIMESTAMP", "message": "需要存档时间戳"}]
            s.commit()
        page = service.client.get(f"/v/{code}").text
        assert "待补充存档时间戳" in page and "异常" not in page
