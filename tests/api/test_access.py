"""A user of another unit gets 404 for every object id, on every route the OpenAPI schema lists."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import select

from service.accounts.service import create_user
from service.archive.models import Document
from service.campaigns.models import Assignment, Campaign
from service.jobs.models import Job
from service.units.models import Unit
from tests.api.conftest import PASSWORD, running_service, setup_licheng


def test_every_route_with_an_object_id_answers_404_outside_the_users_units(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        service.login("bureau")
        deadline = (service.clock.now() + dt.timedelta(days=3)).isoformat()
        cid = c.post("/api/campaigns", json={"name": "责任书", "year": 2024, "deadline": deadline}).json()["id"]
        service.wait_job(c.post(f"/api/campaigns/{cid}/issue").json()["id"])

        # A second district with its own bureau and campaign: nobody in Licheng may see it.
        with service.state.db.session() as s:
            other = Unit(code="QC", name="亳州市谯城区教育局", type="bureau", head_name="张从中")
            s.add(other)
            s.flush()
            create_user(
                s, username="qiaocheng", password=PASSWORD, display_name="谯城", role="bureau_staff", unit=other
            )
            s.commit()
        service.login("qiaocheng")
        other_campaign = c.post("/api/campaigns", json={"name": "谯城任务", "year": 2024, "deadline": deadline})
        # (no units under it yet, so it cannot be created; make it directly)
        assert other_campaign.status_code == 422
        with service.state.db.session() as s:
            qc = s.scalar(select(Unit).where(Unit.code == "QC"))
            campaign = Campaign(
                bureau_id=qc.id,
                name="谯城任务",
                year=2024,
                kinds=["pledge"],  # type: ignore[union-attr]
                deadline=service.clock.now() + dt.timedelta(days=3),
                issue_date=dt.date(2024, 9, 1),
            )
            s.add(campaign)
            s.commit()
            other_campaign_id = campaign.id
            # objects of 洪家楼小学 (HJL-XX)
            xx = units["HJL-XX"]
            assignment = s.scalar(select(Assignment).where(Assignment.unit_id == xx))
            document_id = assignment.document_id  # type: ignore[union-attr]
            assignment_id = assignment.id  # type: ignore[union-attr]
            job_id = s.scalar(select(Job.id).limit(1))
            assert s.get(Document, document_id) is not None

        # a dropout case and a roster of 洪家楼小学
        service.login("hjl-xx-head")
        case_id = c.post(
            "/api/cases",
            json={
                "school_id": xx,
                "student_name": "李四",
                "id_number": "370112201203070013",
                "sex": "男",
                "birth_date": "2012-03-07",
                "grade": "六年级",
                "guardians": [{"name": "李大", "phone": "13805310002"}],
            },
        ).json()["id"]
        from tests.rosters.roster_data import rows
        from tests.rosters.roster_data import xlsx as roster_xlsx

        roster = c.post(
            "/api/rosters",
            files={"file": ("名单.xlsx", roster_xlsx(rows(2, ["HJL-XX"])))},
            data={"kind": "enrollment_notice", "report_by": "2099-08-31"},
        )
        assert roster.status_code == 201, roster.text
        ids = {
            "unit_id": xx,
            "assignment_id": assignment_id,
            "document_id": document_id,
            "job_id": job_id,
            "campaign_id": other_campaign_id,
            "case_id": case_id,
            "roster_id": roster.json()["id"],
            "school_id": xx,
        }
        paths = c.get("/openapi.json").json()["paths"]
        checked = []
        for user in ("wsr-sh-head", "wsr-staff", "hjl-zx-head", "bureau"):
            service.login(user)
            for path, methods in paths.items():
                params = re.findall(r"{(\w+)}", path)
                if not any(p.endswith("_id") for p in params):
                    continue
                if user == "bureau" and params != ["campaign_id"]:
                    continue  # the bureau sees everything in its own district
                url = path
                for p in params:
                    url = url.replace("{" + p + "}", str(ids.get(p, 1)))
                for method in methods:
                    r = c.request(method.upper(), url, json={})
                    assert r.status_code == 404, (user, method, url, r.status_code, r.text)
                    assert r.json()["code"] == "NOT_FOUND"
                    checked.append((user, method, path))
        # every kind of object id was exercised
        assert {p for _, _, path in checked for p in re.findall(r"{(\w+)}", path)} >= set(ids)
        assert len(checked) > 20

        # the pages follow the same rule (they are not in the OpenAPI schema)
        from service.web import ROUTERS

        service.login("wsr-sh-head")
        page_checks = 0
        for route in [route for router in ROUTERS for route in router.routes]:
            path = getattr(route, "path", "")
            params = re.findall(r"{(\w+)}", path)
            if not any(p.endswith("_id") for p in params):
                continue
            url = path
            for p in params:
                url = url.replace("{" + p + "}", str(ids.get(p, 1)))
            for method in getattr(route, "methods", ()):
                if method == "HEAD":
                    continue
                r = c.request(method, url, headers={"accept": "text/html"}, data={})
                assert r.status_code == 404, (method, url, r.status_code)
                assert "未找到" in r.text
                page_checks += 1
        assert page_checks >= 16

        # and their own objects are visible
        service.login("hjl-xx-head")
        assert c.get(f"/api/assignments/{assignment_id}").status_code == 200
        assert c.get(f"/api/documents/{document_id}").status_code == 200
        service.login("hjl-staff")  # the office sees its school's documents
        assert c.get(f"/api/documents/{document_id}").status_code == 200
        assert c.get(f"/api/units/{xx}").status_code == 200
