"""生成案卷 over HTTP: the bureau downloads a case's file, which the verify page finds by its code; a
school of another office does not find the case; the case page offers the button."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pikepdf
from sqlalchemy import select

from service.audit.models import AuditEvent
from tests.api.conftest import running_service, setup_licheng


def test_the_bureau_downloads_a_case_file_the_verify_page_knows(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        r = c.post(
            "/api/cases",
            json={
                "school_id": units["WSR-SH"],
                "student_name": "王浩然",
                "id_number": "370112201203070013",
                "sex": "男",
                "birth_date": "2012-03-07",
                "grade": "六年级",
                "class_name": "二班",
                "guardians": [{"name": "王德福", "relation": "父亲", "phone": "13805310001"}],
            },
        )
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        register = c.post(f"/api/cases/{cid}/register")
        assert register.status_code == 201, register.text

        # a school of another office does not find the case at all, nor its file
        service.login("hjl-xx-head")
        refused = c.post(f"/api/cases/{cid}/file")
        assert refused.status_code == 404 and refused.json()["code"] == "NOT_FOUND"
        assert c.post(f"/cases/{cid}/file", headers={"accept": "text/html"}).status_code == 404

        service.login("bureau")
        page = c.get(f"/cases/{cid}")
        assert page.status_code == 200 and f'action="/cases/{cid}/file"' in page.text and "生成案卷" in page.text
        r = c.post(f"/api/cases/{cid}/file")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf"
        assert "attachment" in r.headers["content-disposition"]
        assert hashlib.sha256(r.content).hexdigest() == r.headers["x-content-sha256"]
        with pikepdf.open(io.BytesIO(r.content)) as pdf:
            assert len(pdf.attachments) == 1  # the 一生一表, embedded whole
        code = r.headers["x-verification-code"]

        # the verify page knows it: a case file of the bureau, genuine once checked, the child masked
        checked = c.post(f"/v/{code}/verdict", follow_redirects=False)
        assert checked.status_code == 303
        data = c.get(f"/v/{code}", headers={"accept": "application/json"}).json()
        assert data["found"] and data["genuine"] and data["status"] == "valid"
        html = c.get(f"/v/{code}").text
        for text in ("控辍保学个案案卷", "济南市历城区教育和体育局", "王*然"):
            assert text in html, text
        assert "王浩然" not in html and "370112201203070013" not in html

        # the page's button downloads one as well
        again = c.post(f"/cases/{cid}/file")
        assert again.status_code == 200 and again.headers["content-type"] == "application/pdf"
        assert again.headers["x-verification-code"] != code

        with service.state.db.session() as s:
            made = s.scalars(select(AuditEvent).where(AuditEvent.action == "case.file")).all()
            assert [e.detail["case"] for e in made] == [cid, cid]
