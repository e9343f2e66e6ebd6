"""The 销号 forms on a case page and the ledger pages, without a browser: what a person sees and
downloads, and that another school's case or ledger stays out of reach."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from tests.api.conftest import running_service, setup_licheng
from tests.district import scope_of
from tests.ledgers.term import sheet_rows

CASE = {
    "student_name": "王浩然",
    "id_number": "370112201203070013",
    "sex": "男",
    "birth_date": "2012-03-07",
    "grade": "六年级",
    "confirmed": True,
    "guardians": [{"name": "王德福", "relation": "父亲", "phone": "13805310001"}],
}


def test_a_school_closes_a_case_on_its_page_and_the_ledger_shows_it(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        r = c.post("/api/cases", json={**CASE, "school_id": units["WSR-SH"]})
        cid = r.json()["id"]
        page = c.get(f"/cases/{cid}").text
        for words in ("销号", "已复学", "核销（非真实性失学辍学）", "延缓入学/休学（已记录联合劝返 0 次）", "变更记录"):
            assert words in page
        # a write-off without evidence says what the annex asks for, and nothing changes
        r = c.post(f"/cases/{cid}/write-off", data={"reason": "deceased"})
        assert r.status_code == 200 and "死亡医学证明、火化证明或户口注销证明" in r.text
        r = c.post(
            f"/cases/{cid}/defer",
            data={"basis": "joint_persuasion", "authority": "历城区人民政府", "approved_on": "2020-01-01"},
            files={"files": ("批复.pdf", b"%PDF-1.4 x", "application/pdf")},
        )
        assert "已记录联合劝返 0 次，满三次后才能以此为依据办理" in r.text
        assert c.get(f"/api/cases/{cid}").json()["status"] == "dropped"

        service.login("wsr-xd-head")  # another school cannot act on it
        assert c.post(f"/cases/{cid}/returned", data={"back_on": "2020-01-01"}).status_code == 404
        assert "王浩然" not in c.get("/ledgers/dropouts").text

        service.login("wsr-sh-head")
        assert "王浩然" in c.get("/ledgers/dropouts").text
        r = c.post(
            f"/cases/{cid}/write-off",
            data={"reason": "deceased", "note": "派出所出具证明"},
            files={"files": ("死亡证明.jpg", b"\xff\xd8\xff jpeg", "image/jpeg")},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        page = c.get(f"/cases/{cid}").text
        assert "销号：核销" in page and "实际死亡" in page and "死亡证明.jpg" in page
        assert "辍学→核销（实际死亡）" in page  # the history names the change and who made it
        assert 'action="/cases/' + str(cid) + '/returned"' not in page

        ledger = c.get("/ledgers/dropouts").text
        assert '本学年已销号 <span class="muted">1 人' in ledger and "核销" in ledger
        service.login("wsr-staff")  # the office sees its school's ledger and exports it
        r = c.get(f"/ledgers/dropouts/export.xlsx?unit={units['WSR']}&purpose=存档")
        assert r.status_code == 200
        assert [row[3] for row in sheet_rows(r.content, "已销号")[2:]] == ["王浩然"]
        assert sheet_rows(r.content, "在册")[2:] == []
        r = c.get(
            f"/ledgers/dropouts/provincial.xlsx?unit={units['WSR']}&purpose=存档"
        )  # the default layout: every column
        assert sheet_rows(r.content)[0][:3] == ["学校", "姓名", "身份证号"] and sheet_rows(r.content)[1][1] == "王浩然"
        assert c.get(f"/ledgers/dropouts?unit={units['HJL']}").status_code == 404
        service.login("bureau")
        assert "三本台账" in c.get("/ledgers").text


def test_a_school_reviews_and_signs_its_monthly_report_on_its_page(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("bureau")
        r = c.post(
            "/api/campaigns",
            json={
                "name": "控辍保学动态管理月报",
                "year": 2026,
                "recurrence": "monthly",
                "due_day": 20,
                "kinds": ["report"],
            },
        )
        campaign = r.json()
        service.wait_job(c.post(f"/api/campaigns/{campaign['id']}/issue").json()["id"])
        deadline = dt.datetime.fromisoformat(campaign["deadline"])
        opening = deadline.replace(day=1, hour=1)
        if opening > service.clock.now():
            service.clock.advance(opening - service.clock.now())
        period = f"{deadline.astimezone(dt.timezone(dt.timedelta(hours=8))):%Y-%m}"

        service.login("wsr-sh-head")
        (mine,) = [
            a for a in c.get("/api/assignments").json() if a["period"] == period and a["unit_name"].endswith("石河小学")
        ]
        page = c.get("/sign").text
        assert f'href="/monthly-reports/{mine["id"]}"' in page and "核对数据生成的月报表并签章" in page
        page = c.get(f"/monthly-reports/{mine['id']}").text
        assert "新增疑似辍学（含失学）" in page and "本期数据（尚未签章）" in page
        reviewed = re.search(r'name="reviewed" value="([0-9a-f]+)"', page)
        assert reviewed is not None
        r = c.post(f"/monthly-reports/{mine['id']}/sign", data={"reviewed": "stale"})
        assert r.status_code == 200 and "核对之后数据有变化" in r.text
        r = c.post(f"/monthly-reports/{mine['id']}/sign", data={"reviewed": reviewed[1]}, follow_redirects=False)
        assert r.status_code == 303, r.text
        page = c.get(f"/monthly-reports/{mine['id']}").text
        assert "第 1 版" in page and "已签章报送，数据没有变化。" in page
        assert any(a["state"] == "signed" for a in c.get("/api/assignments").json() if a["id"] == mine["id"])

        service.login("wsr-xd-head")  # another school's report is out of reach
        assert c.get(f"/monthly-reports/{mine['id']}").status_code == 404
        assert c.post(f"/monthly-reports/{mine['id']}/sign", data={"reviewed": reviewed[1]}).status_code == 404
        service.login("wsr-staff")
        page = c.get(f"/monthly-reports?unit={units['WSR']}").text
        assert "已报送：历城区王舍人街道石河小学" in page and "未报送：历城区王舍人街道辛甸小学" in page
        rows = sheet_rows(c.get(f"/monthly-reports/export.xlsx?period={period}&unit={units['WSR']}").content)
        assert rows[2] == ["项目", "人数"] and rows[3] == ["新增疑似辍学（含失学）", 0]
        assert ["汇总单位", "历城区王舍人街道石河小学"] in rows
        assert c.get(f"/monthly-reports/export.xlsx?period={period}&unit={units['HJL']}").status_code == 404


def test_a_school_reviews_and_signs_its_weekly_report_on_its_page(tmp_path: Path) -> None:
    """The 辍学周报告 made from the data: the same review and signing as the monthly one, over the
    ISO week before the period's, on its own pages."""
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("bureau")
        r = c.post("/api/campaigns", json={"name": "辍学周报告", "year": 2026, "recurrence": "weekly", "due_day": 3})
        campaign = r.json()
        service.wait_job(c.post(f"/api/campaigns/{campaign['id']}/issue").json()["id"])
        deadline = dt.datetime.fromisoformat(campaign["deadline"]).astimezone(dt.timezone(dt.timedelta(hours=8)))
        monday = deadline - dt.timedelta(days=2, hours=15)
        if monday > service.clock.now():
            service.clock.advance(monday - service.clock.now())
        iso = deadline.isocalendar()
        period = f"{iso.year:04d}-W{iso.week:02d}"
        last_monday = dt.date.fromisocalendar(iso.year, iso.week, 1) - dt.timedelta(days=7)

        service.login("wsr-sh-head")
        (mine,) = [
            a for a in c.get("/api/assignments").json() if a["period"] == period and a["unit_name"].endswith("石河小学")
        ]
        page = c.get("/sign").text
        assert f'href="/weekly-reports/{mine["id"]}"' in page and "核对数据生成的周报告并签章" in page
        page = c.get(f"/weekly-reports/{mine['id']}").text
        assert "<h1>辍学周报告</h1>" in page and f"{iso.year}年第{iso.week}周报送" in page
        assert f"统计 {last_monday} 至 {last_monday + dt.timedelta(days=6)}" in page
        assert "周末未销号个案" in page and "本期数据（尚未签章）" in page
        assert f'action="/weekly-reports/{mine["id"]}/sign"' in page
        reviewed = re.search(r'name="reviewed" value="([0-9a-f]+)"', page)
        assert reviewed is not None
        r = c.post(f"/weekly-reports/{mine['id']}/sign", data={"reviewed": "stale"})
        assert r.status_code == 200 and "核对之后数据有变化，请重新核对周报告" in r.text
        r = c.post(f"/weekly-reports/{mine['id']}/sign", data={"reviewed": reviewed[1]}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith(f"/weekly-reports/{mine['id']}"), r.text
        page = c.get(f"/weekly-reports/{mine['id']}").text
        assert "第 1 版" in page and "已签章报送，数据没有变化。" in page
        assert any(a["state"] == "signed" for a in c.get("/api/assignments").json() if a["id"] == mine["id"])
        page = c.get("/sign").text
        assert "查看或更正周报告" in page and f'action="/reports/{mine["id"]}"' not in page

        service.login("wsr-xd-head")  # another school's report is out of reach
        assert c.get(f"/weekly-reports/{mine['id']}").status_code == 404
        assert c.post(f"/weekly-reports/{mine['id']}/sign", data={"reviewed": reviewed[1]}).status_code == 404
        service.login("wsr-staff")
        page = c.get(f"/weekly-reports?unit={units['WSR']}").text
        assert "周报告汇总" in page and f"{iso.year}年第{iso.week}周报送" in page
        assert "已报送：历城区王舍人街道石河小学" in page and "未报送：历城区王舍人街道辛甸小学" in page
        rows = sheet_rows(c.get(f"/weekly-reports/export.xlsx?period={period}&unit={units['WSR']}").content)
        assert rows[2] == ["项目", "人数"] and ["周末未销号个案", 0] in rows
        assert ["汇总单位", "历城区王舍人街道石河小学"] in rows
        # a month's period is not a week's
        assert c.get(f"/weekly-reports/export.xlsx?period=2026-10&unit={units['WSR']}").status_code == 404


def test_the_bureau_dashboard_shows_the_districts_figures_and_overdue_list(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        cid = c.post("/api/cases", json={**CASE, "school_id": units["WSR-SH"]}).json()["id"]
        assert c.get("/district").status_code == 200  # a school sees its own line
        service.clock.advance(dt.timedelta(days=9))  # the 复学通知书 a week after registering is overdue
        service.login("bureau")
        r = c.post("/district/rolls", data={"school_id": units["WSR-SH"], "students": "80"}, follow_redirects=False)
        assert r.status_code == 303
        page = c.get("/district").text
        assert "未销号个案</dt><dd>1（疑似辍学 0，辍学 1，劝返中 0）" in page
        assert "98.75%" in page and "低于目标" in page  # 79 of 80 on the roll, under 99 %
        assert f'href="/cases/{cid}">王浩然</a>' in page and "应向监护人送达《义务教育复学通知书》" in page
        rows = sheet_rows(c.get("/district/export.xlsx").content)
        (shihe,) = [r for r in rows if r[0] == "历城区王舍人街道石河小学"]
        assert shihe[1:] == ["历城区王舍人街道教育办公室", 0, 1, 0, 1, 0, 0, 80, 0.9875]
        assert rows[-1][:2] == ["济南市历城区教育和体育局", "合计"]
        service.login("wsr-staff")  # an office cannot set a roll
        r = c.post("/district/rolls", data={"school_id": units["WSR-SH"], "students": "90"})
        assert r.status_code == 403
        service.login("hjl-staff")  # nor see another office's schools
        assert "王浩然" not in c.get("/district").text
        assert c.get(f"/district?unit={units['WSR']}").status_code == 404


def test_the_exchange_page_saves_a_mapping_and_imports_a_platform_list(tmp_path: Path) -> None:
    from tests.ledgers.term import xlsx
    from tests.ledgers.test_exchange import HEADER, PLATFORM, platform_row

    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        form = {f"map_{k}": v for k, v in PLATFORM.items()}
        assert c.post("/exchange/mapping", data=form).status_code == 403  # only the bureau maps
        service.login("bureau")
        r = c.post("/exchange/mapping", data={**form, "map_guardian_phone": ""})
        assert "监护人联系电话（必填）" in r.text and "必须填写平台表格中对应的列名" in r.text
        assert 'value="家长姓名"' in r.text  # what was typed is kept
        r = c.post("/exchange/mapping", data=form)
        assert "已保存列对应关系。" in r.text and 'value="家长手机"' in r.text

        service.login("wsr-sh-head")
        sheet = xlsx([HEADER, platform_row(91, "历城区王舍人街道石河小学", "杨新一")])
        r = c.post("/exchange/suspected", files={"file": ("疑似辍学.xlsx", sheet)})
        assert "新登记疑似辍学 1 人" in r.text
        assert _last_read(service) == ("exchange_import", "", 1, "wsr-sh-head")  # the answer names the child
        assert re.search(r'<a href="/cases/\d+">杨新一</a>', r.text)  # the child named, not 个案 4
        r = c.post("/exchange/suspected", files={"file": ("疑似辍学.xlsx", sheet)})
        assert "新登记疑似辍学 0 人；已有未结案个案、未重复登记 1 人（第 2 行 杨新一）" in r.text
        roster = xlsx([("姓名", "身份证号"), ("甲", "370112202003010011")])
        register = xlsx([("姓名", "学籍号"), ("乙", "L1")])
        r = c.post("/exchange/compare", files={"roster": ("名单.xlsx", roster), "xueji": ("学籍.xlsx", register)})
        assert "在名单、不在学籍系统：1 人" in r.text and "在学籍系统、不在名单（在籍不在校，需核实）：1 人" in r.text
        assert _last_read(service) == ("exchange_compare", "", 2, "wsr-sh-head")


def _last_read(service: Any) -> tuple[str, str, int | None, str]:
    """The newest access-log entry: what was read, and by whom."""
    from sqlalchemy import select

    from service.audit.models import AccessEntry

    service.state.access.flush()
    with service.state.db.session() as s:
        e = s.scalars(select(AccessEntry).order_by(AccessEntry.id.desc()).limit(1)).one()
        return (e.subject, e.subject_id, e.rows, e.username)


def test_the_bureau_sets_the_term_and_a_rule_and_a_school_clears_an_item_on_its_list(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        today = service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
        service.login("wsr-sh-head")  # a school can neither set the term nor change a rule
        assert c.post("/deadlines/terms", data={"name": "秋季学期", "starts_on": today.isoformat()}).status_code == 403
        assert c.post("/deadlines/rules", data={"key": "survey", "days": "12", "active": "yes"}).status_code == 403
        service.login("bureau")
        r = c.post("/deadlines/rules", data={"key": "monthly_report", "days": "31", "lead_days": "0", "active": "yes"})
        assert "每月几日应在 1 到 28 之间" in r.text
        r = c.post("/deadlines/terms", data={"name": "本学期", "starts_on": today.isoformat()}, follow_redirects=False)
        assert r.status_code == 303
        r = c.post(
            "/deadlines/rules",
            data={"key": "survey", "days": "12", "lead_days": "0", "active": "yes", "source": "历城区通知 二.(三).2"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        page = c.get("/deadlines").text
        assert "本学期：" in page and 'name="days" type="number" value="12"' in page and "历城区通知 二.(三).2" in page
        # a rule the bureau gave no source of its own shows the seed notice as another place's reference
        assert "参考外地：县实施方案 二.(三).4（非本局文件，请填写本局依据）" in page

        service.login("wsr-sh-head")
        page = c.get("/cases").text
        assert "开学排查（入学、变动、辍学及学籍变化）（本学期）" in page and "依据：历城区通知 二.(三).2" in page
        items = [d for d in c.get("/api/due").json() if d["kind"] == "survey"]
        assert [(d["due"], d["overdue"]) for d in items] == [((today + dt.timedelta(days=12)).isoformat(), False)]
        form = {"unit_id": str(units["WSR-SH"]), "key": "survey", "period": items[0]["period"]}
        service.login("hjl-xx-head")  # another school cannot clear it
        assert c.post("/deadlines/done", data=form).status_code == 404
        service.login("wsr-sh-head")
        rows = sheet_rows(c.get("/deadlines/export.xlsx?purpose=存档").content)
        assert rows[1] == ["状态", "事项", "依据", "学校", "学生", "个案编号", "期限"]
        assert ["待办", "开学排查（入学、变动、辍学及学籍变化）（本学期）", "历城区通知 二.(三).2"] in [
            r[:3] for r in rows[2:]
        ]
        assert c.post("/deadlines/done", data=form, follow_redirects=False).status_code == 303
        assert not [d for d in c.get("/api/due").json() if d["kind"] == "survey"]
        rows = sheet_rows(c.get("/deadlines/export.xlsx?purpose=存档").content)
        assert "开学排查（入学、变动、辍学及学籍变化）（本学期）" not in [r[1] for r in rows[2:]]


def test_a_school_imports_its_first_grade_roster_and_marks_who_reported(tmp_path: Path) -> None:
    from tests.ledgers.term import xlsx
    from tests.rosters.roster_data import resident_id

    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        year = str(service.clock.now().year if service.clock.now().month >= 9 else service.clock.now().year - 1)
        kid = resident_id(7, "20200901", female=False)
        sheet = xlsx(
            [("儿童姓名", "身份证号", "性别", "出生日期", "随迁子女"), ("马小一", kid, "男", "2020-09-01", "是")]
        )
        service.login("wsr-xd-head")  # another school's ledger is out of reach
        r = c.post(
            "/ledgers/children/import",
            data={"school_id": units["WSR-SH"], "year": year},
            files={"file": ("名单.xlsx", sheet)},
        )
        assert r.status_code == 404
        service.login("wsr-sh-head")
        wrong = kid[:-1] + ("1" if kid[-1] != "1" else "2")  # a wrong check digit
        bad = xlsx([("儿童姓名", "身份证号"), ("马小一", wrong)])
        r = c.post(
            "/ledgers/children/import",
            data={"school_id": units["WSR-SH"], "year": year},
            files={"file": ("名单.xlsx", bad)},
        )
        assert "逐行错误" in r.text and "未导入任何儿童" in r.text
        r = c.post(
            "/ledgers/children/import",
            data={"school_id": units["WSR-SH"], "year": year},
            files={"file": ("名单.xlsx", sheet)},
        )
        assert "已导入 1 名儿童。" in r.text and "随迁子女 1 名" in r.text and "未报到 1 名" in r.text
        entry = re.search(
            r'action="/children/report" class="row" data-once><input type="hidden" name="entry_id" value="(\d+)"',
            r.text,
        )
        assert entry is not None
        today = service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
        r = c.post("/children/report", data={"entry_id": entry[1], "reported_on": today}, follow_redirects=False)
        assert r.status_code == 303
        page = c.get(f"/ledgers/children?year={year}").text
        assert f"{today} 已报到" in page and "未报到 0 名" in page


def test_a_school_reviews_and_signs_its_info_report_on_its_page(tmp_path: Path) -> None:
    """The 学生失学辍学信息报告 of a term, made from the data: the school sees each child it lists,
    signs on its page, and its office sees the sum with who has not filed; the Excel lists the children."""
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        state = service.state
        today = state.ledgers.today()
        with state.db.session() as s:  # the bureau entered the term's start (today) on its 期限 page
            state.ledgers.deadlines.set_term(s, scope_of(s, "bureau"), "本学期", today)
            s.commit()
        service.login("bureau")
        r = c.post(
            "/api/campaigns", json={"name": "学生失学辍学信息报告", "year": 2026, "recurrence": "term", "due_day": 15}
        )
        assert r.status_code == 201, r.text
        service.wait_job(c.post(f"/api/campaigns/{r.json()['id']}/issue").json()["id"])
        page = c.get(f"/campaigns/{r.json()['id']}").text
        assert "每学期开学后15日内报送" in page and f"{today.year}年{today.month}月{today.day}日开学" in page
        service.login("wsr-sh-head")
        c.post(
            "/api/cases",
            json={**CASE, "school_id": units["WSR-SH"], "dropout_reason": "厌学", "reason_detail": "随父母外出"},
        )
        (mine,) = [
            a
            for a in c.get("/api/assignments").json()
            if a["period"] == today.isoformat() and a["unit_name"].endswith("石河小学")
        ]
        page = c.get("/sign").text
        assert f'href="/info-reports/{mine["id"]}"' in page and "核对数据生成的失学辍学信息报告并签章" in page
        page = c.get(f"/info-reports/{mine['id']}").text
        assert "<h1>学生失学辍学信息报告</h1>" in page and "失学辍学学生名单" in page
        assert _last_read(service) == ("report", str(mine["id"]), 1, "wsr-sh-head")  # it names a child: recorded
        assert "王浩然" in page and "随父母外出" in page and "报告时未销号（按辍学原因）" in page
        reviewed = re.search(r'name="reviewed" value="([0-9a-f]+)"', page)
        assert reviewed is not None
        r = c.post(f"/info-reports/{mine['id']}/sign", data={"reviewed": reviewed[1]}, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert "已签章报送，数据没有变化。" in c.get(f"/info-reports/{mine['id']}").text
        assert not [i for i in c.get("/api/due").json() if i["kind"] == "info_report"]  # cleared by signing

        service.login("wsr-xd-head")
        assert c.get(f"/info-reports/{mine['id']}").status_code == 404
        assert [i["title"] for i in c.get("/api/due").json() if i["kind"] == "info_report"] == [
            f"学生失学辍学信息报告（{today.year}年{today.month}月{today.day}日开学）"
        ]
        service.login("wsr-staff")
        page = c.get(f"/info-reports?unit={units['WSR']}").text
        assert "信息报告汇总" in page and "已报送：历城区王舍人街道石河小学" in page and "王浩然" in page
        assert _last_read(service) == ("report_summary", str(units["WSR"]), 1, "wsr-staff")
        summary = c.get(f"/api/reports/term/{today.isoformat()}?unit={units['WSR']}")
        assert summary.status_code == 200, summary.text
        assert _last_read(service) == ("report_summary", str(units["WSR"]), 1, "wsr-staff")
        rows = sheet_rows(
            c.get(f"/info-reports/export.xlsx?period={today.isoformat()}&unit={units['WSR']}&purpose=存档").content
        )
        assert ["辍学（含劝返中）", 1] in [r[:2] for r in rows]
        assert ["历城区王舍人街道石河小学", "王浩然", "六年级", "辍学", "非重点群体", "厌学", "随父母外出"] in rows


def test_a_school_records_home_teaching_for_a_deferred_child_on_its_page(tmp_path: Path) -> None:
    """送教上门: the deferral says the child is taught at home; the case page then takes a visit a
    week (day, teachers, content, record) and lists them; a visit without its record is refused."""
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        cid = c.post("/api/cases", json={**CASE, "school_id": units["WSR-SH"]}).json()["id"]
        today = service.state.cases.today().isoformat()
        r = c.post(
            f"/cases/{cid}/defer",
            data={
                "basis": "disability_assessment",
                "authority": "历城区残疾人联合会",
                "approved_on": today,
                "home_teaching": "yes",
            },
            files={"files": ("评估意见.pdf", b"%PDF-1.4 x", "application/pdf")},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        page = c.get(f"/cases/{cid}").text
        assert "送教上门" in page and "还没有送教上门记录。" in page and f'action="/cases/{cid}/home-visits"' in page
        visit = {"visit_date": today, "teachers": "资源教师 李红", "content": "语文识字、康复训练"}
        r = c.post(f"/cases/{cid}/home-visits", data=visit)
        assert r.status_code == 200 and "送教记录：请上传一份送教记录" in r.text
        r = c.post(
            f"/cases/{cid}/home-visits",
            data=visit,
            files={"files": ("送教照片.jpg", b"\xff\xd8\xff jpeg", "image/jpeg")},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"].endswith("?done=home_visit"), r.text
        page = c.get(r.headers["location"]).text
        assert "已记录这次送教上门。" in page and "语文识字、康复训练" in page and "送教照片.jpg" in page
        assert [v["teachers"] for v in c.get(f"/api/cases/{cid}").json()["home_visits"]] == ["资源教师 李红"]
        service.login("wsr-xd-head")  # another school's case stays out of reach
        assert c.post(f"/cases/{cid}/home-visits", data=visit).status_code == 404


def test_ledger_exports_open_readable_with_the_retention_as_a_percentage(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        assert c.post("/api/cases", json={**CASE, "school_id": units["WSR-SH"]}).status_code == 201
        service.login("bureau")
        c.post("/district/rolls", data={"school_id": units["WSR-SH"], "students": "500"})

        def sheet(url: str, name: str | None = None) -> Any:
            r = c.get(url)
            assert r.status_code == 200, r.text
            book = load_workbook(io.BytesIO(r.content))
            return book[name] if name else book.active

        district = sheet("/district/export.xlsx")
        header = [cell.value for cell in district[2]]
        column = header.index("巩固率") + 1
        (row,) = [r for r in district.iter_rows(min_row=3) if r[0].value == "历城区王舍人街道石河小学"]
        retention = row[column - 1]
        assert retention.value == 0.998 and retention.number_format == "0.00%"  # Excel shows 99.80%
        assert district.column_dimensions["A"].width >= 2 * len("历城区王舍人街道石河小学")
        for url, name in (
            ("/district/export.xlsx", None),
            (f"/ledgers/dropouts/export.xlsx?unit={units['WSR']}&purpose=存档", "在册"),
            (f"/ledgers/dropouts/provincial.xlsx?unit={units['WSR']}&purpose=存档", None),
            ("/deadlines/export.xlsx?purpose=存档", None),
        ):
            ws = sheet(url, name)
            for col in range(1, ws.max_column + 1):  # every column set, none left at Excel's default
                letter = get_column_letter(col)
                longest = max(len(str(ws.cell(r, col).value or "")) for r in range(2, ws.max_row + 1))
                if longest:
                    assert ws.column_dimensions[letter].width >= min(50, longest), (url, letter)
