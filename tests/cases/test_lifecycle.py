"""A dropout case through its whole life, each due item appearing and clearing at the right time."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from service.cases.models import CaseStatus
from tests.api.conftest import Service, running_service, setup_licheng


def today(service: Service) -> dt.date:
    return service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date()


def due_kinds(service: Service, case_id: int) -> set[str]:
    return {d["kind"] for d in service.client.get(f"/api/cases/{case_id}").json()["due"]}


def advance_to(service: Service, day: dt.date, user: str) -> None:
    target = dt.datetime.combine(day, dt.time(9, 0), tzinfo=dt.timezone(dt.timedelta(hours=8)))
    if target > service.clock.now():
        service.clock.advance(target - service.clock.now())
    service.login(user)  # sessions expire while time passes


def test_a_case_from_suspected_to_returned(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        user = "wsr-sh-head"
        service.login(user)
        start = today(service)
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
                "dropout_date": start.isoformat(),
                "dropout_reason": "厌学",
                "key_groups": ["留守儿童"],
                "guardians": [
                    {"name": "王德福", "relation": "父亲", "phone": "13805310001", "address": "浙江省宁波市"}
                ],
            },
        )
        assert r.status_code == 201, r.text
        case = r.json()
        cid = case["id"]
        assert case["status"] == "suspected" and due_kinds(service, cid) == {"confirm"}
        # the same student twice is refused
        dup = c.post(
            "/api/cases",
            json={
                **{k: v for k, v in case.items() if k in ("student_name", "sex")},
                "school_id": units["WSR-SH"],
                "id_number": "370112201203070013",
                "birth_date": "2012-03-07",
                "grade": "六年级",
                "guardians": [{"name": "王德福", "phone": "13805310001"}],
            },
        )
        assert dup.status_code == 409 and dup.json()["code"] == "DUPLICATE_CASE"

        assert c.post(f"/api/cases/{cid}/confirm").json()["status"] == "dropped"
        assert due_kinds(service, cid) == {"return_notice"}

        # three failed attempts on three days
        for n, method in enumerate(("电话", "家访", "家访"), 1):
            advance_to(service, start + dt.timedelta(days=n), user)
            r = c.post(
                f"/api/cases/{cid}/attempts",
                json={
                    "date": today(service).isoformat(),
                    "staff": "孙丽（班主任）",
                    "method": method,
                    "result": "学生仍不愿到校",
                },
            )
            assert r.status_code == 201, r.text
            assert r.json()["status"] == "persuading"
            assert ("joint_persuasion" in due_kinds(service, cid)) == (n == 3)
        # the office sees it in its due list, and so does the bureau
        service.login("wsr-staff")
        assert any(d["kind"] == "joint_persuasion" and d["student"] == "王浩然" for d in c.get("/api/due").json())
        service.login("bureau")
        assert any(d["kind"] == "joint_persuasion" for d in c.get("/api/due").json())

        service.login(user)
        r = c.post(
            f"/api/cases/{cid}/attempts",
            json={
                "date": today(service).isoformat(),
                "method": "联合劝返",
                "staff": "王舍人街道办、石河村委会、赵明（校长）",
                "result": "监护人同意督促，学生仍未到校",
            },
        )
        assert "joint_persuasion" not in due_kinds(service, cid)

        # 复学通知书 with a report-by date a week away
        report_by = today(service) + dt.timedelta(days=7)
        r = c.post(f"/api/cases/{cid}/notices", json={"kind": "return_notice", "report_by": report_by.isoformat()})
        assert r.status_code == 201, r.text
        assert due_kinds(service, cid) == set()
        # a 限期复学通知书 is refused before the report-by date has passed
        early = c.post(
            f"/api/cases/{cid}/notices",
            json={"kind": "deadline_return_notice", "report_by": (report_by + dt.timedelta(days=7)).isoformat()},
        )
        assert early.status_code == 409 and early.json()["code"] == "NOTICE_NOT_DUE"

        advance_to(service, report_by, user)
        assert due_kinds(service, cid) == set()  # the last day is still in time
        advance_to(service, report_by + dt.timedelta(days=1), user)
        assert due_kinds(service, cid) == {"deadline_notice"}
        r = c.post(
            f"/api/cases/{cid}/notices",
            json={
                "kind": "deadline_return_notice",
                "issuer": "school",
                "report_by": (report_by + dt.timedelta(days=10)).isoformat(),
            },
        )
        assert r.status_code == 201, r.text
        assert due_kinds(service, cid) == set()

        # the 一生一表, regenerated: the new version supersedes the old
        first = c.post(f"/api/cases/{cid}/register").json()
        second = c.post(f"/api/cases/{cid}/register").json()
        docs = {d["id"]: d for d in c.get(f"/api/cases/{cid}").json()["documents"]}
        assert docs[first["id"]]["status"] == "superseded" and docs[second["id"]]["status"] == "valid"
        register = service.state.engine.archive.get(second["sha256"])
        from tests import checks

        text = checks.pdftotext(register)
        assert "王浩然" in text and "联合劝返" in text and "劝返中" in text

        r = c.post(f"/api/cases/{cid}/returned")
        assert r.json()["status"] == CaseStatus.RETURNED and due_kinds(service, cid) == set()
        closed = c.post(
            f"/api/cases/{cid}/attempts",
            json={"date": today(service).isoformat(), "staff": "x", "method": "电话", "result": "y"},
        )
        assert closed.status_code == 409 and closed.json()["code"] == "CASE_CLOSED"


def test_write_off_needs_a_reason_and_evidence(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("hjl-xx-head")
        cid = c.post(
            "/api/cases",
            json={
                "school_id": units["HJL-XX"],
                "student_name": "李四",
                "id_number": "370112201203070013",
                "sex": "男",
                "birth_date": "2012-03-07",
                "grade": "六年级",
                "confirmed": True,
                "guardians": [{"name": "李大", "relation": "父亲", "phone": "13805310002"}],
            },
        ).json()["id"]
        r = c.post(
            f"/api/cases/{cid}/write-off",
            data={"reason": "moved"},
            files=[("files", ("证明.pdf", b"%PDF-1.7 scan", "application/pdf"))],
        )
        assert r.status_code == 422 and "核销原因" in r.json()["message"]
        r = c.post(
            f"/api/cases/{cid}/write-off",
            data={"reason": "deceased"},
            files=[("files", ("死亡医学证明.pdf", io.BytesIO(b"%PDF-1.7 scan").read(), "application/pdf"))],
        )
        assert (
            r.status_code == 200 and r.json()["status"] == "written_off" and r.json()["write_off_reason"] == "实际死亡"
        )
        # another school's principal cannot see the case
        service.login("wsr-sh-head")
        assert c.get(f"/api/cases/{cid}").status_code == 404
