"""A term campaign works in any order: created before the bureau enters the 开学日期 it says it waits
for one (no deadline passed); entering a start date that has come opens the period at once; one entered
ahead opens on its day through the schedule; the schools then see a report to file."""

from __future__ import annotations

import datetime as dt

from service.campaigns.service import CampaignSpec
from service.campaigns.tasks import OpenPeriods
from service.container import Services
from service.ledgers.deadlines import REPORT_RULES
from tests.district import load_district, scope_of
from tests.ledgers.events import assignments
from tests.ledgers.term import TERM_START, YEAR, goto

PERIOD = TERM_START.isoformat()


def D(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def test_a_term_campaign_made_before_the_start_date_opens_when_the_date_is_entered(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(9, 3))
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        campaign = services.campaigns.create(
            s, bureau, CampaignSpec("学生失学辍学信息报告", YEAR, None, None, kinds=(), recurrence="term", due_day=15)
        )
        services.campaigns.open_recurring(s, bureau, campaign)
        s.commit()
        assert services.campaigns.periods(campaign, s) == []  # waits for a 开学日期
        assert services.campaigns.status(s, campaign)["period"] == ""
        school = scope_of(s, "wsr-sh-head")
        assert not [i for i in services.ledgers.due(s, school) if i.kind == REPORT_RULES["info_report"]]
        # the start date entered after the term began (9-01): its period opens at once
        services.ledgers.set_term(s, bureau, "2027年秋季学期", TERM_START)
        s.commit()
        mine = assignments(s, campaign, PERIOD)
        assert {"WSR-SH", "WSR-XD", "WSR"} <= set(mine)
        assert mine["WSR-SH"].deadline.astimezone(services.ledgers.tz).date() == D(9, 16)
        items = [i for i in services.ledgers.due(s, school) if i.kind == REPORT_RULES["info_report"]]
        assert items and items[0].due == D(9, 16) and not items[0].overdue


def test_a_start_date_entered_ahead_opens_its_period_on_the_day(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(8, 20))
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        campaign = services.campaigns.create(
            s, bureau, CampaignSpec("学生失学辍学信息报告", YEAR, None, None, kinds=(), recurrence="term", due_day=15)
        )
        services.campaigns.open_recurring(s, bureau, campaign)
        services.ledgers.set_term(s, bureau, "2027年秋季学期", TERM_START)
        s.commit()
        assert assignments(s, campaign, PERIOD) == {}  # not before the term starts
    goto(services.clock, D(9, 1), 8)
    with services.db.session() as s:
        job, _ = services.jobs.enqueue(s, OpenPeriods(), active_key="test:open_periods")
        s.commit()
    services.jobs.run_here(job.id)
    with services.db.session() as s:
        assert "WSR-SH" in assignments(s, campaign, PERIOD)
