"""The statutory deadlines over an autumn term: each item appears on its school's list on the right
day, on its office's and the bureau's only once overdue, and clears when what it asks is recorded; a
case's steps follow its bureau's rules like the others."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.accounts.errors import Forbidden
from service.cases.errors import CaseInvalid
from service.cases.models import Case
from service.container import Services
from service.errors import NotFoundForUser
from service.ledgers.deadlines import DEFAULT_RULES
from service.ledgers.models import DeadlineRule
from tests.district import load_district, scope_of, unit
from tests.ledgers.events import recurring
from tests.ledgers.term import TERM_START, YEAR, goto, new_case


def D(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def seen(services: Services, s: Session, username: str, school: str = "WSR-SH") -> dict[str, bool]:
    """The items of one school a user sees now: kind (and student) -> overdue."""
    out = {}
    for item in services.ledgers.due(s, scope_of(s, username)):
        if item.school == unit(s, school).name:
            out[item.kind + (f":{item.student}" if item.student else "")] = item.overdue
    s.commit()
    return out


TERM_KINDS = ("survey", "info_report", "unregistered", "work_plan")


def test_term_deadlines_appear_and_clear_on_the_right_day(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(8, 20))
    with services.db.session() as s:
        bureau, school, office = scope_of(s, "bureau"), scope_of(s, "wsr-sh-head"), scope_of(s, "wsr-staff")
        with pytest.raises(Forbidden):
            services.ledgers.deadlines.set_term(s, school, "2027年秋季学期", TERM_START)
        services.ledgers.deadlines.set_term(s, bureau, "2027年秋季学期", TERM_START)
        s.commit()
        with pytest.raises(CaseInvalid, match="已设为开学日期"):
            services.ledgers.deadlines.set_term(s, bureau, "重复", TERM_START)
        s.rollback()
        # a bureau changes a day without code; a school cannot
        with pytest.raises(Forbidden):
            services.ledgers.deadlines.set_rule(s, school, "work_plan", days=40, lead_days=0, active=True)
        with pytest.raises(CaseInvalid, match="每月几日应在 1 到 28 之间"):
            services.ledgers.deadlines.set_rule(s, bureau, "monthly_report", days=31, lead_days=0, active=True)
        s.rollback()
        services.ledgers.deadlines.set_rule(s, bureau, "work_plan", days=40, lead_days=0, active=True)
        services.ledgers.deadlines.set_rule(s, bureau, "weekly_report", days=3, lead_days=2, active=False)
        s.commit()

        def term_items(user: str) -> dict[str, bool]:
            return {k: v for k, v in seen(services, s, user).items() if k in TERM_KINDS}

        goto(services.clock, D(8, 31))
        assert seen(services, s, "wsr-sh-head") == {}  # before the term nothing counts
        goto(services.clock, TERM_START)
        assert term_items("wsr-sh-head") == dict.fromkeys(TERM_KINDS, False)
        assert term_items("wsr-staff") == {} and term_items("bureau") == {}

        goto(services.clock, D(9, 8))  # 未报到学生造册: within a week
        assert term_items("wsr-sh-head")["unregistered"] is False
        goto(services.clock, D(9, 9))
        assert term_items("wsr-sh-head")["unregistered"] is True
        assert term_items("wsr-staff") == {"unregistered": True} == term_items("bureau")
        (item,) = [
            i
            for i in services.ledgers.due(s, office)
            if i.kind == "unregistered" and i.school_id == unit(s, "WSR-SH").id
        ]
        # the demo bureau's own notice says nothing of it: the default's notice, marked as another place's
        assert (
            item.source == "参考安徽省亳州市：谯城区通知 五（非本局文件，请填写本局依据）"
            and item.title == "未报到学生登记造册并逐一核实原因（2027年秋季学期）"
        )
        s.commit()
        services.ledgers.deadlines.mark_done(s, school, unit(s, "WSR-SH").id, "unregistered", item.period or "")
        s.commit()
        assert "unregistered" not in term_items("wsr-sh-head") and term_items("wsr-staff") == {}
        # another school of the office still owes it
        assert seen(services, s, "wsr-staff", "WSR-XD") == {"unregistered": True}

        goto(services.clock, D(9, 11))  # 排查 within 10 days, done on the last day
        services.ledgers.deadlines.mark_done(s, school, unit(s, "WSR-SH").id, "survey", TERM_START.isoformat())
        s.commit()
        goto(services.clock, D(9, 16))
        assert term_items("wsr-sh-head") == {"info_report": False, "work_plan": False}
        goto(services.clock, D(9, 17))  # 信息报告 within 15 days
        assert term_items("wsr-sh-head") == {"info_report": True, "work_plan": False}
        assert term_items("bureau") == {"info_report": True}
        goto(services.clock, D(10, 11))  # the bureau's 40 days for the 工作方案
        assert term_items("wsr-sh-head")["work_plan"] is False
        goto(services.clock, D(10, 12))
        assert term_items("wsr-staff") == {"info_report": True, "work_plan": True}
        assert "weekly_report" not in seen(services, s, "wsr-sh-head")  # the bureau turned it off
        with pytest.raises(CaseInvalid, match="自动完成"):
            services.ledgers.deadlines.mark_done(s, school, unit(s, "WSR-SH").id, "persuasion", "x")
        s.rollback()
        s.close()
        hjl = scope_of(s, "hjl-xx-head")
        with pytest.raises(NotFoundForUser):  # another school's item is out of reach
            services.ledgers.deadlines.mark_done(s, hjl, unit(s, "WSR-SH").id, "info_report", TERM_START.isoformat())


def test_monthly_and_quarterly_items_and_their_names(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(8, 20))
    with services.db.session() as s:
        bureau, school = scope_of(s, "bureau"), scope_of(s, "wsr-sh-head")
        services.ledgers.deadlines.set_term(s, bureau, "2027年秋季学期", TERM_START)
        s.commit()
        goto(services.clock, D(9, 20))
        items = {i.kind: i for i in services.ledgers.due(s, school)}
        monthly = items["monthly_report"]
        assert (monthly.due, monthly.overdue, monthly.source) == (D(9, 20), False, "历城区通知 三")
        assert monthly.title == "控辍保学动态管理月报表（2027年9月）"
        for item in items.values():  # no item says the same words twice
            head = item.title.split("（")[0]
            assert item.title.count(head) == 1, item.title
        assert "quarterly_review" in items and not items["quarterly_review"].overdue  # shows 14 days ahead
        goto(services.clock, D(9, 21))
        assert seen(services, s, "bureau")["monthly_report"] is True
        services.ledgers.deadlines.mark_done(s, school, unit(s, "WSR-SH").id, "monthly_report", "2027-09")
        s.commit()
        assert "monthly_report" not in seen(services, s, "wsr-sh-head")
        goto(services.clock, D(10, 1))  # the third quarter's review is now owed
        assert seen(services, s, "wsr-staff")["quarterly_review"] is True
        services.ledgers.deadlines.mark_done(s, school, unit(s, "WSR-SH").id, "quarterly_review", "2027Q3")
        s.commit()
        assert "quarterly_review" not in seen(services, s, "wsr-staff")
        assert seen(services, s, "wsr-sh-head")["monthly_report"] is False  # October's, due the 20th


def test_persuasion_monthly_and_home_teaching_weekly(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(8, 20))
    with services.db.session() as s:
        bureau, head = scope_of(s, "bureau"), scope_of(s, "wsr-sh-head")
        services.ledgers.deadlines.set_term(s, bureau, "2027年秋季学期", TERM_START)
        s.commit()
        goto(services.clock, D(9, 2))
        away = new_case(services, s, "wsr-sh-head", "WSR-SH", 41, "郑外出")
        home = new_case(services, s, "wsr-sh-head", "WSR-SH", 43, "冯在家", key_groups=("残疾儿童",))
        suspect = new_case(services, s, "wsr-sh-head", "WSR-SH", 45, "褚疑似", confirmed=False)
        goto(services.clock, D(9, 6))
        services.cases.add_attempt(
            s, head, home, date=D(9, 6), staff="资源教师", method="送教上门", result="完成第1次送教"
        )
        s.commit()

        def case_items(user: str = "wsr-sh-head") -> dict[str, bool]:
            return {k: v for k, v in seen(services, s, user).items() if k.startswith(("persuasion", "home_teaching"))}

        goto(services.clock, D(9, 10))
        assert case_items() == {}
        goto(services.clock, D(9, 11))  # two days ahead of the week
        assert case_items() == {"home_teaching:冯在家": False}
        goto(services.clock, D(9, 14))
        assert case_items("wsr-staff") == {"home_teaching:冯在家": True}
        services.cases.add_attempt(
            s, head, home, date=D(9, 14), staff="资源教师", method="送教上门", result="完成第2次送教"
        )
        s.commit()
        assert case_items() == {}
        goto(services.clock, D(9, 25))  # a 劝返 record a month (30 days) after the case was opened, shown a week ahead
        assert case_items() == {"persuasion:郑外出": False, "home_teaching:冯在家": True}
        goto(services.clock, D(10, 2))
        assert case_items()["persuasion:郑外出"] is False and case_items("bureau") == {"home_teaching:冯在家": True}
        goto(services.clock, D(10, 3))
        assert case_items("bureau") == {"persuasion:郑外出": True, "home_teaching:冯在家": True}
        services.cases.add_attempt(s, head, away, date=D(10, 3), staff="班主任", method="电话", result="家长称在外务工")
        s.commit()
        assert "persuasion:郑外出" not in case_items()
        assert "persuasion:褚疑似" not in case_items() and suspect.id  # a suspected case is checked, not persuaded
        # closing the case clears its items
        services.cases.returned(s, head, away, D(10, 3))
        s.commit()
        goto(services.clock, D(11, 10))
        assert set(case_items()) == {"home_teaching:冯在家", "persuasion:冯在家"}


def test_a_bureau_sets_the_days_of_a_cases_steps(services: Services) -> None:
    """A case's steps are rules like the others: the notices' defaults (3 days to confirm a 疑似辍学,
    7 to send the 复学通知书, 联合劝返 after 3 failed 劝返) until the bureau changes them, with their
    source; reading them writes nothing, and a change stores that rule only."""
    load_district(services)
    goto(services.clock, D(9, 1))
    with services.db.session() as s:
        bureau, head, office = scope_of(s, "bureau"), scope_of(s, "wsr-sh-head"), scope_of(s, "wsr-staff")
        deadlines = services.ledgers.deadlines
        suspect = new_case(services, s, "wsr-sh-head", "WSR-SH", 51, "韩疑似", confirmed=False)
        dropped = new_case(services, s, "wsr-sh-head", "WSR-SH", 53, "杨辍学", dropout_date=D(8, 30))

        def steps(case: Case) -> dict[str, tuple[dt.date, bool, str | None]]:
            return {i.kind: (i.due, i.overdue, i.source) for i in deadlines.case_items(s, case)}

        assert steps(suspect) == {"confirm": (D(9, 4), False, "历城区通知 二.(一)")}
        assert steps(dropped) == {"return_notice": (D(9, 6), False, "历城区通知 二.(二)")}
        # no term entered: the case steps count all the same, for the office too and before they are overdue
        assert {(i.kind, i.student, i.due) for i in services.ledgers.due(s, office)} == {
            ("confirm", "韩疑似", D(9, 4)),
            ("return_notice", "杨辍学", D(9, 6)),
        }
        rules = deadlines.rules(s, unit(s, "LCJT"))
        assert [r.key for r in rules][4:9] == [
            "confirm",
            "return_notice",
            "joint_persuasion",
            "deadline_notice",
            "judicial",
        ]
        # reading wrote nothing: the rows are the demo bureau's own (the rules its notice sets)
        assert s.scalar(select(func.count()).select_from(DeadlineRule)) == 3
        s.rollback()

        with pytest.raises(Forbidden):
            deadlines.set_rule(s, head, "confirm", days=5, lead_days=0, active=True)
        with pytest.raises(CaseInvalid, match="未成功的劝返次数应在 1 到 20 之间"):
            deadlines.set_rule(s, bureau, "joint_persuasion", days=0, lead_days=0, active=True)
        s.rollback()
        deadlines.set_rule(s, bureau, "confirm", days=5, lead_days=0, active=True)
        deadlines.set_rule(s, bureau, "return_notice", days=14, lead_days=0, active=True)
        deadlines.set_rule(s, bureau, "joint_persuasion", days=2, lead_days=0, active=True)
        s.commit()
        stored = s.scalars(select(DeadlineRule.key).order_by(DeadlineRule.key)).all()
        assert stored == [
            "confirm",
            "joint_persuasion",
            "monthly_report",
            "return_notice",
        ]  # the changed (and the demo's)
        assert steps(suspect) == {"confirm": (D(9, 6), False, "历城区通知 二.(一)")}
        assert steps(dropped) == {"return_notice": (D(9, 13), False, "历城区通知 二.(二)")}
        goto(services.clock, D(9, 7))
        assert steps(suspect)["confirm"][1] is True
        assert seen(services, s, "bureau")["confirm:韩疑似"] is True

        # this bureau asks for 联合劝返 after two failed 劝返
        for method in ("电话", "家访"):
            services.cases.add_attempt(s, head, dropped, date=D(9, 7), staff="班主任", method=method, result="仍未到校")
            s.commit()
        assert steps(dropped)["joint_persuasion"] == (
            D(9, 7),
            False,
            "参考河南省商丘市：睢阳区通知 三（非本局文件，请填写本局依据）",
        )
        # a rule turned off gives no items
        deadlines.set_rule(s, bureau, "return_notice", days=14, lead_days=0, active=False)
        s.commit()
        assert set(steps(dropped)) == {"joint_persuasion"}


def test_rules_stored_before_the_case_steps_keep_working(services: Services) -> None:
    """A database whose bureau stored the earlier rules (one of them changed) keeps them, and
    follows the defaults for the rules added since; two bureau staff changing the same default at
    once both land on one row."""
    load_district(services)
    goto(services.clock, D(8, 20))
    with services.db.session() as s:
        bureau_unit = unit(s, "LCJT")
        for d in DEFAULT_RULES:
            if d.key in ("survey", "info_report", "unregistered", "work_plan", "persuasion", "home_teaching"):
                s.add(
                    DeadlineRule(
                        bureau_id=bureau_unit.id,
                        key=d.key,
                        title=d.title,
                        source=d.source,
                        anchor=d.anchor,
                        days=40 if d.key == "work_plan" else d.days,
                        lead_days=d.lead_days,
                        active=True,
                        updated_at=services.clock.now(),
                        updated_by="系统（通知默认）",
                    )
                )
        s.commit()
        rules = {r.key: r for r in services.ledgers.deadlines.rules(s, bureau_unit)}
        assert list(rules) == [d.key for d in DEFAULT_RULES]
        assert rules["work_plan"].days == 40 and rules["judicial"].days == 1 and rules["judicial"].id is None
        services.ledgers.deadlines.set_term(s, scope_of(s, "bureau"), "2027年秋季学期", TERM_START)
        s.commit()
        goto(services.clock, D(9, 2))
        suspect = new_case(services, s, "wsr-sh-head", "WSR-SH", 55, "钱疑似", confirmed=False)
        items = {i.kind: i.due for i in services.ledgers.due(s, scope_of(s, "wsr-sh-head"))}
        assert items["work_plan"] == D(10, 11) and items["confirm"] == D(9, 5) and suspect.id
        s.rollback()

    # two requests read the default; the first stores its change; the second, storing the row a
    # moment later, finds it there and changes that one
    with services.db.session() as first, services.db.session() as second:
        late = next(r for r in services.ledgers.deadlines.rules(second, unit(second, "LCJT")) if r.key == "judicial")
        services.ledgers.deadlines.set_rule(
            first, scope_of(first, "bureau"), "judicial", days=4, lead_days=0, active=True
        )
        first.commit()
        row = services.ledgers.deadlines._stored(second, late)
        assert row is not late and row.days == 4
        row.days = 6
        second.commit()
    with services.db.session() as s:
        (row,) = s.scalars(select(DeadlineRule).where(DeadlineRule.key == "judicial")).all()
        assert row.days == 6


def test_a_report_campaigns_item_names_the_period_apart_from_a_name_with_its_own_year(services: Services) -> None:
    """A campaign called 「2027年控辍保学动态管理月报」 gives 「2027年控辍保学动态管理月报（2027年9月）」, never
    「2027年9月2027年控辍保学动态管理月报」."""
    load_district(services)
    goto(services.clock, D(8, 25))
    with services.db.session() as s:
        recurring(services, s, f"{YEAR}年控辍保学动态管理月报", "monthly", 20)
        goto(services.clock, D(9, 2))
        services.campaigns.refresh_recurring(s)  # the schedule opens September's period
        s.commit()
        titles = [i.title for i in services.ledgers.due(s, scope_of(s, "wsr-sh-head")) if i.kind == "monthly_report"]
        assert titles == [f"{YEAR}年控辍保学动态管理月报（{YEAR}年9月）"]


def test_a_term_entered_mid_term_does_not_flood_the_list(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(12, 7))  # a Tuesday, three months into the term, when the bureau enters its start
    with services.db.session() as s:
        bureau, school = scope_of(s, "bureau"), scope_of(s, "wsr-sh-head")
        services.ledgers.deadlines.set_term(s, bureau, "2027年秋季学期", TERM_START)
        s.commit()
        # nothing of any school is 已逾期 on the day it was entered (it was 56 items, all overdue)
        assert services.ledgers.due(s, bureau) == []
        assert services.ledgers.due(s, scope_of(s, "wsr-staff")) == []
        own = {i.kind: i for i in services.ledgers.due(s, school)}
        assert not any(i.overdue for i in own.values())
        # the term's duties get their days from the day it was entered
        assert own["unregistered"].due == D(12, 14) and own["survey"].due == D(12, 17)
        assert own["weekly_report"].title == "辍学周报告（2027年第49周）"  # this week's, not last week's
        assert "quarterly_review" not in own  # the third quarter's review was due before the entry

        # a week on, what is late shows to the bureau, one line per duty and school
        goto(services.clock, D(12, 16))
        late = [i for i in services.ledgers.due(s, bureau) if i.overdue]
        assert {i.kind for i in late} == {"unregistered", "weekly_report"}
        assert len(late) == 2 * 8  # eight schools
        assert {i.title for i in late if i.kind == "weekly_report"} == {
            "辍学周报告（2027年第50周）（此前另有 1 期未完成）"
        }

        # this week's, not yet due, is listed apart from the late ones
        goto(services.clock, D(12, 21))
        weekly = [(i.title, i.overdue) for i in services.ledgers.due(s, school) if i.kind == "weekly_report"]
        assert weekly == [("辍学周报告（2027年第50周）", True), ("辍学周报告（2027年第51周）", False)]

        # two weeks missed: one line, the latest week, counting the one before
        goto(services.clock, D(12, 23))
        weekly = [i for i in services.ledgers.due(s, school) if i.kind == "weekly_report"]
        assert [(i.title, i.overdue) for i in weekly] == [("辍学周报告（2027年第51周）（此前另有 1 期未完成）", True)]
        services.ledgers.deadlines.mark_done(s, school, unit(s, "WSR-SH").id, "weekly_report", "2027-W51")
        s.commit()
        weekly = [i for i in services.ledgers.due(s, school) if i.kind == "weekly_report"]
        assert [i.title for i in weekly] == ["辍学周报告（2027年第50周）"]  # the earlier one is still owed
