"""销号 acts and the 三本台账 over an autumn term in the demo district: exactly the expected rows on
each unit's ledger and in its Excel export, each row's last change, and the month-old flag."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from service.accounts.errors import Forbidden
from service.cases.errors import CaseClosed, CaseInvalid
from service.cases.models import Case, CaseClosure, CaseFile, CaseStatus
from service.container import Services
from service.ledgers.models import ChildEntry
from service.rosters.errors import RosterInvalid
from tests.district import load_district, scope_of, unit
from tests.ledgers.term import TERM_START, YEAR, goto, new_case, sheet_rows, xlsx
from tests.rosters.roster_data import resident_id

SCAN = b"%PDF-1.4 scan of a paper"


def names(rows: list[object]) -> set[str]:
    return {r.student_name for r in rows}  # type: ignore[attr-defined]


def test_cases_leave_their_ledgers_only_by_a_recorded_act(services: Services) -> None:
    load_district(services)
    goto(services.clock, TERM_START)
    with services.db.session() as s:
        head = scope_of(s, "wsr-sh-head")
        suspect = new_case(services, s, "wsr-sh-head", "WSR-SH", 1, "李疑似", confirmed=False)
        back = new_case(services, s, "wsr-sh-head", "WSR-SH", 3, "王复学", dropout_date=TERM_START)
        fake = new_case(services, s, "wsr-sh-head", "WSR-SH", 5, "张核销", confirmed=False)
        refuses = new_case(services, s, "wsr-sh-head", "WSR-SH", 7, "赵缓学", dropout_date=TERM_START)
        stays = new_case(services, s, "wsr-sh-head", "WSR-SH", 9, "孙辍学", key_groups=("留守儿童",))
        other = new_case(services, s, "hjl-xx-head", "HJL-XX", 11, "周他校", grade="三年级")

        goto(services.clock, TERM_START + dt.timedelta(days=5))
        # 已复学 needs the day back at school, not in the future nor before the dropout
        with pytest.raises(CaseInvalid, match="复学日期不能晚于今天"):
            services.cases.returned(s, head, back, TERM_START + dt.timedelta(days=6))
        with pytest.raises(CaseInvalid, match="不能早于辍学日期"):
            services.cases.returned(s, head, back, TERM_START - dt.timedelta(days=1))
        services.cases.returned(s, head, back, TERM_START + dt.timedelta(days=4), "班主任家访后返校")
        s.commit()
        # 核销 needs annex 1's reason and its evidence
        with pytest.raises(CaseInvalid, match="实际就读无学籍"):
            services.cases.write_off(s, head, fake, "moved_away", [("x.pdf", SCAN)])
        with pytest.raises(CaseInvalid, match="正式学籍号、身份证号"):
            services.cases.write_off(s, head, fake, "enrolled_elsewhere", [])
        s.rollback()
        services.cases.write_off(s, head, fake, "enrolled_elsewhere", [("学籍证明.pdf", SCAN)])
        s.commit()
        # 延缓入学/休学 only after three 联合劝返 (or a court ruling), approved, with the approval
        for day in (6, 13, 20):
            goto(services.clock, TERM_START + dt.timedelta(days=day))
            services.cases.add_attempt(
                s,
                head,
                refuses,
                date=services.cases.today(),
                staff="街道办、村委会、校长",
                method="联合劝返",
                result="拒不返校",
            )
            s.commit()
            if day != 20:
                with pytest.raises(CaseInvalid, match="满三次后"):
                    services.cases.defer(
                        s,
                        head,
                        refuses,
                        basis="joint_persuasion",
                        authority="历城区人民政府",
                        approved_on=services.cases.today(),
                        approval=[("批复.pdf", SCAN)],
                    )
                s.rollback()
        with pytest.raises(CaseInvalid) as missing:
            services.cases.defer(
                s, head, refuses, basis="joint_persuasion", authority=" ", approved_on=None, approval=[]
            )
        assert {e["field"] for e in missing.value.details["errors"]} == {"批准机关", "批准日期", "批准文件"}
        s.rollback()
        services.cases.defer(
            s,
            head,
            refuses,
            basis="joint_persuasion",
            authority="历城区人民政府",
            approved_on=services.cases.today(),
            approval=[("批复.pdf", SCAN)],
        )
        s.commit()
        # a closed case takes no more acts
        with pytest.raises(CaseClosed):
            services.cases.returned(s, head, refuses, services.cases.today())
        s.rollback()

        closures = {c.case_id: c for c in s.scalars(select(CaseClosure))}
        assert {k: (c.kind, c.from_status) for k, c in closures.items()} == {
            back.id: ("returned", "dropped"),
            fake.id: ("written_off", "suspected"),
            refuses.id: ("deferred", "persuading"),
        }
        assert closures[back.id].date == TERM_START + dt.timedelta(days=4)
        assert closures[refuses.id].authority == "历城区人民政府"
        assert closures[refuses.id].actor.startswith("赵明")
        files = {(f.case_id, f.purpose) for f in s.scalars(select(CaseFile))}
        assert files == {(fake.id, "evidence"), (refuses.id, "approval")}

        ledgers = services.ledgers
        school, office, bureau = unit(s, "WSR-SH"), unit(s, "WSR"), unit(s, "LCJT")
        sus = ledgers.ledger(s, school, "suspected")
        assert names(sus.rows) == {"李疑似"} and names(sus.closed) == {"张核销"}
        drop = ledgers.ledger(s, school, "dropouts")
        assert names(drop.rows) == {"孙辍学"} and names(drop.closed) == {"王复学", "赵缓学"}
        (deferred,) = [r for r in drop.closed if r.case_id == refuses.id]
        assert deferred.closure is not None and deferred.closure["reason"] == "经联合劝返三次以上仍拒不返校"
        assert deferred.changed is not None and deferred.changed.what.startswith("劝返中→延缓入学/休学")
        assert names(ledgers.ledger(s, office, "dropouts").rows) == {"孙辍学"}
        assert names(ledgers.ledger(s, bureau, "dropouts").rows) == {"孙辍学", "周他校"}
        assert names(ledgers.ledger(s, unit(s, "HJL"), "suspected").rows) == set()

        # The export holds exactly the ledger's rows, open and closed, each with its case number.
        data = ledgers.workbook(s, ledgers.ledger(s, bureau, "dropouts"))
        open_rows = sheet_rows(data, "在册")[2:]
        closed_rows = sheet_rows(data, "已销号")[2:]
        assert {(r[1], r[3]) for r in open_rows} == {(stays.id, "孙辍学"), (other.id, "周他校")}
        assert {(r[3], r[17]) for r in closed_rows} == {("王复学", "已复学"), ("赵缓学", "延缓入学/休学")}
        header = sheet_rows(data, "在册")[1]
        assert header[13:16] == ["最近变更", "变更人", "变更时间"]
        assert suspect.id in {r.case_id for r in sus.rows}


def test_an_entry_not_updated_for_a_month_is_flagged(services: Services) -> None:
    load_district(services)
    goto(services.clock, TERM_START)
    with services.db.session() as s:
        head = scope_of(s, "wsr-sh-head")
        quiet = new_case(services, s, "wsr-sh-head", "WSR-SH", 21, "钱不动")
        busy = new_case(services, s, "wsr-sh-head", "WSR-SH", 23, "吴常访")
        school = unit(s, "WSR-SH")

        def stale() -> set[str]:
            return {r.student_name for r in services.ledgers.ledger(s, school, "dropouts").rows if r.stale}

        goto(services.clock, dt.date(YEAR, 9, 20))
        services.cases.add_attempt(
            s, head, busy, date=services.cases.today(), staff="班主任", method="家访", result="未返校"
        )
        s.commit()
        goto(services.clock, dt.date(YEAR, 10, 1))
        assert stale() == set()  # a month to the day is still in time
        goto(services.clock, dt.date(YEAR, 10, 2))
        assert stale() == {"钱不动"}
        goto(services.clock, dt.date(YEAR, 10, 21))
        assert stale() == {"钱不动", "吴常访"}
        services.cases.add_attempt(
            s, head, quiet, date=services.cases.today(), staff="班主任", method="电话", result="未返校"
        )
        s.commit()
        assert stale() == {"吴常访"}
        data = services.ledgers.workbook(s, services.ledgers.ledger(s, school, "dropouts"))
        assert {(r[3], r[16]) for r in sheet_rows(data, "在册")[2:]} == {("钱不动", None), ("吴常访", "是")}
        assert quiet.id


def test_the_childrens_ledger_from_a_first_grade_roster(services: Services) -> None:
    load_district(services)
    goto(services.clock, dt.date(YEAR, 8, 25))
    kids = [
        ("", "陈一", resident_id(31, "20210301", female=False), "男", "2021-03-01", "否", "陈父", "13805311001"),
        ("", "林二", resident_id(32, "20210402", female=True), "女", "2021-04-02", "是", "林母", "13805311002"),
        ("", "黄三", resident_id(33, "20210503", female=False), "男", "2021-05-03", "", "黄父", "13805311003"),
    ]
    header = ("学校代码", "儿童姓名", "身份证号", "性别", "出生日期", "随迁子女", "监护人姓名", "监护人电话")
    with services.db.session() as s:
        head = scope_of(s, "wsr-xd-head")
        school = unit(s, "WSR-XD")
        bad = [*kids, ("", "错号", "370112202101010000", "男", "2021-01-01", "", "某", "13805311009")]
        with pytest.raises(RosterInvalid) as exc:
            services.ledgers.import_children(s, head, school, YEAR, xlsx([header, *bad]), "一年级.xlsx")
        assert [e["row"] for e in exc.value.details["errors"]] == [5]
        s.rollback()
        assert s.scalar(select(ChildEntry).limit(1)) is None  # nothing half-saved
        assert services.ledgers.import_children(s, head, school, YEAR, xlsx([header, *kids]), "一年级.xlsx") == (3, 0)
        s.commit()
        assert services.ledgers.import_children(s, head, school, YEAR, xlsx([header, kids[0]]), "补.xlsx") == (0, 1)
        s.commit()

        entries = {e.student_name: e for e in s.scalars(select(ChildEntry))}
        assert {n for n, e in entries.items() if e.migrant} == {"林二"}
        # the school keeps its ledger: its office and the bureau see it, and change nothing in it
        for above in ("wsr-staff", "wsr-head", "bureau"):
            for attempt in (
                lambda by: services.ledgers.import_children(s, by, school, YEAR, xlsx([header, *kids]), "代填.xlsx"),
                lambda by: services.ledgers.report_child(s, by, entries["陈一"], dt.date(YEAR, 8, 25)),
                lambda by: services.ledgers.mark_migrant(s, by, entries["陈一"], True),
                lambda by: services.ledgers.child_missing(s, by, entries["黄三"]),
            ):
                with pytest.raises(Forbidden, match="适龄儿童台账由学校自己填报"):
                    attempt(scope_of(s, above))
            s.rollback()
        assert services.ledgers.child(s, scope_of(s, "bureau"), entries["陈一"].id).reported_on is None
        goto(services.clock, TERM_START)
        services.ledgers.report_child(s, head, entries["陈一"], TERM_START)
        services.ledgers.report_child(s, head, entries["林二"], TERM_START)
        s.commit()
        goto(services.clock, TERM_START + dt.timedelta(days=7))
        case = services.ledgers.child_missing(s, head, entries["黄三"])
        s.commit()
        assert case.never_enrolled and case.status == CaseStatus.SUSPECTED
        with pytest.raises(CaseInvalid, match="已报到"):
            services.ledgers.child_missing(s, head, entries["陈一"])
        s.rollback()

        for target in (school, unit(s, "WSR"), unit(s, "LCJT")):
            ledger = services.ledgers.ledger(s, target, "children", year=YEAR)
            assert [(c.student_name, c.reported_on, c.migrant) for c in ledger.children] == [
                ("陈一", TERM_START, False),
                ("林二", TERM_START, True),
                ("黄三", None, False),
            ]
        assert services.ledgers.ledger(s, unit(s, "HJL"), "children", year=YEAR).children == []
        (missing,) = services.ledgers.ledger(s, school, "suspected").rows
        assert missing.student_name == "黄三" and missing.status_title == "失学"
        children = services.ledgers.ledger(s, school, "children", year=YEAR)
        # 身份证号 and phones masked unless asked for in full
        masked = sheet_rows(services.ledgers.workbook(s, children))[2:]
        assert [(r[3], r[8]) for r in masked] == [
            (k[2][:6] + "********" + k[2][-4:], k[7][:3] + "****" + k[7][-4:]) for k in kids
        ]
        full = sheet_rows(services.ledgers.workbook(s, children, full=True))[2:]
        assert [(r[3], r[8]) for r in full] == [(k[2], k[7]) for k in kids]
        data = services.ledgers.workbook(s, children)
        assert [(r[2], r[6], r[9], r[10]) for r in sheet_rows(data)[2:]] == [
            ("陈一", "否", TERM_START.isoformat(), None),
            ("林二", "是", TERM_START.isoformat(), None),
            ("黄三", "否", "未报到", case.id),
        ]
        assert s.get(Case, case.id) is not None
