"""The statutory deadlines of the notices as rules stored per bureau, and the items due under them.

Each rule is a row a bureau may change (a day, a lead time, on or off) without code; the defaults
come from the notices in ``reference/`` and each names its source. Term rules count from the
term's start date, which the bureau enters once a term. An item shows on its school's list from
the day it applies, and on its office's and the bureau's once it is overdue; it clears when what it
asks for is recorded: a 劝返 entry or a 送教上门 visit, or the school's note that it did the rest (排查,
信息报告, 工作方案, 未报到学生造册, 周报, 月报, 季度复核).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.scope import Scope
from service.audit.service import record
from service.campaigns.models import Campaign, TermStart
from service.campaigns.service import INFO_REPORT, REPORT, WEEKLY_REPORT
from service.cases.errors import CaseInvalid
from service.cases.models import Case, CaseStatus
from service.cases.service import DueItem
from service.errors import NotFoundForUser
from service.ledgers.models import DeadlineRule, RuleDone
from service.units.models import Unit, UnitType
from service.units.service import bureau_of

ANCHORS = {
    "term": "开学后天数",
    "case_monthly": "劝返记录间隔天数",
    "case_weekly": "送教上门间隔天数",
    "weekly": "每周星期几（1–7）",
    "monthly": "每月几日",
    "quarterly": "季度末前天数",
}
HOME_TEACHING = "送教上门"


@dataclass(frozen=True)
class RuleDefault:
    key: str
    title: str
    source: str
    anchor: str
    days: int
    lead_days: int = 0


#: The deadlines of the notices. Titles name the act once (never "月报（…月报）").
DEFAULT_RULES = (
    RuleDefault("survey", "开学排查（入学、变动、辍学及学籍变化）", "县实施方案 二.(三).2", "term", 10),
    RuleDefault("info_report", "报送《学生失学辍学信息报告》", "县实施方案 二.(三).2", "term", 15),
    RuleDefault("unregistered", "未报到学生登记造册并逐一核实原因", "谯城区通知 五", "term", 7),
    RuleDefault("work_plan", "制定控辍保学工作方案", "县实施方案 二.(三).3", "term", 50),
    RuleDefault("persuasion", "劝返记录（每月不少于1次）", "县实施方案 二.(三).5", "case_monthly", 30, 7),
    RuleDefault("home_teaching", "送教上门（每周不少于1次）", "县实施方案 二.(三).4", "case_weekly", 7, 2),
    RuleDefault("weekly_report", "辍学周报告", "枣庄市通知 三.(四)(五)", "weekly", 3, 2),
    RuleDefault("monthly_report", "控辍保学动态管理月报表", "睢阳区通知 四", "monthly", 20, 19),
    RuleDefault("quarterly_review", "疑似辍学和辍学学生数据季度复核", "睢阳区通知 四", "quarterly", 0, 14),
)
#: Rules whose items a school clears by recording that it did it.
MANUAL = {"term", "weekly", "monthly", "quarterly"}


def quarter_of(day: dt.date) -> tuple[str, dt.date, dt.date]:
    q = (day.month - 1) // 3
    start = dt.date(day.year, q * 3 + 1, 1)
    end = (dt.date(day.year + (q == 3), (q * 3 + 3) % 12 + 1, 1)) - dt.timedelta(days=1)
    return f"{day.year}Q{q + 1}", start, end


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _month_day(first: dt.date, day: int) -> dt.date:
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return min(first.replace(day=1) + dt.timedelta(days=day - 1), nxt - dt.timedelta(days=1))


class Deadlines:
    def __init__(self, now: Callable[[], dt.datetime], today: Callable[[], dt.date], tz: zoneinfo.ZoneInfo) -> None:
        self.now = now
        self.today = today
        self.tz = tz

    # --- the rules and terms of a bureau -------------------------------------------------------

    def rules(self, session: Session, bureau: Unit) -> list[DeadlineRule]:
        """The bureau's rules, the notices' defaults made the first time they are read."""
        have = {r.key: r for r in session.scalars(select(DeadlineRule).where(DeadlineRule.bureau_id == bureau.id))}
        missing = [d for d in DEFAULT_RULES if d.key not in have]
        if missing:
            try:
                with session.begin_nested():
                    for d in missing:
                        rule = DeadlineRule(
                            bureau_id=bureau.id,
                            key=d.key,
                            title=d.title,
                            source=d.source,
                            anchor=d.anchor,
                            days=d.days,
                            lead_days=d.lead_days,
                            updated_at=self.now(),
                            updated_by="系统（通知默认）",
                        )
                        session.add(rule)
                        have[d.key] = rule
            except IntegrityError:  # another request made them first
                have = {
                    r.key: r for r in session.scalars(select(DeadlineRule).where(DeadlineRule.bureau_id == bureau.id))
                }
        order = {d.key: i for i, d in enumerate(DEFAULT_RULES)}
        return sorted(have.values(), key=lambda r: order.get(r.key, 99))

    def set_rule(
        self, session: Session, scope: Scope, key: str, *, days: int, lead_days: int, active: bool
    ) -> DeadlineRule:
        """A bureau changes a rule's day (its source stays named)."""
        scope.require(Role.BUREAU, message="只有教体局工作人员可以修改期限规则。")
        bureau = scope.bureau()
        rule = next((r for r in self.rules(session, bureau) if r.key == key), None)
        if rule is None:
            raise NotFoundForUser("没有这条期限规则。")
        limits = {"weekly": (1, 7), "monthly": (1, 28)}.get(rule.anchor, (0, 200))
        if not limits[0] <= days <= limits[1]:
            raise CaseInvalid(f"「{rule.title}」的{ANCHORS[rule.anchor]}应在 {limits[0]} 到 {limits[1]} 之间。")
        if not 0 <= lead_days <= 60:
            raise CaseInvalid("提前显示的天数应在 0 到 60 之间。")
        before = {"days": rule.days, "lead_days": rule.lead_days, "active": rule.active}
        rule.days, rule.lead_days, rule.active = days, lead_days, active
        rule.updated_at = self.now()
        rule.updated_by = scope.actor.label[:80]
        record(
            session,
            scope.actor,
            "deadline.rule",
            "deadline_rule",
            rule.id,
            self.now(),
            key=key,
            before=before,
            after={"days": days, "lead_days": lead_days, "active": active},
        )
        session.flush()
        return rule

    def terms(self, session: Session, bureau: Unit) -> list[TermStart]:
        return list(
            session.scalars(
                select(TermStart).where(TermStart.bureau_id == bureau.id).order_by(TermStart.starts_on.desc())
            )
        )

    def set_term(self, session: Session, scope: Scope, name: str, starts_on: dt.date | None) -> TermStart:
        """The bureau enters a term's start date, once a term."""
        scope.require(Role.BUREAU, message="只有教体局工作人员可以设置开学日期。")
        bureau = scope.bureau()
        if not name.strip():
            raise CaseInvalid("请填写学期名称，例如 2027年秋季学期。")
        if starts_on is None:
            raise CaseInvalid("请填写开学日期。")
        if any(t.starts_on == starts_on for t in self.terms(session, bureau)):
            raise CaseInvalid(f"{starts_on.isoformat()} 已设为开学日期。")
        term = TermStart(
            bureau_id=bureau.id,
            name=name.strip()[:30],
            starts_on=starts_on,
            created_at=self.now(),
            created_by=scope.actor.label[:80],
        )
        session.add(term)
        session.flush()
        record(session, scope.actor, "deadline.term", "term", term.id, self.now(), starts_on=starts_on.isoformat())
        return term

    def term_on(self, session: Session, bureau: Unit, day: dt.date) -> TermStart | None:
        return session.scalar(
            select(TermStart)
            .where(TermStart.bureau_id == bureau.id, TermStart.starts_on <= day)
            .order_by(TermStart.starts_on.desc())
            .limit(1)
        )

    # --- recording what was done ---------------------------------------------------------------

    def mark_done(
        self, session: Session, scope: Scope, unit_id: int, key: str, period: str, note: str | None = None
    ) -> RuleDone:
        """A school (or its office or the bureau for it) records that it did what a rule asks."""
        unit = session.get(Unit, unit_id)
        if unit is None or unit.id not in scope.units:
            raise NotFoundForUser("未找到该单位。")
        rule = next((r for r in self.rules(session, bureau_of(unit)) if r.key == key), None)
        if rule is None or rule.anchor not in MANUAL:
            raise CaseInvalid("这一事项由劝返或送教上门记录自动完成，不能直接标记。")
        if not period or len(period) > 16:
            raise CaseInvalid("期次不正确。")
        existing = session.scalar(
            select(RuleDone).where(RuleDone.unit_id == unit.id, RuleDone.rule_key == key, RuleDone.period == period)
        )
        if existing is not None:
            return existing
        done = RuleDone(
            unit_id=unit.id,
            rule_key=key,
            period=period,
            done_on=self.today(),
            note=(note or "").strip()[:200] or None,
            actor=scope.actor.label[:80],
            created_at=self.now(),
        )
        session.add(done)
        session.flush()
        record(session, scope.actor, "deadline.done", "unit", unit.id, self.now(), rule=key, period=period)
        return done

    # --- what is due ---------------------------------------------------------------------------

    def items(self, session: Session, unit_ids: set[int], today: dt.date | None = None) -> list[DueItem]:
        """Every item due under the rules for these schools, overdue or not (the caller decides
        who sees which)."""
        today = today or self.today()
        schools = list(session.scalars(select(Unit).where(Unit.id.in_(unit_ids), Unit.type == UnitType.SCHOOL)))
        if not schools:
            return []
        done = {
            (d.unit_id, d.rule_key, d.period)
            for d in session.scalars(select(RuleDone).where(RuleDone.unit_id.in_([s.id for s in schools])))
        }
        by_bureau: dict[int, list[Unit]] = {}
        bureaus: dict[int, Unit] = {}
        for school in schools:
            b = bureau_of(school)
            bureaus[b.id] = b
            by_bureau.setdefault(b.id, []).append(school)
        items: list[DueItem] = []
        for bid, members in by_bureau.items():
            bureau = bureaus[bid]
            rules = [r for r in self.rules(session, bureau) if r.active]
            terms = self.terms(session, bureau)
            term = next((t for t in terms if t.starts_on <= today), None)
            first = min((t.starts_on for t in terms), default=None)
            if first is None or first > today:
                continue  # no term entered yet: nothing counts
            campaigns = {
                k
                for kinds in session.scalars(
                    select(Campaign.kinds).where(Campaign.bureau_id == bid, Campaign.recurrence.is_not(None))
                )
                for k in kinds
            }
            for rule in rules:
                if rule.anchor == "term":
                    if term is None or (rule.key == "info_report" and INFO_REPORT in campaigns):
                        continue  # the term campaign's assignments say it (cleared by signing the report)
                    due = term.starts_on + dt.timedelta(days=rule.days)
                    period = term.starts_on.isoformat()
                    for s in members:
                        if (s.id, rule.key, period) not in done:
                            items.append(self._item(rule, s, due, today, period, f"（{term.name}）"))
                elif rule.anchor in ("weekly", "monthly", "quarterly"):
                    if rule.anchor == "weekly" and WEEKLY_REPORT in campaigns:
                        continue  # the weekly campaign's assignments say it
                    if rule.anchor == "monthly" and REPORT in campaigns:
                        continue
                    for period, label, due, opens in self._periods(rule, today):
                        if opens > today or due < first:
                            continue
                        for s in members:
                            if (s.id, rule.key, period) not in done:
                                items.append(self._item(rule, s, due, today, period, label))
                else:
                    items += self._case_items(session, rule, members, today, first)
        return items

    def _item(
        self, rule: DeadlineRule, school: Unit, due: dt.date, today: dt.date, period: str, label: str = ""
    ) -> DueItem:
        return DueItem(
            rule.key,
            f"{rule.title}{label}",
            due,
            today > due,
            school.id,
            school.name,
            source=rule.source,
            period=period,
            manual=True,
        )

    def _periods(self, rule: DeadlineRule, today: dt.date) -> list[tuple[str, str, dt.date, dt.date]]:
        """This period and the one before (still owed if not done): (period, label, due, shows from)."""
        out = []
        if rule.anchor == "weekly":
            monday = today - dt.timedelta(days=today.weekday())
            for start in (monday - dt.timedelta(days=7), monday):
                iso = start.isocalendar()
                due = start + dt.timedelta(days=rule.days - 1)
                out.append(
                    (
                        f"{iso.year}-W{iso.week:02d}",
                        f"（{iso.year}年第{iso.week}周）",
                        due,
                        due - dt.timedelta(days=rule.lead_days),
                    )
                )
        elif rule.anchor == "monthly":
            this = _month(today)
            for first in (_month(this - dt.timedelta(days=1)), this):
                due = _month_day(first, rule.days)
                out.append(
                    (
                        f"{first.year}-{first.month:02d}",
                        f"（{first.year}年{first.month}月）",
                        due,
                        due - dt.timedelta(days=rule.lead_days),
                    )
                )
        else:
            _, start, _ = quarter_of(today)
            for day in (start - dt.timedelta(days=1), today):
                period, _, end = quarter_of(day)
                due = end - dt.timedelta(days=rule.days)
                out.append(
                    (period, f"（{period[:4]}年第{period[-1]}季度）", due, due - dt.timedelta(days=rule.lead_days))
                )
        return out

    def _case_items(
        self, session: Session, rule: DeadlineRule, schools: list[Unit], today: dt.date, first: dt.date
    ) -> list[DueItem]:
        """A 劝返 record every ``days`` for each confirmed open case; a 送教上门 every ``days`` for
        each child taught at home: a deferred one whose deferral says so (from its approval or its
        last recorded visit), or an open case whose 劝返 includes 送教上门."""
        items = []
        statuses = [CaseStatus.DROPPED.value, CaseStatus.PERSUADING.value]
        if rule.anchor == "case_weekly":
            statuses.append(CaseStatus.DEFERRED.value)
        cases = session.scalars(
            select(Case).where(Case.school_id.in_([s.id for s in schools]), Case.status.in_(statuses))
        )
        for case in cases:
            if rule.anchor == "case_weekly":
                if case.status == CaseStatus.DEFERRED:
                    if case.closure is None or not case.closure.home_teaching:
                        continue
                    visits = [v.date for v in case.home_visits] + [case.closure.date]
                else:
                    visits = [a.date for a in case.attempts if a.method == HOME_TEACHING]
                if not visits:
                    continue
                last = max(visits)
            else:
                created = case.created_at.astimezone(self.tz).date()
                last = max([a.date for a in case.attempts] + [max(created, first)])
            due = last + dt.timedelta(days=rule.days)
            if due - dt.timedelta(days=rule.lead_days) > today:
                continue
            items.append(
                DueItem(
                    rule.key,
                    f"{rule.title}（上次 {last.month}月{last.day}日）",
                    due,
                    today > due,
                    case.school_id,
                    case.school.name,
                    case.id,
                    case.student_name,
                    source=rule.source,
                )
            )
        return items
