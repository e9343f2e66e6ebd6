"""The ledgers, due items, district figures and reports through the JSON API, read-only, with the
pages' role rules: a school sees only its own, an office its schools, the bureau all; asking for
another unit's is refused as not found."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.api.conftest import running_service, setup_licheng
from tests.rosters.roster_data import resident_id

CASE = {
    "student_name": "王浩然",
    "id_number": "370112201203070013",
    "sex": "男",
    "birth_date": "2012-03-07",
    "grade": "六年级",
    "confirmed": True,
    "key_groups": ["留守儿童"],
    "guardians": [{"name": "王德福", "relation": "父亲", "phone": "13805310001"}],
}
SH, XD = "历城区王舍人街道石河小学", "历城区王舍人街道辛甸小学"


def test_ledgers_due_items_district_and_reports_by_role(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        mine = c.post("/api/cases", json={**CASE, "school_id": units["WSR-SH"]}).json()["id"]
        service.login("hjl-xx-head")
        other = {**CASE, "student_name": "李他校", "id_number": resident_id(7, "20120307", female=False)}
        theirs = c.post("/api/cases", json={**other, "school_id": units["HJL-XX"]}).json()["id"]
        service.login("bureau")
        r = c.post(
            "/api/campaigns",
            json={"name": "辍学周报告", "year": 2026, "recurrence": "weekly", "due_day": 7, "kinds": ["weekly_report"]},
        )
        assert r.status_code == 201, r.text
        service.wait_job(c.post(f"/api/campaigns/{r.json()['id']}/issue").json()["id"])

        # The three ledgers: a school its own, and nobody else's.
        service.login("wsr-sh-head")
        assert [u["name"] for u in c.get("/api/ledgers/units").json()] == [SH]
        dropouts = c.get("/api/ledgers/dropouts").json()
        assert dropouts["title"] == "辍学学生台账" and dropouts["unit"]["name"] == SH
        assert [(row["case_id"], row["student_name"], row["key_groups"]) for row in dropouts["rows"]] == [
            (mine, "王浩然", ["留守儿童"])
        ]
        assert dropouts["rows"][0]["changed"]["actor"]  # who changed it last
        assert c.get("/api/ledgers/suspected").json()["rows"] == []
        assert c.get("/api/ledgers/children", params={"year": 2026}).json()["children"] == []
        for refused in (
            c.get("/api/ledgers/dropouts", params={"unit": units["HJL-XX"]}),
            c.get("/api/ledgers/dropouts", params={"unit": units["WSR"]}),
            c.get("/api/district", params={"unit": units["LCJT"]}),
            c.get("/api/reports/weekly", params={"unit": units["WSR-XD"]}),
        ):
            assert refused.status_code == 404 and refused.json()["code"] == "NOT_FOUND", refused.text
        assert c.get("/api/ledgers/closed").status_code == 422  # not one of the three

        service.login("wsr-staff")  # an office: its schools, not the other office's
        office = c.get("/api/ledgers/dropouts", params={"unit": units["WSR"]}).json()
        assert [row["case_id"] for row in office["rows"]] == [mine]
        assert c.get("/api/ledgers/dropouts", params={"unit": units["HJL"]}).status_code == 404
        service.login("bureau")
        district_rows = c.get("/api/ledgers/dropouts", params={"unit": units["LCJT"]}).json()["rows"]
        assert {row["case_id"] for row in district_rows} == {mine, theirs}

        # The weekly report: the school's periods, its draft figures, signing on its page, the versions.
        service.login("wsr-sh-head")
        (period,) = c.get("/api/reports/weekly").json()
        assert period["state"] == "待报送" and period["version"] is None
        draft = c.get(f"/api/reports/weekly/{period['period']}").json()
        assert draft["title"] == "辍学周报告" and draft["versions"] == [] and draft["parts"] == []
        assert [row["title"] for row in draft["rows"]][-1] == "周末未销号个案"
        assert c.get("/api/reports/monthly/2026-W01").status_code == 404  # a week is not a month's period
        assert c.get("/api/reports/weekly/bogus").status_code == 404
        r = c.post(
            f"/weekly-reports/{period['assignment_id']}/sign",
            data={"reviewed": draft["digest"]},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        (period,) = c.get("/api/reports/weekly").json()
        assert period["state"].startswith("已报送") and period["version"] == 1 and period["document_id"]
        signed = c.get(f"/api/reports/weekly/{period['period']}").json()
        assert [v["version"] for v in signed["versions"]] == [1] and signed["changes"] == []

        service.login("wsr-staff")  # the office's report sums its schools' signed ones
        summed = c.get(f"/api/reports/weekly/{period['period']}", params={"unit": units["WSR"]}).json()
        assert summed["parts"] == [SH] and XD in summed["missing"] and summed["unit"]["name"].endswith("教育办公室")

        # Due and overdue items, and the district's figures.
        service.clock.advance(dt.timedelta(days=10))  # the 复学通知书 was due a week after the case opened
        service.login("wsr-sh-head")
        overdue = c.get("/api/district/overdue").json()
        assert ("return_notice", "王浩然") in {(i["kind"], i["student"]) for i in overdue}
        assert all(i["school"] == SH for i in overdue)
        service.login("wsr-staff")
        assert "李他校" not in {i["student"] for i in c.get("/api/district/overdue").json()}
        service.login("bureau")
        assert {"王浩然", "李他校"} <= {i["student"] for i in c.get("/api/district/overdue").json()}
        district = c.get("/api/district").json()
        assert district["total"]["dropped"] == 2 and district["retention_target"] == 0.99
        by_group = {g["name"]: g for g in district["groups"]}
        wsr = by_group["历城区王舍人街道教育办公室"]
        assert wsr["dropped"] == 1 and wsr["overdue"] >= 1
        assert {s["name"]: s["dropped"] for s in wsr["schools"]}[SH] == 1
        service.login("wsr-sh-head")
        own = c.get("/api/district").json()
        assert own["unit"]["name"] == SH and own["total"]["dropped"] == 1 and own["groups"] == []
