"""Public verification: masked pages, nothing for guessed codes, rate limits, uploads checked."""

from __future__ import annotations

import time
from pathlib import Path

from service.archive.service import record_issued
from service.documents.codes import new_code
from service.documents.pipeline import IssueRequest
from service.documents.registry import KINDS, example_fields
from service.units.models import Unit
from tests.api.conftest import Service, bootstrap_bureau, running_service


def issue_notice(service: Service) -> tuple[str, bytes, int]:
    """An enrollment notice issued and recorded, as a school would (issue 5 adds the web flow)."""
    state = service.state
    fields = example_fields(KINDS["enrollment_notice"], state.settings.schemas_dir)
    doc = state.engine.issue(IssueRequest("enrollment_notice", fields, issuer_key="unit-lcjt"))
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
    with running_service(tmp_path, verify_min_seconds=0.05) as service:
        bootstrap_bureau(service)
        code, _, _ = issue_notice(service)
        page = service.client.get(f"/v/{code}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        html = page.text
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


def test_random_codes_find_nothing_and_take_as_long_as_real_ones(tmp_path: Path) -> None:
    with running_service(tmp_path, verify_min_seconds=0.02) as service:
        bootstrap_bureau(service)
        code, _, _ = issue_notice(service)
        for _ in range(1000):
            r = service.client.get(f"/v/{new_code()}", headers={"accept": "application/json"})
            assert r.status_code == 404 and r.json()["found"] is False
        assert service.client.get("/v/not-a-code").status_code == 404
        timings = {}
        for label, c in (("real", code), ("unknown", new_code())):
            start = time.perf_counter()
            service.client.get(f"/v/{c}", headers={"accept": "application/json"})
            timings[label] = time.perf_counter() - start
        assert min(timings.values()) >= 0.02


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


def test_verify_page_and_pki_downloads(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        home = service.client.get("/v")
        assert home.status_code == 200 and "输入文书上的验证码" in home.text
        bad = service.client.post("/v", data={"code": "123"})
        assert bad.status_code == 200 and "28 位" in bad.text and 'value="123"' in bad.text
        assert service.client.get("/pki/root.crt").text.startswith("-----BEGIN CERTIFICATE-----")
        assert service.client.get("/pki/issuing.crl").status_code == 200
        assert service.client.get("/static/site.css").status_code == 200
