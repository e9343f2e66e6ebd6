"""The district's figures for the bureau (and an office for its schools): open cases by status,
overdue items, reports late or missing, and the 巩固率 against the Qiaocheng target (≥ 99 %),
per school, per office and in all, with the open cases week by week over the term."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.scope import Scope
from service.audit.service import record
from service.campaigns.models import Assignment, AssignmentState, Campaign
from service.cases.errors import CaseInvalid
from service.cases.models import OPEN_STATUSES, Case, CaseStatus
from service.errors import NotFoundForUser
from service.ledgers.basis import DEFAULT_TARGET
from service.ledgers.deadlines import DueItem
from service.ledgers.models import SchoolRoll
from service.units.models import Unit, UnitType
from service.units.service import bureau_of, visible_unit_ids

#: Those who count as dropped out of the roll: the cases on the 辍学学生台账.
DROPPED = (CaseStatus.DROPPED, CaseStatus.PERSUADING)
DONE = (AssignmentState.SIGNED, AssignmentState.FORWARDED, AssignmentState.RECEIVED)


@dataclass
class Figures:
    unit_id: int
    name: str
    kind: str
    suspected: int = 0
    dropped: int = 0
    persuading: int = 0
    overdue: int = 0
    reports_late: int = 0
    reports_missing: int = 0
    students: int | None = None
    children: list[Figures] = field(default_factory=list)
    #: The bureau's 巩固率 target (its own, ``BureauBasis``).
    target: float = DEFAULT_TARGET

    @property
    def open(self) -> int:
        return self.suspected + self.dropped + self.persuading

    @property
    def retention(self) -> float | None:
        """巩固率: the share of the roll not on the 辍学学生台账."""
        if not self.students:
            return None
        return (self.students - self.dropped - self.persuading) / self.students

    @property
    def below_target(self) -> bool:
        return self.retention is not None and self.retention < self.target

    def add(self, other: Figures) -> None:
        for k in ("suspected", "dropped", "persuading", "overdue", "reports_late", "reports_missing"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        if other.students is not None:
            self.students = (self.students or 0) + other.students


@dataclass
class District:
    unit: Unit
    year: int
    total: Figures
    offices: list[Figures]
    #: (week's last day, open cases, cases on the 辍学学生台账) from the term's start to today.
    weeks: list[tuple[dt.date, int, int]]
    #: The bureau's 巩固率 target and what it rests on (its own passage, or a marked reference).
    target: float = DEFAULT_TARGET
    target_source: str = ""


class DistrictFigures:
    def __init__(
        self,
        due: Callable[[Session, set[int], dt.date], list[DueItem]],
        now: Callable[[], dt.datetime],
        today: Callable[[], dt.date],
        tz: zoneinfo.ZoneInfo,
        target: Callable[[Session, Unit], tuple[float, str]] = lambda session, bureau: (DEFAULT_TARGET, ""),
    ) -> None:
        self.due = due
        self.target = target
        self.now = now
        self.today = today
        self.tz = tz

    def set_roll(self, session: Session, scope: Scope, school_id: int, year: int, students: int) -> SchoolRoll:
        """The bureau (or the school itself) enters a school's roll for a school year."""
        school = session.get(Unit, school_id)
        if school is None or school.id not in scope.units or school.type != UnitType.SCHOOL:
            raise NotFoundForUser("未找到该学校。")
        scope.require(Role.BUREAU, Role.SIGNER, message="在籍学生数由教体局或学校负责人填写。")
        if not 1 <= students <= 20000:
            raise CaseInvalid("在籍学生数应在 1 到 20000 之间。")
        roll = session.scalar(select(SchoolRoll).where(SchoolRoll.school_id == school.id, SchoolRoll.year == year))
        if roll is None:
            roll = SchoolRoll(school_id=school.id, year=year, students=students, updated_by="")
            session.add(roll)
        before = roll.students
        roll.students = students
        roll.updated_at = self.now()
        roll.updated_by = scope.actor.label[:80]
        session.flush()
        record(
            session, scope.actor, "school.roll", "unit", school.id, self.now(), year=year, before=before, after=students
        )
        return roll

    def figures(self, session: Session, unit: Unit, year: int, term_start: dt.date | None) -> District:
        """Per school, grouped by office (区直学校 on their own), and the total."""
        today = self.today()
        ids = visible_unit_ids(session, unit)
        units = list(session.scalars(select(Unit).where(Unit.id.in_(ids)).order_by(Unit.id)))
        schools = [u for u in units if u.type == UnitType.SCHOOL]
        target, target_source = self.target(session, bureau_of(unit))
        per: dict[int, Figures] = {s.id: Figures(s.id, s.name, UnitType.SCHOOL, target=target) for s in schools}
        for case in session.scalars(
            select(Case).where(Case.school_id.in_(list(per)), Case.status.in_([s.value for s in OPEN_STATUSES]))
        ):
            f = per[case.school_id]
            setattr(f, CaseStatus(case.status).value, getattr(f, CaseStatus(case.status).value) + 1)
        for item in self.due(session, set(per), today):
            if item.kind in ("monthly_report", "weekly_report", "info_report") and item.source is None:
                continue  # a campaign's report: counted as late or missing below
            if item.overdue and item.school_id in per:
                per[item.school_id].overdue += 1
        office_figures: dict[int, Figures] = {
            u.id: Figures(u.id, u.name, UnitType.OFFICE, target=target) for u in units if u.type == UnitType.OFFICE
        }
        now = self.now()
        reports = session.scalars(
            select(Assignment).join(Campaign).where(Assignment.unit_id.in_(ids), Campaign.recurrence.is_not(None))
        )
        for a in reports:
            line = per.get(a.unit_id) or office_figures.get(a.unit_id)
            if line is None:
                continue
            if a.state in DONE and a.late:
                line.reports_late += 1
            elif a.state not in DONE and a.deadline < now:
                line.reports_missing += 1
        for roll in session.scalars(
            select(SchoolRoll).where(SchoolRoll.school_id.in_(list(per)), SchoolRoll.year == year)
        ):
            per[roll.school_id].students = roll.students
        total = Figures(unit.id, unit.name, unit.type, target=target)
        direct = Figures(unit.id, "区直学校", "direct", target=target)
        groups: list[Figures] = []
        for office in office_figures.values():
            office_schools = [per[s.id] for s in schools if s.parent_id == office.unit_id]
            for f in office_schools:
                office.add(f)
            office.children = office_schools
            groups.append(office)
            total.add(office)
        for s in schools:
            if s.parent_id not in office_figures:
                direct.add(per[s.id])
                direct.children.append(per[s.id])
        if direct.children:
            groups.append(direct)
            total.add(direct)
        if unit.type == UnitType.SCHOOL:
            total = per[unit.id]
            groups = []
        weeks = self._weeks(session, list(per), term_start, today)
        return District(unit, year, total, groups, weeks, target, target_source)

    def _weeks(
        self, session: Session, schools: list[int], start: dt.date | None, today: dt.date
    ) -> list[tuple[dt.date, int, int]]:
        if start is None or start > today or not schools:
            return []
        cases = list(session.scalars(select(Case).where(Case.school_id.in_(schools))))
        out = []
        day = start + dt.timedelta(days=6 - start.weekday())
        while True:
            end = min(day, today)
            # the reports' own counting: open at the end of the day by the dates entered
            opened = [c for c in cases if c.open_on(end)]
            out.append((end, len(opened), sum(1 for c in opened if c.status_on(end) != CaseStatus.SUSPECTED)))
            if day >= today:
                break
            day += dt.timedelta(days=7)
        return out


