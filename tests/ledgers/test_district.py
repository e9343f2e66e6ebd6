"""The bureau's figures per school and office over a few weeks of the autumn term: open cases by
status, overdue items, reports late or missing, and the 巩固率 against its 99 % target."""

from __future__ import annotations

import datetime as dt

import pytest

from service.accounts.errors import Forbidden
from service.campaigns.models import Assignment
from service.campaigns.service import CampaignSpec
from service.cases.errors import CaseInvalid
from service.container import Services
from service.ledgers.district import Figures
from tests.district import load_district, scope_of, unit
from tests.ledgers.term import TERM_START, YEAR, goto, new_case


def D(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def line(district_total: Figures) -> tuple[int, int, int, int, int, int]:
    f = district_total
    return (f.suspected, f.dropped, f.persuading, f.overdue, f.reports_late, f.reports_missing)


def test_district_figures_per_school_and_office(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(8, 21))  # after August's 20th: the monthly campaign starts with September
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        services.ledgers.deadlines.set_term(s, bureau, "2027年秋季学期", TERM_START)
        # the demo district aims at 零流失; this test follows a 99 % target (谯城区's)
        services.ledgers.deadlines.set_basis(
            s, bureau, region="山东省济南市", notice="历城区通知", target=0.99, target_source="谯城区通知 一"
        )
        for rule in ("survey", "info_report", "unregistered", "work_plan", "weekly_report", "quarterly_review"):
            services.ledgers.deadlines.set_rule(s, bureau, rule, days=1, lead_days=0, active=False)
        campaign = services.campaigns.create(
            s,
            bureau,
            CampaignSpec("控辍保学动态管理月报", YEAR, None, None, kinds=["report"], recurrence="monthly", due_day=20),
        )
        services.campaigns.open_recurring(s, bureau, campaign)
        for code, students in (("WSR-SH", 400), ("WSR-XD", 300), ("HJL-XX", 500)):
            services.ledgers.district.set_roll(s, bureau, unit(s, code).id, YEAR, students)
        s.commit()
        with pytest.raises(Forbidden):
            services.ledgers.district.set_roll(s, scope_of(s, "wsr-staff"), unit(s, "WSR-SH").id, YEAR, 10)
        with pytest.raises(CaseInvalid):
            services.ledgers.district.set_roll(s, bureau, unit(s, "WSR-SH").id, YEAR, 0)
        s.rollback()

        goto(services.clock, D(9, 2))
        new_case(services, s, "wsr-sh-head", "WSR-SH", 71, "甲辍学")
        new_case(services, s, "wsr-sh-head", "WSR-SH", 73, "乙辍学")
        new_case(services, s, "wsr-sh-head", "WSR-SH", 75, "丙疑似", confirmed=False)
        persuaded = new_case(services, s, "wsr-xd-head", "WSR-XD", 77, "丁劝返")
        services.cases.add_attempt(
            s, scope_of(s, "wsr-xd-head"), persuaded, date=D(9, 2), staff="班主任", method="家访", result="未返校"
        )
        s.commit()
        new_case(services, s, "hjl-xx-head", "HJL-XX", 79, "戊辍学")

        goto(services.clock, D(9, 15))
        services.campaigns.refresh_recurring(s)
        s.commit()
        sh = next(
            a for a in s.query(Assignment).all() if a.unit_id == unit(s, "WSR-SH").id and a.period == f"{YEAR}-09"
        )
        sh_report = services.ledgers.reports
        s.commit()
        sh_report.sign(s, scope_of(s, "wsr-sh-head"), sh, sh_report.review(s, scope_of(s, "wsr-sh-head"), sh).digest)
        s.commit()
        goto(services.clock, D(9, 25))
        xd = next(
            a for a in s.query(Assignment).all() if a.unit_id == unit(s, "WSR-XD").id and a.period == f"{YEAR}-09"
        )
        sh_report.sign(s, scope_of(s, "wsr-xd-head"), xd, sh_report.review(s, scope_of(s, "wsr-xd-head"), xd).digest)
        s.commit()

        goto(services.clock, D(10, 5))  # 劝返 due a month after each case opened, 9月 reports done or not
        d = services.ledgers.district.figures(s, unit(s, "LCJT"), YEAR, TERM_START)
        per = {c.name: c for o in d.offices for c in o.children}
        # overdue: each confirmed case owes its 复学通知书 (a week) and a 劝返 record (30 days from
        # 9-02), the suspected one its check (3 days)
        assert line(per["历城区王舍人街道石河小学"]) == (1, 2, 0, 5, 0, 0)
        assert line(per["历城区王舍人街道辛甸小学"]) == (0, 0, 1, 2, 1, 0)  # filed after the 20th
        assert line(per["历城区洪家楼小学"]) == (0, 1, 0, 2, 0, 1)
        assert line(per["历城区王舍人街道中学"]) == (0, 0, 0, 0, 0, 1)
        wsr = next(o for o in d.offices if o.name == "历城区王舍人街道教育办公室")
        # the office's own September report is missing too
        assert line(wsr) == (1, 2, 1, 7, 1, 2)
        assert per["历城区王舍人街道石河小学"].retention == pytest.approx(398 / 400)
        assert (
            per["历城区洪家楼小学"].retention == pytest.approx(499 / 500) and not per["历城区洪家楼小学"].below_target
        )
        assert per["历城区王舍人街道中学"].retention is None
        assert wsr.students == 700 and wsr.retention == pytest.approx(697 / 700)
        assert d.total.students == 1200 and d.total.retention == pytest.approx(1196 / 1200)
        assert d.total.open == 5 and d.total.reports_missing == 10 - 2 and d.total.reports_late == 1
        assert [names for names in ("区直学校",) if names in {o.name for o in d.offices}] == ["区直学校"]
        # one school with two more dropouts falls under 99 %
        goto(services.clock, D(10, 6))
        for n in range(3):
            new_case(services, s, "wsr-xd-head", "WSR-XD", 81 + 2 * n, f"己{n}辍学")
        d = services.ledgers.district.figures(s, unit(s, "LCJT"), YEAR, TERM_START)
        xd_line = next(c for o in d.offices for c in o.children if c.name == "历城区王舍人街道辛甸小学")
        assert xd_line.retention == pytest.approx(296 / 300) and xd_line.below_target
        # the open cases week by week over the term
        assert [(day, n) for day, n, _ in d.weeks] == [
            (D(9, 5), 5),
            (D(9, 12), 5),
            (D(9, 19), 5),
            (D(9, 26), 5),
            (D(10, 3), 5),
            (D(10, 6), 8),
        ]
        # an office sees its own schools only
        office = services.ledgers.district.figures(s, unit(s, "WSR"), YEAR, TERM_START)
        assert [c.name for o in office.offices for c in o.children] == [
            "历城区王舍人街道石河小学",
            "历城区王舍人街道辛甸小学",
            "历城区王舍人街道中学",
        ]
