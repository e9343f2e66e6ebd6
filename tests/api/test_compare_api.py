"""四查三比对 through the JSON API and the page: the bureau uploads lists (a bad one refused whole
with its rows), the comparison runs on upload, a school lists and answers its own findings (masked
身份证号, evidence attached), another school neither sees nor answers them, and the reads of the
list are in the access log."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from service.audit.models import AccessEntry
from tests.api.conftest import running_service, setup_licheng, xlsx
from tests.rosters.roster_data import resident_id

SH, HJL_XX = "历城区王舍人街道石河小学", "历城区洪家楼小学"
HEADER = ("姓名", "身份证号", "学校名称", "乡镇（街道）")


def kid(n: int) -> str:
    return resident_id(2 * n + 1, "20170510", female=False)


def test_lists_run_findings_and_answers_by_role(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("bureau")
        bad = xlsx([HEADER, ("", kid(1), SH, ""), ("李四", "12345", SH, ""), ("王五", kid(3), "外区小学", "")])
        r = c.post("/api/compare/lists", data={"kind": "xueji"}, files={"file": ("学籍.xlsx", bad)})
        assert r.status_code == 422 and r.json()["code"] == "COMPARE_LIST_INVALID", r.text
        assert [e["row"] for e in r.json()["details"]["errors"]] == [2, 3, 4]
        assert c.get("/api/compare/lists").json() == []
        r = c.post("/api/compare/run")
        assert r.status_code == 422 and r.json()["code"] == "COMPARE_NO_LISTS"

        xueji = xlsx([("学生姓名", "公民身份号码", "就读学校"), ("李空挂", kid(1), SH), ("陈他校", kid(2), HJL_XX)])
        mapping = '{"name": "学生姓名", "id_number": "公民身份号码", "school": "就读学校"}'
        r = c.post(
            "/api/compare/lists",
            data={"kind": "xueji", "mapping": mapping},
            files={"file": ("学籍.xlsx", xueji)},
        )
        assert r.status_code == 201, r.text
        assert r.json()["list"]["version"] == 1 and r.json()["run"]["new_findings"] == 2
        huji = xlsx([HEADER, ("张失学", kid(4), "", "王舍人街道"), ("李空挂", kid(1), "", "王舍人街道")])
        r = c.post("/api/compare/lists", data={"kind": "huji"}, files={"file": ("户籍.xlsx", huji)})
        assert r.status_code == 201 and r.json()["run"]["new_findings"] == 1, r.text

        # the school: its own finding only, masked
        service.login("wsr-sh-head")
        mine = c.get("/api/compare/findings").json()
        assert mine["total"] == 1
        finding = mine["findings"][0]
        assert (finding["student_name"], finding["reason"], finding["unit"]["name"]) == (
            "李空挂",
            "可能辍学或空挂学籍（有学籍、不在校）",
            SH,
        )
        assert finding["id_number"] != kid(1) and finding["id_number"].endswith(kid(1)[-4:])
        assert sorted(finding["sources"]) == ["学籍", "户籍"]
        assert c.post("/api/compare/run").status_code == 403
        assert (
            c.post("/api/compare/lists", data={"kind": "huji"}, files={"file": ("户籍.xlsx", huji)}).status_code == 403
        )

        # another school: neither sees nor answers it
        service.login("hjl-xx-head")
        theirs = c.get("/api/compare/findings").json()["findings"]
        assert [f["student_name"] for f in theirs] == ["陈他校"]
        r = c.post(f"/api/compare/findings/{finding['id']}/answer", data={"reason": "transfer"})
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
        page = c.get("/compare", headers={"accept": "text/html"})
        assert page.status_code == 200 and "陈他校" in page.text and "李空挂" not in page.text
        assert "上传并比对" not in page.text  # the lists are the bureau's

        service.login("wsr-sh-head")
        r = c.post(f"/api/compare/findings/{finding['id']}/answer", data={"reason": "other"})
        assert r.status_code == 422 and r.json()["code"] == "FINDING_ANSWER_INVALID"
        r = c.post(
            f"/api/compare/findings/{finding['id']}/answer",
            data={"reason": "transfer", "note": "已转入外省"},
            files={"evidence": ("转学证明.pdf", b"%PDF-1.7 proof", "application/pdf")},
        )
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["answer"], r.json()["evidence"]) == ("answered", "转学", "转学证明.pdf")
        again = c.post(f"/api/compare/findings/{finding['id']}/answer", data={"reason": "death"})
        assert again.status_code == 409 and again.json()["code"] == "FINDING_ALREADY_ANSWERED"

        # the bureau runs again: nothing reopens; the page shows the summary and the masked list
        service.login("bureau")
        ran = c.post("/api/compare/run").json()
        assert ran["new_findings"] == 0
        summary = c.get("/api/compare/summary").json()
        assert summary["by_rule"]["not_enrolled"] == {"open": 1, "answered": 1}
        assert summary["by_rule"]["no_xueji"] == {"open": 1, "answered": 0}
        assert summary["by_township"]["王舍人街道"]["no_xueji"] == 1
        answered = c.get("/api/compare/findings", params={"status": "answered"}).json()["findings"]
        assert [(f["student_name"], f["status"]) for f in answered] == [("李空挂", "answered")]
        page = c.get("/compare", headers={"accept": "text/html"})
        assert page.status_code == 200 and "张失学" in page.text and kid(4) not in page.text
        assert "学籍系统导出名单" in page.text  # the bureau's lists
        r = c.post(
            "/compare/lists",
            data={"kind": "poverty"},
            files={"file": ("脱贫.xlsx", xlsx([HEADER, ("张失学", kid(4), "", "王舍人街道")]))},
            headers={"accept": "text/html"},
        )
        assert r.status_code == 200 and "已保存脱贫户/低保家庭儿童名单第 1 版" in r.text
        service.state.flush_batches()
        with service.state.db.session() as s:
            subjects = set(s.scalars(select(AccessEntry.subject)))
        assert "compare_findings" in subjects
