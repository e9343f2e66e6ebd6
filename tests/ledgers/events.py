"""What a report test does to cases, logged as it happens, so that a report's figures can be
counted here independently of the service (the monthly, weekly and term reports share it)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.campaigns.models import Assignment, Campaign
from service.campaigns.service import CampaignSpec
from service.cases.models import Case
from service.container import Services
from tests.district import scope_of
from tests.ledgers.term import YEAR, goto, new_case

#: What the calendar reports count, besides the open cases.
COUNTED = ("new_suspected", "new_dropped", "returned", "written_off", "deferred", "attempts")
NEVER = dt.date(YEAR + 1, 12, 31)


def recurring(services: Services, s: Session, name: str, recurrence: str, due_day: int) -> Campaign:
    """The bureau's recurring report campaign, opened at once."""
    bureau = scope_of(s, "bureau")
    campaign = services.campaigns.create(
        s, bureau, CampaignSpec(name, YEAR, None, None, kinds=(), recurrence=recurrence, due_day=due_day)
    )
    services.campaigns.open_recurring(s, bureau, campaign)
    s.commit()
    return campaign


def assignments(s: Session, campaign: Campaign, period: str) -> dict[str, Assignment]:
    """A period's assignments by unit code."""
    return {
        a.unit.code: a
        for a in s.scalars(select(Assignment).where(Assignment.campaign_id == campaign.id, Assignment.period == period))
    }


class Events:
    """Cases opened, tried and closed through the use cases, and the log of each as it happened."""

    def __init__(self, services: Services, s: Session) -> None:
        self.services = services
        self.s = s
        #: (school, what, day) for each counted event.
        self.log: list[tuple[str, str, dt.date]] = []
        #: case id -> (school, grade, key groups, day opened)
        self.opened: dict[int, tuple[str, str, tuple[str, ...], dt.date]] = {}
        self.closed: dict[int, dt.date] = {}

    def case(
        self,
        school: str,
        user: str,
        n: int,
        name: str,
        day: dt.date,
        *,
        confirmed: bool = True,
        grade: str = "七年级",
        groups: tuple[str, ...] = (),
        reason: str | None = None,
        detail: str | None = None,
    ) -> int:
        goto(self.services.clock, day, 10)
        c = new_case(
            self.services,
            self.s,
            user,
            school,
            n,
            name,
            confirmed=confirmed,
            grade=grade,
            key_groups=groups,
            reason=reason,
            detail=detail,
        )
        self.log.append((school, "new_dropped" if confirmed else "new_suspected", day))
        self.opened[c.id] = (school, grade, groups, day)
        return c.id

    def attempt(self, user: str, case_id: int, day: dt.date, *, recorded: dt.date | None = None) -> None:
        goto(self.services.clock, recorded or day, 11)
        self.services.cases.add_attempt(
            self.s,
            scope_of(self.s, user),
            self.s.get(Case, case_id),
            date=day,
            staff="班主任",
            method="家访",
            result="未返校",
        )
        self.s.commit()
        self.log.append((self.opened[case_id][0], "attempts", day))

    def confirmed(self, case_id: int, day: dt.date) -> None:
        self.log.append((self.opened[case_id][0], "new_dropped", day))

    def close(self, case_id: int, what: str, day: dt.date) -> None:
        """A 销号 act the test did (returned, written_off or deferred) on ``day``."""
        self.log.append((self.opened[case_id][0], what, day))
        self.closed[case_id] = day

    def still_open(self, schools: set[str], end: dt.date) -> list[int]:
        return [
            cid
            for cid, o in self.opened.items()
            if o[0] in schools and o[3] <= end and self.closed.get(cid, NEVER) > end
        ]

    def expected(self, schools: set[str], start: dt.date, end: dt.date) -> dict[str, object]:
        """The period's figures for these schools, counted from the log."""
        out: dict[str, object] = dict.fromkeys(COUNTED, 0)
        for school, what, day in self.log:
            if school in schools and start <= day <= end:
                out[what] = int(out[what]) + 1  # type: ignore[call-overload]
        still = [self.opened[cid] for cid in self.still_open(schools, end)]
        out["open"] = len(still)
        out["grades"] = dict(Counter(o[1] for o in still))
        out["groups"] = dict(Counter(g for o in still for g in (o[2] or ("非重点群体",))))
        return out
