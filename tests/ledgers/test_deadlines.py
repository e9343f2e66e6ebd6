"""The statutory deadlines over an autumn term: each item appears on its school's list on the right
day, on its office's and the bureau's only once overdue, and clears when what it asks is recorded."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from service.accounts.errors import Forbidden
from service.cases.errors import CaseInvalid
from service.container import Services
from service.errors import NotFoundForUser
from tests.district import load_district, scope_of, unit
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
        assert item.source == "谯城区通知 五" and item.title == "未报到学生登记造册并逐一核实原因（2027年秋季学期）"
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
        assert (monthly.due, monthly.overdue, monthly.source) == (D(9, 20), False, "睢阳区通知 四")
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