def weeks_chart(weeks: list[tuple[dt.date, int, int]]) -> str:
    """Open cases week by week, as an inline SVG."""
    if not weeks:
        return ""
    w, h, left, right, top, bottom = 640, 200, 40, 16, 14, 30
    peak = max(max(n for _, n, _ in weeks), 1)
    step = (w - left - right) / max(len(weeks) - 1, 1)

    def y(n: int) -> float:
        return h - bottom - (h - top - bottom) * n / peak

    line = " ".join(f"{left + i * step:.1f},{y(n):.1f}" for i, (_, n, _) in enumerate(weeks))
    dropped = " ".join(f"{left + i * step:.1f},{y(d):.1f}" for i, (_, _, d) in enumerate(weeks))
    last = weeks[-1]
    parts = [
        f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="本学期未销号个案：现有 {last[1]} 人，其中辍学 {last[2]} 人">',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#94a3b8"/>',
        f'<text x="{left - 6}" y="{y(peak) + 4:.1f}" font-size="11" text-anchor="end" fill="#6b7280">{peak}</text>',
        f'<text x="{left - 6}" y="{y(0) + 4:.1f}" font-size="11" text-anchor="end" fill="#6b7280">0</text>',
        f'<polyline points="{line}" fill="none" stroke="#1d4ed8" stroke-width="2.5"/>',
        f'<polyline points="{dropped}" fill="none" stroke="#c8161d" stroke-width="2" stroke-dasharray="5 3"/>',
        f'<text x="{left}" y="{h - 8}" font-size="11" fill="#6b7280">{weeks[0][0]:%m月%d日}</text>',
        f'<text x="{w - right}" y="{h - 8}" font-size="11" text-anchor="end" fill="#6b7280">{last[0]:%m月%d日}</text>',
        "</svg>",
    ]
    return "".join(parts)
