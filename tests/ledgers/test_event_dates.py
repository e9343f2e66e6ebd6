"""Reports count by the days of the events as people entered them (疑似 from, 辍学 from, each 劝返,
复学, 核销, 延缓), in Beijing time: cases entered late land in the periods they belong to, the figures
of a signed period that a late entry changes are flagged for a correction, the signer sees the children
behind each figure, and the district chart counts the same way."""

from __future__ import annotations

import datetime as dt

from service.cases.models import Case
from service.container import Services
from service.ledgers.reports import covered
from tests.district import load_district, scope_of, unit
from tests.ledgers.events import assignments, recurring
from tests.ledgers.term import YEAR, goto, new_case

SCAN = b"%PDF-1.4 scan"


def D(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def test_cases_entered_late_are_counted_in_the_months_of_their_dates(services: Services) -> None:
    """The walk's three cases, all typed in on 12-07: 辍学 11-16; 疑似 10-12; 辍学 09-15, its 延缓
    approved on 11-30 (and two 劝返, in October and November)."""
    load_district(services)
    goto(services.clock, D(12, 7), 10)
    with services.db.session() as s:
        head = scope_of(s, "wsr-sh-head")
        a = new_case(services, s, "wsr-sh-head", "WSR-SH", 201, "甲十一", dropout_date=D(11, 16))
        b = new_case(services, s, "wsr-sh-head", "WSR-SH", 203, "乙十月", dropout_date=D(10, 12), confirmed=False)
        c = new_case(services, s, "wsr-sh-head", "WSR-SH", 205, "丙九月", dropout_date=D(9, 15), grade="八年级")
        for day in (D(10, 20), D(11, 25)):
            services.cases.add_attempt(s, head, c, date=day, staff="班主任", method="家访", result="未返校")
        services.cases.defer(s, head, c, basis="court_ruling", authority="历城区人民法院", approved_on=D(11, 30),
                             approval=[("裁定书.pdf", SCAN)])  # fmt: skip
        s.commit()
        reports = services.ledgers.reports
        school = unit(s, "WSR-SH").id

        def month(m: int) -> dict[str, object]:
            return reports.count(
                s, [school], D(m, 1), (D(m + 1, 1) if m < 12 else dt.date(YEAR + 1, 1, 1)) - dt.timedelta(days=1)
            )

        sep, octo, nov = month(9), month(10), month(11)
        assert (sep["new_dropped"], sep["new_suspected"], sep["open"], sep["attempts"]) == (1, 0, 1, 0)
        assert (octo["new_dropped"], octo["new_suspected"], octo["open"], octo["attempts"]) == (0, 1, 2, 1)
        assert (nov["new_dropped"], nov["new_suspected"], nov["deferred"], nov["attempts"]) == (1, 0, 1, 1)
        assert nov["open"] == 2  # 甲 (辍学 since 11-16) and 乙 (疑似 since 10-12); 丙 deferred on 11-30
        assert month(12)["open"] == 2 and month(12)["new_dropped"] == 0
        # the children behind November's figures, names masked, each with the day it counts by
        figures, behind = reports.tally(s, [school], D(11, 1), D(11, 30))
        assert [(c["name"], c["day"]) for c in behind["new_dropped"]] == [("甲*一", "2027-11-16")]
        assert [(c["name"], c["day"]) for c in behind["deferred"]] == [("丙*月", "2027-11-30")]
        assert sorted((c["name"], c["what"]) for c in behind["open"]) == [("乙*月", "疑似辍学"), ("甲*一", "辍学")]
        assert [c["case_id"] for c in behind["attempts"]] == [c.id] and figures["open"] == 2
        assert {a.id, b.id} == {x["case_id"] for x in behind["open"]}


def test_days_are_beijing_days_across_a_month_and_a_week(services: Services) -> None:
    """A case typed in at 23:30 on the last day of a month (15:30 UTC) without a 辍学日期 belongs to that
    month; one whose 辍学日期 is a Sunday to that ISO week, and a Monday's to the next."""
    load_district(services)
    goto(services.clock, D(11, 30), 23)
    services.clock.advance(dt.timedelta(minutes=30))
    with services.db.session() as s:
        late = new_case(services, s, "wsr-sh-head", "WSR-SH", 211, "晚登记")
        s.commit()
        assert late.dropped_on == D(11, 30)
        goto(services.clock, D(12, 8), 9)
        sunday, monday = D(12, 5), D(12, 6)
        assert sunday.isoweekday() == 7 and monday.isoweekday() == 1
        new_case(services, s, "wsr-sh-head", "WSR-SH", 213, "周日离校", dropout_date=sunday)
        new_case(services, s, "wsr-sh-head", "WSR-SH", 215, "周一离校", dropout_date=monday, confirmed=False)
        s.commit()
        reports, school = services.ledgers.reports, unit(s, "WSR-SH").id
        nov = reports.count(s, [school], *covered(f"{YEAR}-12"))
        dec_first_days = reports.count(s, [school], D(12, 1), D(12, 1))
        assert (nov["new_dropped"], nov["open"]) == (1, 1) and dec_first_days["new_dropped"] == 0
        week = f"{YEAR}-W{monday.isocalendar().week + 1:02d}"  # due in the week after, counts this one
        assert covered(f"{YEAR}-W{sunday.isocalendar().week + 1:02d}") == (D(11, 29), sunday)
        before = reports.count(s, [school], *covered(f"{YEAR}-W{sunday.isocalendar().week + 1:02d}"))
        after = reports.count(s, [school], *covered(week))
        # the week of 11-29..12-05 holds both the 23:30 entry of 11-30 and the Sunday's
        assert (before["new_dropped"], before["new_suspected"], before["open"]) == (2, 0, 2)
        assert (after["new_dropped"], after["new_suspected"], after["open"]) == (0, 1, 3)


def test_a_signed_month_changed_by_a_late_entry_is_flagged_for_a_correction(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(10, 25))
    with services.db.session() as s:
        campaign = recurring(services, s, "控辍保学动态管理月报", "monthly", 20)
        goto(services.clock, D(11, 5))
        new_case(services, s, "wsr-sh-head", "WSR-SH", 221, "先登记", dropout_date=D(11, 3))
        s.commit()
        goto(services.clock, D(12, 5))
        services.campaigns.refresh_recurring(s)
        s.commit()
        head = scope_of(s, "wsr-sh-head")
        period = f"{YEAR}-12"  # November's report, due in December
        mine = assignments(s, campaign, period)["WSR-SH"]
        reports = services.ledgers.reports
        draft = reports.review(s, head, mine)
        reports.sign(s, head, mine, draft.digest)
        s.commit()
        assert not [i for i in services.ledgers.due(s, head) if i.kind == "report_correction"]
        goto(services.clock, D(12, 9))
        new_case(services, s, "wsr-sh-head", "WSR-SH", 223, "后补录", dropout_date=D(11, 20))
        s.commit()
        [flag] = [i for i in services.ledgers.due(s, head) if i.kind == "report_correction"]
        assert flag.period == period and "新增辍学（核实确认） 1→2" in flag.title and "更正" in flag.title
        # the signed version stays as it was; the correction is a new version the school signs
        assert reports.latest(s, unit(s, "WSR-SH").id, period).figures["new_dropped"] == 1  # type: ignore[union-attr]
        again = reports.review(s, head, mine)
        assert again.changes and again.figures["new_dropped"] == 2
        reports.sign(s, head, mine, again.digest)
        s.commit()
        assert not [i for i in services.ledgers.due(s, head) if i.kind == "report_correction"]


def test_a_suspected_case_confirmed_later_is_dropped_from_the_confirmation_day(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(10, 10))
    with services.db.session() as s:
        head = scope_of(s, "wsr-sh-head")
        case = new_case(services, s, "wsr-sh-head", "WSR-SH", 231, "待核实", dropout_date=D(9, 28), confirmed=False)
        s.commit()
        goto(services.clock, D(11, 3))
        services.cases.confirm(s, head, s.get(Case, case.id), on=D(10, 30))
        s.commit()
        reports, school = services.ledgers.reports, unit(s, "WSR-SH").id
        sep = reports.count(s, [school], D(9, 1), D(9, 30))
        octo = reports.count(s, [school], D(10, 1), D(10, 31))
        assert (sep["new_suspected"], sep["new_dropped"], sep["open"]) == (1, 0, 1)
        assert (octo["new_suspected"], octo["new_dropped"], octo["open"]) == (0, 1, 1)
        chart = services.ledgers.district._weeks(s, [school], D(9, 1), D(11, 3))
        assert chart[0] == (D(9, 5), 0, 0)  # not yet listed in the term's first week
        assert [n for _, n, _ in chart][-1] == 1 and chart[4][1:] == (1, 0)  # 10-03: open, still 疑似
        assert chart[-1][2] == 1  # 辍学 since 10-30
