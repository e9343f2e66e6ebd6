"""四查三比对: a county's lists uploaded as versions, compared by the rules, each finding routed to
its school (or the 街道教育办 of its 乡镇), closed by an answer and never reopened by a later run."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum.cn import ric

from service.accounts.errors import Forbidden
from service.container import Services
from service.ledgers import repository
from service.ledgers.compare import AnswerInvalid, FindingAnswered, ListInvalid, NothingToCompare
from service.ledgers.models import ChildEntry, CompareRun, Finding, SourceChild, SourceList
from service.ledgers.repository import FindingFilter
from tests.district import load_district, scope_of, unit
from tests.ledgers.term import TERM_START, goto, new_case, xlsx
from tests.rosters.roster_data import resident_id

SH, XD = "历城区王舍人街道石河小学", "历城区王舍人街道辛甸小学"
HJL_XX, HJL_BX, DEZX = "历城区洪家楼小学", "历城区洪家楼北路小学", "济南市历城区第二中学"
HEADER = ("序号", "姓名", "身份证号", "出生日期", "学校名称", "乡镇（街道）", "村（社区）")


def child_id(n: int, born: str = "20170510") -> str:
    return resident_id(2 * n + 1, born, female=False)  # a boy's serial is odd: one child per n


def transposed(number: str) -> str:
    """The ID with two adjacent different digits of its serial swapped: what a typist does."""
    for i in range(14, 16):
        if number[i] != number[i + 1]:
            swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
            assert not ric.is_valid(swapped)
            return swapped
    raise AssertionError(number)


def sheet(*rows: tuple[str, str, str, str, str]) -> bytes:
    """Rows of (name, ID, school, 乡镇, 村)."""
    return xlsx(
        [
            HEADER,
            *((i + 1, n, idn, "", school, town, village) for i, (n, idn, school, town, village) in enumerate(rows)),
        ]
    )


#: The county's children: who is in which list.
A = ("张可能", child_id(1), "", "王舍人街道", "张马村")  # 户籍 only: 可能失学, to the 王舍人 office
B = ("李空挂", child_id(2), SH, "王舍人街道", "")  # 学籍 at 石河, not at school
C = ("王无籍", child_id(3), HJL_XX, "洪家楼街道", "")  # at school at 洪家楼小学, no 学籍
D = ("赵脱贫", child_id(4), XD, "王舍人街道", "东村")  # 脱贫户, 学籍 at 辛甸, not at school
E = ("钱平台", child_id(5), DEZX, "", "")  # only the platform knows the child
F = ("孙全在", child_id(6), SH, "王舍人街道", "")  # in every list; the 学籍 row's ID has two digits swapped
G = ("周台账", child_id(7), HJL_BX, "洪家楼街道", "")  # 学籍 at 北路小学, reported in the 适龄儿童台账
H = ("吴太小", child_id(8, "20230301"), "", "洪家楼街道", "")  # 户籍, three years old: not of age
J = ("郑已立案", resident_id(50, "20130510", female=False), SH, "王舍人街道", "")  # 学籍, not at school, already a case


def with_id(child: tuple[str, str, str, str, str], number: str) -> tuple[str, str, str, str, str]:
    return (child[0], number, *child[2:])


def upload_county(services: Services, s: Session) -> None:
    bureau = scope_of(s, "bureau")
    compare = services.ledgers.compare
    no_school = lambda c: (c[0], c[1], "", c[3], c[4])  # noqa: E731
    compare.upload(s, bureau, "huji", sheet(*(no_school(c) for c in (A, B, D, F, H))), "户籍.xlsx")
    compare.upload(s, bureau, "xueji", sheet(B, D, with_id(F, transposed(F[1])), G, J), "学籍.xlsx")
    compare.upload(s, bureau, "enrolled", sheet(C, F), "在校.xlsx")
    compare.upload(s, bureau, "poverty", sheet(no_school(D), no_school(F)), "脱贫.xlsx")
    compare.upload(s, bureau, "disabled", sheet(no_school(F)), "残疾.xlsx")
    compare.upload(s, bureau, "platform", sheet(E, F), "平台.xlsx")
    s.add(
        ChildEntry(
            school_id=unit(s, "HJL-BX").id,
            year=2027,
            row=2,
            student_name=G[0],
            id_number=G[1],
            reported_on=TERM_START,
            updated_by="测试",
        )
    )
    s.flush()


def found(s: Session, username: str = "bureau") -> set[tuple[str, str, str, str]]:
    page = repository.findings(s, scope_of(s, username), FindingFilter())
    return {(f.rule, f.student_name, f.unit.name, f.status) for f in page.rows}


def test_every_rule_finds_its_children_and_routes_them(services: Services) -> None:
    load_district(services)
    goto(services.clock, TERM_START)
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        with pytest.raises(NothingToCompare):
            services.ledgers.compare.run(s, bureau)
        new_case(services, s, "wsr-sh-head", "WSR-SH", 50, J[0])
        upload_county(services, s)
        run = services.ledgers.compare.run(s, bureau, "upload")
        s.commit()
        assert run.counts == {
            "id_checksum": 1,
            "no_xueji": 1,
            "not_enrolled": 1,
            "no_register": 2,
            "priority": 1,
            "platform": 1,
        }
        assert found(s) == {
            ("no_xueji", A[0], "历城区王舍人街道教育办公室", "open"),  # no school: the office of its 乡镇
            ("not_enrolled", B[0], SH, "open"),
            ("no_register", C[0], HJL_XX, "open"),
            ("priority", D[0], XD, "open"),
            ("platform", E[0], DEZX, "open"),
            # the swapped digits fail the check: never matched to 孙全在's real ID, so the real one has
            # no 学籍 (人籍不一致), and the row is a finding of its own
            ("no_register", F[0], SH, "open"),
            ("id_checksum", F[0], SH, "open"),
        }
        sealed = {f.rule: f for f in repository.findings(s, bureau, FindingFilter()).rows}
        assert sealed["id_checksum"].id_number == transposed(F[1])
        assert sealed["no_register"].id_number in (C[1], F[1])
        assert set(sealed["priority"].sources) == {"huji", "xueji", "poverty"}
        stored = s.scalar(select(Finding.id_number_sealed).where(Finding.rule == "priority"))
        assert stored is not None and D[1].encode() not in stored  # sealed at rest
        lists = repository.lists(s, bureau)
        assert {(x.kind, x.version, x.children, x.invalid_ids) for x in lists} == {
            ("huji", 1, 5, 0),
            ("xueji", 1, 5, 1),
            ("enrolled", 1, 2, 0),
            ("poverty", 1, 2, 0),
            ("disabled", 1, 1, 0),
            ("platform", 1, 2, 0),
        }

        # each school sees its own findings only, an office its own and its schools'
        assert found(s, "wsr-sh-head") == {
            ("not_enrolled", B[0], SH, "open"),
            ("no_register", F[0], SH, "open"),
            ("id_checksum", F[0], SH, "open"),
        }
        assert found(s, "hjl-xx-head") == {("no_register", C[0], HJL_XX, "open")}
        assert {name for _, name, _, _ in found(s, "wsr-staff")} == {A[0], B[0], D[0], F[0]}

        summary = repository.summary(s, bureau)
        assert summary.by_rule["no_register"] == [2, 0] and summary.open == 7
        assert summary.by_township["王舍人街道"]["no_register"] == 1
        assert summary.by_township["洪家楼街道"] == {**dict.fromkeys(summary.by_rule, 0), "no_register": 1}
        assert summary.by_township[repository.NO_TOWNSHIP]["platform"] == 1
        assert repository.summary(s, scope_of(s, "hjl-xx-head")).open == 1


def test_an_answer_closes_a_finding_and_no_rerun_reopens_it(services: Services) -> None:
    load_district(services)
    goto(services.clock, TERM_START)
    with services.db.session() as s:
        bureau, school, other = scope_of(s, "bureau"), scope_of(s, "wsr-sh-head"), scope_of(s, "hjl-xx-head")
        upload_county(services, s)
        services.ledgers.compare.run(s, bureau)
        s.commit()
        compare = services.ledgers.compare
        mine = next(f for f in repository.findings(s, school, FindingFilter(rule="not_enrolled")).rows)
        assert mine.student_name == B[0]
        # another school neither sees it nor answers it
        assert repository.get(s, other, mine.id) is None
        with pytest.raises(Forbidden):
            compare.answer(s, other, mine, "transfer")
        with pytest.raises(AnswerInvalid):
            compare.answer(s, school, mine, "vanished")
        with pytest.raises(AnswerInvalid):
            compare.answer(s, school, mine, "other", "  ")
        compare.answer(s, school, mine, "transfer", "已转入济南市市中区某小学", ("转学证明.pdf", b"%PDF-1.4 proof"))
        s.commit()
        assert (mine.status, mine.answer, mine.evidence_filename) == ("answered", "transfer", "转学证明.pdf")
        assert services.archive.stores["files"].get(mine.evidence_sha256 or "") == b"%PDF-1.4 proof"
        with pytest.raises(FindingAnswered):
            compare.answer(s, bureau, mine, "other", "再次答复")

        # run again: the same data finds it again, answered it stays
        again = compare.run(s, bureau)
        s.commit()
        assert again.new_findings == 0 and again.counts["not_enrolled"] == 2  # 李空挂 and 郑已立案 (no case here)
        s.refresh(mine)
        assert (mine.status, mine.current, mine.last_run_id) == ("answered", True, again.id)

        # a new 学籍 version: 李空挂 is gone (the answered one stays answered), 王无籍 now has a 学籍
        # (an open finding the data no longer shows stays open until answered), a new child appears
        K = ("冯新增", child_id(11), XD, "王舍人街道", "")
        compare.upload(s, bureau, "xueji", sheet(C, D, with_id(F, transposed(F[1])), G, K), "学籍（第二版）.xlsx")
        third = compare.run(s, bureau, "upload")
        s.commit()
        assert third.new_findings == 2
        assert found(s) >= {
            ("not_enrolled", B[0], SH, "answered"),
            ("no_xueji", B[0], "历城区王舍人街道教育办公室", "open"),  # another rule: another finding
            ("no_register", C[0], HJL_XX, "open"),
            ("not_enrolled", K[0], XD, "open"),
        }
        gone = s.scalar(select(Finding).where(Finding.rule == "no_register", Finding.student_name == C[0]))
        assert gone is not None and gone.current is False and gone.status == "open"
        assert s.scalar(select(func.count(Finding.id))) == 10
        assert repository.lists(s, bureau)[-1].kind == "xueji"
        assert [(x.kind, x.version) for x in repository.lists(s, bureau) if x.kind == "xueji"] == [
            ("xueji", 2),
            ("xueji", 1),
        ]


def test_a_bad_upload_is_refused_whole_with_every_bad_row(services: Services) -> None:
    load_district(services)
    goto(services.clock, TERM_START)
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        with pytest.raises(Forbidden):
            services.ledgers.compare.upload(s, scope_of(s, "wsr-sh-head"), "xueji", sheet(B), "学籍.xlsx")
        with pytest.raises(ListInvalid):
            services.ledgers.compare.upload(s, bureau, "census", sheet(B), "学籍.xlsx")
        bad = xlsx(
            [
                HEADER,
                (1, "好学生", child_id(21), "2017-05-10", SH, "", ""),
                (2, "", child_id(22), "", SH, "", ""),  # no name
                (3, "短号", "37011220170510", "", SH, "", ""),  # not 18 characters
                (4, "重复", child_id(21), "", SH, "", ""),  # the same child twice
                (5, "他区", child_id(23), "", "外区某小学", "", ""),  # not the bureau's school
                (6, "错生日", child_id(24), "2016-01-01", SH, "", ""),  # not the ID's birth date
                (7, "无校", child_id(25), "", "", "", ""),  # the 学籍 names every child's school
                (8, "校验错", transposed(child_id(26)), "", SH, "", ""),  # kept: a finding, not an error
            ]
        )
        with pytest.raises(ListInvalid) as refused:
            services.ledgers.compare.upload(s, bureau, "xueji", bad, "学籍.xlsx")
        assert refused.value.code == "COMPARE_LIST_INVALID"
        errors = refused.value.details["errors"]
        assert [(e["row"], e["column"]) for e in errors] == [
            (3, "姓名"),
            (4, "身份证号"),
            (5, "身份证号"),
            (6, "学校名称"),
            (7, "出生日期"),
            (8, "学校名称"),
        ]
        assert "同一个身份证号" in errors[2]["message"]
        s.rollback()
        assert s.scalar(select(func.count(SourceList.id))) == 0
        assert s.scalar(select(func.count(SourceChild.id))) == 0

        # the bureau's own headers, saved as its mapping with the upload
        own = xlsx([("名字", "公民身份号码", "就读学校"), ("好学生", child_id(21), SH)])
        mapping = {"name": "名字", "id_number": "公民身份号码", "school": "就读学校"}
        listed = services.ledgers.compare.upload(s, bureau, "xueji", own, "学籍.xlsx", mapping)
        assert (listed.kind, listed.version, listed.children) == ("xueji", 1, 1)
        assert services.ledgers.exchange.mapping(s, unit(s, "LCJT"), "list_xueji")["name"] == "名字"


def test_the_monthly_schedule_runs_once_a_month_per_bureau(services: Services) -> None:
    load_district(services)
    goto(services.clock, TERM_START)
    with services.db.session() as s:
        compare = services.ledgers.compare
        assert compare.monthly(s, s.commit) == []  # no lists: nothing to run
        compare.upload(s, scope_of(s, "bureau"), "huji", sheet(A), "户籍.xlsx")
        s.commit()
        first = compare.monthly(s, s.commit)
        assert [(r.trigger, r.counts["no_xueji"]) for r in first] == [("schedule", 1)]
        assert compare.monthly(s, s.commit) == []  # once this month
        goto(services.clock, TERM_START + dt.timedelta(days=30))
        assert [r.new_findings for r in compare.monthly(s, s.commit)] == [0]
        assert s.scalar(select(func.count(CompareRun.id))) == 2
