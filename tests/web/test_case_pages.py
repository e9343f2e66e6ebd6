"""The case pages without a browser: the registration form's official fields and its choices, a
notice's date and errors, attempts with their material, a report sent without a file."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from tests.api.conftest import running_service, setup_licheng

FORM = {
    "student_name": "孙小明",
    "id_number": "370112201203070013",
    "sex": "男",
    "birth_date": "2012-03-07",
    "grade": "六年级",
    "guardian_name": "孙大明",
    "guardian_phone": "13805310009",
}


def _beijing_evening(service: object) -> None:
    """Move the clock to 18:30 UTC, when it is already tomorrow in Beijing."""
    clock = service.clock  # type: ignore[attr-defined]
    now = clock.now()
    target = now.replace(hour=18, minute=30, second=0, microsecond=0)
    if target <= now:
        target += dt.timedelta(days=1)
    clock.advance(target - now)


def test_registration_keeps_no_silent_default_and_saves_the_official_fields(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        service.login("wsr-xd-head")
        c = service.client
        page = c.get("/cases/new").text
        # nothing is chosen for the user: no reason, no relation
        assert re.search(r'<option value="">尚未查明', page) and "<option selected>厌学" not in page
        assert "<option selected>父亲" not in page
        for label in ("民族", "全国学籍号", "原因分析", "帮扶措施", "重点群体", "留守儿童"):
            assert label in page, label
        form = {**FORM, "school_id": str(units["WSR-XD"])}
        r = c.post("/cases/new", data=form)
        assert r.status_code == 200 and "请选择监护人与学生的关系。" in r.text
        assert c.get("/api/cases").json() == []  # nothing half-saved

        full = {
            **form,
            "guardian_relation": "母亲",
            "guardian_address": "浙江省宁波市务工",  # 工作单位或务工地, printed on the 一生一表
            "ethnicity": "回族",
            "student_number": "G370112201203070013",
            "key_groups": ["留守儿童", "家庭经济困难"],
            "reason_detail": "父母在外务工，学生沉迷手机，成绩下滑后不愿到校。",
            "measures": "班主任每周家访，结对帮扶，申请生活补助。",
        }
        r = c.post("/cases/new", data=full, follow_redirects=False)
        assert r.status_code == 303, r.text
        case = c.get(r.headers["location"].replace("/cases/", "/api/cases/")).json()
        assert case["status"] == "suspected" and case["dropout_reason"] is None  # saved empty, not 厌学
        assert case["guardians"][0]["relation"] == "母亲"
        assert case["guardians"][0]["address"] == "浙江省宁波市务工"
        assert case["ethnicity"] == "回族" and case["student_number"] == "G370112201203070013"
        assert case["key_groups"] == ["留守儿童", "家庭经济困难"]
        assert case["reason_detail"].startswith("父母在外务工") and case["measures"].startswith("班主任每周家访")
        page = c.get(r.headers["location"]).text
        assert "回族" in page and "留守儿童、家庭经济困难" in page and "结对帮扶" in page


def test_notice_date_errors_attempt_material_and_beijing_dates(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        service.login("wsr-xd-head")
        c = service.client
        form = {**FORM, "school_id": str(units["WSR-XD"]), "guardian_relation": "父亲", "confirmed": "yes"}
        location = c.post("/cases/new", data=form, follow_redirects=False).headers["location"]
        case_id = int(location.rsplit("/", 1)[1])
        _beijing_evening(service)
        service.login("wsr-xd-head")  # the session ended while the clock moved
        beijing_today = (service.clock.now() + dt.timedelta(hours=8)).date()

        # a past date: the error sits at the notice form, which keeps the date and kind chosen
        past = (beijing_today - dt.timedelta(days=1)).isoformat()
        r = c.post(f"/cases/{case_id}/notice", data={"kind": "return_notice", "report_by": past})
        assert r.status_code == 200
        notice_form = r.text[r.text.index('id="notice-form"') :]
        notice_form = notice_form[: notice_form.index("</form>")]
        assert "报到截止日期应晚于今天。" in notice_form and 'id="notice-error"' in notice_form
        assert f'value="{past}"' in notice_form

        later = (beijing_today + dt.timedelta(days=7)).isoformat()
        r = c.post(f"/cases/{case_id}/notice", data={"kind": "return_notice", "report_by": later})
        assert r.status_code == 200 and "报到截止日期应晚于今天" not in r.text
        (doc,) = c.get(f"/api/cases/{case_id}").json()["documents"]
        assert doc["issued_at"][:10] != beijing_today.isoformat()  # UTC is still yesterday
        row = r.text[r.text.index("义务教育复学通知书") :]
        assert f'data-label="签发">{beijing_today.isoformat()}<' in row[:400]

        # a 劝返 attempt with its material
        photo = b"\xff\xd8\xff\xe0 a photo of the visit"
        r = c.post(
            f"/cases/{case_id}/attempts",
            data={"date": beijing_today.isoformat(), "method": "家访", "staff": "钱红", "result": "家长答应下周送返"},
            files=[("attachments", ("家访照片.jpg", photo, "image/jpeg"))],
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"].endswith("?done=attempt"), re.findall(
            r"class=\"error\"[^<]*<", r.text
        )
        page = c.get(r.headers["location"]).text
        assert "已记录这次劝返。" in page
        link = re.search(rf'href="(/cases/{case_id}/files/\d+)">附件：家访照片.jpg', page)
        assert link is not None
        got = c.get(link.group(1))
        assert got.status_code == 200 and got.content == photo
        # a photo opens in place as an image, never sniffed as anything else
        assert got.headers["content-type"] == "image/jpeg" and got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"].startswith("inline;")
        # six files at once is more than an attempt takes: nothing is recorded
        r = c.post(
            f"/cases/{case_id}/attempts",
            data={"date": beijing_today.isoformat(), "method": "电话", "staff": "钱红", "result": "未接通"},
            files=[("attachments", (f"{i}.jpg", photo, "image/jpeg")) for i in range(6)],
        )
        assert "最多上传 5 个附件" in r.text and "劝返记录（1 次）" in r.text

        service.login("wsr-sh-head")  # another school's attachment answers 404
        assert c.get(link.group(1)).status_code == 404


def test_the_case_page_says_which_step_is_overdue_and_on_what_basis(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        service.login("wsr-xd-head")
        c = service.client
        left = (service.clock.now() + dt.timedelta(hours=8)).date() - dt.timedelta(days=21)
        form = {
            **FORM,
            "school_id": str(units["WSR-XD"]),
            "guardian_relation": "父亲",
            "confirmed": "yes",
            "dropout_date": left.isoformat(),
        }
        location = c.post("/cases/new", data=form, follow_redirects=False).headers["location"]
        page = c.get(location).text
        # a week from the day the child left, the 复学通知书 is three weeks late
        assert re.search(r'class="notice bad"[^>]*><strong>已逾期</strong>：应向监护人送达《义务教育复学通知书》', page)
        assert "依据：" in page


def test_a_guardians_erasure_request_is_done_by_the_bureau_from_the_case_page(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("wsr-xd-head")
        form = {**FORM, "school_id": str(units["WSR-XD"]), "guardian_relation": "父亲", "confirmed": "yes"}
        case_id = int(c.post("/cases/new", data=form, follow_redirects=False).headers["location"].rsplit("/", 1)[1])
        # the school cannot erase, and an open case cannot be erased by anyone
        r = c.post(f"/api/cases/{case_id}/erasure", json={"reason": "监护人书面申请"})
        assert r.status_code == 403
        service.login("bureau")
        assert "删除个人信息" not in c.get(f"/cases/{case_id}").text  # open: no such form
        r = c.post(f"/api/cases/{case_id}/erasure", json={"reason": "监护人书面申请"})
        assert r.status_code == 409 and r.json()["code"] == "CASE_STILL_OPEN"
        service.login("wsr-xd-head")
        assert c.post(f"/api/cases/{case_id}/returned", json={}).json()["status"] == "returned"
        service.login("bureau")
        page = c.get(f"/cases/{case_id}").text
        assert "删除个人信息" in page and f'action="/cases/{case_id}/erasure"' in page
        # no reason: the error stays on the form, nothing is removed
        r = c.post(f"/cases/{case_id}/erasure", data={"reason": " "})
        assert r.status_code == 200 and "请填写删除的依据" in r.text
        assert c.get(f"/api/cases/{case_id}").json()["student_name"] == "孙小明"
        r = c.post(f"/cases/{case_id}/erasure", data={"reason": "监护人孙大明 书面申请"}, follow_redirects=False)
        assert r.status_code == 303
        case = c.get(f"/api/cases/{case_id}").json()
        assert case["student_name"] == "（已删除）" and case["id_number"] == "" and case["erased_at"]
        assert case["guardians"][0]["phone"] == ""
        assert "个人信息已删除" in c.get(f"/cases/{case_id}").text
        r = c.post(f"/api/cases/{case_id}/erasure", json={"reason": "监护人书面申请"})
        assert r.status_code == 409 and r.json()["code"] == "ALREADY_ERASED"
