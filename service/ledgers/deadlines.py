"""Every due rule of the notices, stored per bureau, and the one place that computes what is due.

Each rule is a bureau's to change (a day, a count, on or off) without code; the defaults come from
the notices in ``reference/`` and each names its source. A bureau that changed nothing follows the
defaults, and nothing is written until it changes a rule. Three families of items:

- a case's steps: confirm a 疑似辍学, send the 复学通知书, 联合劝返 after failed
  attempts, the 限期复学通知书 once the 复学通知书's report-by date passed, the judicial step once the
  限期复学通知书's did. They count from the case's own dates and show from the day they apply, to
  the school and to the offices and the bureau above it; they clear when the step is recorded.
- a school's term and periodic duties (排查, 信息报告, 工作方案, 未报到学生造册, 周报, 月报, 季度复核)
  and a case's recurring records (a 劝返 entry a month, a 送教上门 visit a week): on the school's
  list from the day they apply (``lead_days`` ahead for the periodic ones), on its office's and
  the bureau's once overdue; they count only once the bureau entered a term's start date (from the
  day it was entered, if that was after the term began), one overdue line per periodic duty and
  school (its latest period, counting the earlier ones), and clear when the school notes it did it
  or when the record is made.
- the recurring report campaigns' assignments (月报, 周报, 信息报告), due by the campaign's deadline
  and cleared by filing the report.

The engine sits above ``cases`` and ``campaigns``: it reads their tables; they never import it. A
case's page gets its items from the face, which asks ``Deadlines.case_items``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.scope import Scope
from service.audit.service import record
from service.campaigns.models import Assignment, AssignmentState, Campaign, TermStart
from service.campaigns.service import INFO_REPORT, REPORT, WEEKLY_REPORT, period_label
from service.cases.errors import CaseInvalid
from service.cases.models import JOINT, OPEN_STATUSES, Case, CaseStatus
from service.cases.notices import sent_notices
from service.errors import NotFoundForUser
from service.ledgers.basis import DEFAULT_TARGET, SEED_NOTICES, SEED_TEXTS, reference
from service.ledgers.models import BureauBasis, DeadlineRule, RuleDone
from service.units.models import Unit, UnitType
from service.units.service import bureau_of

#: What a rule's ``days`` counts, by its anchor (the label of the field a bureau edits).
ANCHORS = {
    "case_registered": "登记后天数",
    "case_dropped": "辍学后天数",
    "failed_attempts": "未成功的劝返次数",
    "notice_expired": "报到期限过后天数",
    "term": "开学后天数",
    "case_monthly": "劝返记录间隔天数",
    "case_weekly": "送教上门间隔天数",
    "weekly": "每周星期几（1–7）",
    "monthly": "每月几日",
    "quarterly": "季度末前天数",
}
#: The anchors whose items show ``lead_days`` ahead of their due day (a term's items show from the
#: term's start, a case's steps from the day they apply).
LEAD_ANCHORS = {"case_monthly", "case_weekly", "weekly", "monthly", "quarterly"}
#: The range a bureau may set ``days`` to, by anchor (0–200 otherwise).
DAY_LIMITS = {"weekly": (1, 7), "monthly": (1, 28), "failed_attempts": (1, 20), "notice_expired": (1, 60)}
HOME_TEACHING = "送教上门"


@dataclass(frozen=True)
class DueItem:
    kind: str
    title: str
    due: dt.date
    overdue: bool
    school_id: int
    school: str
    case_id: int | None = None
    student: str | None = None
    #: The notice and article the deadline comes from (none for a campaign's report: its
    #: deadline is the campaign's).
    source: str | None = None
    #: For an item the unit clears by recording it did it: the period it is for.
    period: str | None = None
    manual: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "period": self.period,
            "manual": self.manual,
            "kind": self.kind,
            "title": self.title,
            "due": self.due.isoformat(),
            "overdue": self.overdue,
            "school_id": self.school_id,
            "school": self.school,
            "case_id": self.case_id,
            "student": self.student,
        }


@dataclass(frozen=True)
class RuleDefault:
    key: str
    title: str
    source: str
    anchor: str
    days: int
    lead_days: int = 0


#: The deadlines of the notices. Titles name the act once (never "月报（…月报）"). Where a notice
#: asks for a step "立即" or "第一时间" (Zaozhuang 三.(四), 三.(一)), the days are the product's reading
#: of it (3 to confirm, 7 to send the 复学通知书); a bureau sets its own.
DEFAULT_RULES = (
    RuleDefault("survey", "开学排查（入学、变动、辍学及学籍变化）", "县实施方案 二.(三).2", "term", 10),
    RuleDefault("info_report", "报送《学生失学辍学信息报告》", "县实施方案 二.(三).2", "term", 15),
    RuleDefault("unregistered", "未报到学生登记造册并逐一核实原因", "谯城区通知 五", "term", 7),
    RuleDefault("work_plan", "制定控辍保学工作方案", "县实施方案 二.(三).3", "term", 50),
    # 一旦发生学生辍学或疑似辍学，……要立即核实情况
    RuleDefault("confirm", "核实疑似辍学学生，确认是否辍学", "枣庄市通知 三.(四)", "case_registered", 3),
    # 对于失学辍学儿童少年，……第一时间下达复学通知书
    RuleDefault("return_notice", "向监护人送达《义务教育复学通知书》", "枣庄市通知 三.(一)", "case_dropped", 7),
    # 经学校劝返三次以上仍不复学的，学校要及时上报区教体局和当地乡镇人民政府……开展联合劝返
    RuleDefault(
        "joint_persuasion", "劝返未果，报告教体局和属地政府开展联合劝返", "睢阳区通知 三", "failed_attempts", 3
    ),
    # 对仍不返校的学生，继续向其家长发出《限期复学通知书》；逾期不改的，配合司法部门依法处置
    RuleDefault(
        "deadline_notice", "复学通知书逾期未报到，发出《限期复学通知书》", "县实施方案 二.(三).3", "notice_expired", 1
    ),
    RuleDefault("judicial", "限期复学逾期仍未复学，提请司法部门依法督促", "县实施方案 二.(三).3", "notice_expired", 1),
    RuleDefault("persuasion", "劝返记录（每月不少于1次）", "县实施方案 二.(三).5", "case_monthly", 30, 7),
    RuleDefault("home_teaching", "送教上门（每周不少于1次）", "县实施方案 二.(三).4", "case_weekly", 7, 2),
    RuleDefault("weekly_report", "辍学周报告", "枣庄市通知 三.(四)(五)", "weekly", 3, 2),
    RuleDefault("monthly_report", "控辍保学动态管理月报表", "睢阳区通知 四", "monthly", 20, 19),
    RuleDefault("quarterly_review", "疑似辍学和辍学学生数据季度复核", "睢阳区通知 四", "quarterly", 0, 14),
)
#: Rules whose items a school clears by recording that it did it.
MANUAL = {"term", "weekly", "monthly", "quarterly"}
#: Who set a rule the bureau never changed.
DEFAULT_BY = "系统（通知默认）"

#: The reports by their names in the notices: Suiyang 四 (月报表), Zaozhuang (四) (辍学周报告), the
#: county plan 二.(三).2 (学生失学辍学信息报告).
REPORT_TITLES = {
    REPORT: "控辍保学动态管理月报",
    WEEKLY_REPORT: "控辍保学辍学周报告",
    INFO_REPORT: "学生失学辍学信息报告",
}
#: The deadline rule each report's due item stands for.
REPORT_RULES = {REPORT: "monthly_report", WEEKLY_REPORT: "weekly_report", INFO_REPORT: "info_report"}


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


def _default_row(bureau: Unit, d: RuleDefault) -> DeadlineRule:
    """A default as a rule not (yet) stored: what the bureau follows until it changes it."""
    return DeadlineRule(
        bureau_id=bureau.id,
        key=d.key,
        title=d.title,
        source="",
        anchor=d.anchor,
        days=d.days,
        lead_days=d.lead_days,
        active=True,
        updated_by=DEFAULT_BY,
    )


class Deadlines:
    def __init__(self, now: Callable[[], dt.datetime], today: Callable[[], dt.date], tz: zoneinfo.ZoneInfo) -> None:
        self.now = now
        self.today = today
        self.tz = tz

    # --- the rules and terms of a bureau -------------------------------------------------------

    def rules(self, session: Session, bureau: Unit) -> list[DeadlineRule]:
        """The bureau's rules in the notices' order: those it changed as stored, the notices'
        defaults for the others (not stored: reading the rules never writes). A rule without a
        source of the bureau's own carries the seed notice nearest its region as a reference."""
        have = {r.key: r for r in session.scalars(select(DeadlineRule).where(DeadlineRule.bureau_id == bureau.id))}
        for d in DEFAULT_RULES:
            if d.key not in have:
                have[d.key] = _default_row(bureau, d)
        region = self.basis(session, bureau).region
        for r in have.values():
            r.reference = reference(r.key, region)
        order = {d.key: i for i, d in enumerate(DEFAULT_RULES)}
        return sorted(have.values(), key=lambda r: order.get(r.key, 99))

    def basis(self, session: Session, bureau: Unit) -> BureauBasis:
        """The bureau's own basis (region, notice, target), or the defaults (not stored) until it
        names them."""
        found = session.scalar(select(BureauBasis).where(BureauBasis.bureau_id == bureau.id))
        if found is not None:
            return found
        return BureauBasis(bureau_id=bureau.id, region="", notice="", target=DEFAULT_TARGET, target_source="")

    def target_source(self, session: Session, bureau: Unit) -> str:
        """What the 巩固率 target rests on: the bureau's passage, or the marked reference."""
        basis = self.basis(session, bureau)
        return basis.target_source or reference("consolidation_target", basis.region)

    def set_basis(
        self,
        session: Session,
        scope: Scope,
        *,
        region: str,
        notice: str,
        target: float,
        target_source: str,
    ) -> BureauBasis:
        """The bureau names its region, its own notice and its 巩固率 target with its passage."""
        scope.require(Role.BUREAU, message="只有教体局工作人员可以设置本局的依据。")
        bureau = scope.bureau()
        if not 0.5 <= target <= 1:
            raise CaseInvalid("巩固率目标应在 50% 到 100% 之间。")
        basis = session.scalar(select(BureauBasis).where(BureauBasis.bureau_id == bureau.id))
        if basis is None:
            basis = BureauBasis(bureau_id=bureau.id, updated_by="")
            session.add(basis)
        before = {"region": basis.region, "notice": basis.notice, "target": basis.target, "source": basis.target_source}
        basis.region, basis.notice = region.strip()[:30], notice.strip()[:200]
        basis.target, basis.target_source = round(target, 4), target_source.strip()[:60]
        basis.updated_at, basis.updated_by = self.now(), scope.actor.label[:80]
        session.flush()
        record(
            session,
            scope.actor,
            "deadline.basis",
            "unit",
            bureau.id,
            self.now(),
            before=before,
            after={
                "region": basis.region,
                "notice": basis.notice,
                "target": basis.target,
                "source": basis.target_source,
            },
        )
        return basis

    def _stored(self, session: Session, rule: DeadlineRule) -> DeadlineRule:
        """The rule's row, written now if the bureau followed the default until this change."""
        if not inspect(rule).transient:
            return rule
        rule.updated_at = self.now()
        try:
            with session.begin_nested():
                session.add(rule)
        except IntegrityError:  # another request stored it first: change that one
            stored = session.scalar(
                select(DeadlineRule).where(DeadlineRule.bureau_id == rule.bureau_id, DeadlineRule.key == rule.key)
            )
            assert stored is not None
            return stored
        return rule

    def set_rule(
        self,
        session: Session,
        scope: Scope,
        key: str,
        *,
        days: int,
        lead_days: int,
        active: bool,
        source: str | None = None,
    ) -> DeadlineRule:
        """A bureau changes a rule's day, and names the passage of its own notice it rests on
        (``source``; None keeps the one named before)."""
        scope.require(Role.BUREAU, message="只有教体局工作人员可以修改期限规则。")
        bureau = scope.bureau()
        rule = next((r for r in self.rules(session, bureau) if r.key == key), None)
        if rule is None:
            raise NotFoundForUser("没有这条期限规则。")
        low, high = DAY_LIMITS.get(rule.anchor, (0, 200))
        if not low <= days <= high:
            raise CaseInvalid(f"「{rule.title}」的{ANCHORS[rule.anchor]}应在 {low} 到 {high} 之间。")
        if not 0 <= lead_days <= 60:
            raise CaseInvalid("提前显示的天数应在 0 到 60 之间。")
        if (
            source is not None
            and source.strip() in SEED_TEXTS
            and not source.strip().startswith(self._own_short(bureau))
        ):
            raise CaseInvalid(
                f"「{source.strip()}」是其他地区的文件，不能作为本局的依据。请填写本局文件的名称和条款，例如 本局通知 二.(一)。"
            )
        rule = self._stored(session, rule)
        before = {"days": rule.days, "lead_days": rule.lead_days, "active": rule.active, "source": rule.source}
        rule.days, rule.lead_days, rule.active = days, lead_days, active
        if source is not None:
            rule.source = source.strip()[:60]
        rule.updated_at = self.now()
        rule.updated_by = scope.actor.label[:80]
        session.flush()
        record(
            session,
            scope.actor,
            "deadline.rule",
            "deadline_rule",
            rule.id,
            self.now(),
            key=key,
            before=before,
            after={"days": days, "lead_days": lead_days, "active": active, "source": rule.source},
        )
        return rule

    @staticmethod
    def _own_short(bureau: Unit) -> str:
        """The seed notice that is this bureau's own, if it issued one of them (the demo's 历城区)."""
        return next((n.short for n in SEED_NOTICES.values() if n.issuer == bureau.name), "\0")

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

    def due(self, session: Session, scope: Scope, today: dt.date | None = None) -> list[DueItem]:
        """What the user's units owe: a school sees each of its items from the day it applies; an
        office and the bureau see their schools' case steps and reports the same way, and the
        term, periodic and record items once overdue."""
        today = today or self.today()
        shown, ahead = self._items(session, scope.units, today)
        if scope.unit.type != UnitType.SCHOOL:
            ahead = [i for i in ahead if i.overdue]
        return sorted(shown + ahead, key=lambda i: (not i.overdue, i.due, i.school, i.title))

    def items(self, session: Session, unit_ids: set[int], today: dt.date | None = None) -> list[DueItem]:
        """Every item due for these schools, overdue or not (the district figures count them)."""
        today = today or self.today()
        shown, ahead = self._items(session, unit_ids, today)
        return sorted(shown + ahead, key=lambda i: (not i.overdue, i.due, i.school, i.title))

    def case_items(self, session: Session, case: Case, today: dt.date | None = None) -> list[DueItem]:
        """The steps one case is due for (its page)."""
        rules = {r.key: r for r in self.rules(session, bureau_of(case.school)) if r.active}
        return self._case_steps(session, case, rules, today or self.today())

    def _items(self, session: Session, unit_ids: set[int], today: dt.date) -> tuple[list[DueItem], list[DueItem]]:
        """(the case steps and the campaigns' reports, the items a school is shown ahead of time)."""
        schools = list(session.scalars(select(Unit).where(Unit.id.in_(unit_ids), Unit.type == UnitType.SCHOOL)))
        by_bureau: dict[int, list[Unit]] = {}
        bureaus: dict[int, Unit] = {}
        for school in schools:
            b = bureau_of(school)
            bureaus[b.id] = b
            by_bureau.setdefault(b.id, []).append(school)
        rules = {bid: {r.key: r for r in self.rules(session, bureau) if r.active} for bid, bureau in bureaus.items()}
        bureau_of_school = {s.id: bid for bid, members in by_bureau.items() for s in members}
        shown: list[DueItem] = []
        open_cases = session.scalars(
            select(Case).where(
                Case.school_id.in_(list(bureau_of_school)), Case.status.in_([s.value for s in OPEN_STATUSES])
            )
        )
        for case in open_cases:
            shown += self._case_steps(session, case, rules[bureau_of_school[case.school_id]], today)
        shown += self._reports(session, unit_ids, today)
        ahead: list[DueItem] = []
        for bid, members in by_bureau.items():
            ahead += self._rule_items(session, bureaus[bid], members, rules[bid], today)
        return shown, ahead

    def _case_steps(
        self, session: Session, case: Case, rules: dict[str, DeadlineRule], today: dt.date
    ) -> list[DueItem]:
        """confirm, return_notice, joint_persuasion, deadline_notice and judicial, under the rules of
        the case's bureau (a rule turned off gives no item)."""
        if CaseStatus(case.status) not in OPEN_STATUSES:
            return []
        school = case.school
        items: list[DueItem] = []

        def item(key: str, title: str, due: dt.date) -> None:
            items.append(
                DueItem(
                    key,
                    title,
                    due,
                    today > due,
                    school.id,
                    school.name,
                    case.id,
                    case.student_name,
                    source=rules[key].cited,
                )
            )

        if (rule := rules.get("joint_persuasion")) is not None:
            failed = [a for a in case.attempts if not a.succeeded and a.method != JOINT]
            joint = [a for a in case.attempts if a.method == JOINT]
            if len(failed) >= rule.days and not any(j.date >= failed[rule.days - 1].date for j in joint):
                item(
                    rule.key,
                    f"已劝返 {len(failed)} 次仍未复学，应报告教体局和属地政府开展联合劝返",
                    failed[rule.days - 1].date,
                )
        registered = case.created_at.astimezone(self.tz).date()
        if case.status == CaseStatus.SUSPECTED:
            if (rule := rules.get("confirm")) is not None:
                item(rule.key, "疑似辍学，应核实后确认是否辍学", registered + dt.timedelta(days=rule.days))
            return items
        returns = sent_notices(session, case, "return_notice")
        deadlines = sent_notices(session, case, "deadline_return_notice")
        if not returns:
            if (rule := rules.get("return_notice")) is not None:
                item(
                    rule.key,
                    "应向监护人送达《义务教育复学通知书》",
                    (case.dropout_date or registered) + dt.timedelta(days=rule.days),
                )
        elif (rule := rules.get("deadline_notice")) is not None:
            last = returns[-1]
            report_by = dt.date.fromisoformat(str(last.fields["report_by"]))
            answered = any(d.issued_at >= last.issued_at for d in deadlines)
            if today > report_by and not answered:
                item(
                    rule.key,
                    f"复学通知书的报到期限（{report_by.month}月{report_by.day}日）已过，应发出《限期复学通知书》",
                    report_by + dt.timedelta(days=rule.days),
                )
        if deadlines and (rule := rules.get("judicial")) is not None:
            report_by = dt.date.fromisoformat(str(deadlines[-1].fields["report_by"]))
            if today > report_by:
                item(rule.key, "限期复学逾期仍未复学，应提请司法部门依法督促", report_by + dt.timedelta(days=rule.days))
        return items

    def _reports(self, session: Session, unit_ids: set[int], today: dt.date) -> list[DueItem]:
        """The 月报, 周报 and 信息报告 of each unit, from the recurring report campaigns' open
        assignments, due by the campaign's deadline."""
        items = []
        reports = session.scalars(
            select(Assignment)
            .join(Campaign)
            .where(
                Assignment.unit_id.in_(unit_ids),
                Campaign.recurrence.is_not(None),
                Assignment.state.in_([AssignmentState.ISSUED, AssignmentState.VIEWED]),
            )
        )
        for a in reports:
            due = a.deadline.astimezone(self.tz).date()
            title, name = REPORT_TITLES.get(a.kind, "报表"), a.campaign.name
            # the report named once: the campaign's name when it says what the report is, the
            # report's title when the campaign's name is part of it, both when they differ
            what = name if title in name else title if name in title else f"{title}（{name}）"
            items.append(
                DueItem(
                    REPORT_RULES.get(a.kind, "monthly_report"),
                    f"{what}（{period_label(a.period)}）",
                    due,
                    today > due,
                    a.unit_id,
                    a.unit.name,
                )
            )
        return items

    def _rule_items(
        self, session: Session, bureau: Unit, schools: list[Unit], rules: dict[str, DeadlineRule], today: dt.date
    ) -> list[DueItem]:
        """The term, periodic and record items of a bureau's schools, once a term has started."""
        terms = self.terms(session, bureau)
        term = next((t for t in terms if t.starts_on <= today), None)
        first = min((t.starts_on for t in terms), default=None)
        if first is None or first > today:
            return []  # no term entered yet: nothing counts
        done = {
            (d.unit_id, d.rule_key, d.period)
            for d in session.scalars(select(RuleDone).where(RuleDone.unit_id.in_([s.id for s in schools])))
        }
        campaigns = {
            k
            for kinds in session.scalars(
                select(Campaign.kinds).where(Campaign.bureau_id == bureau.id, Campaign.recurrence.is_not(None))
            )
            for k in kinds
        }
        # A term entered after it began (a 开学日期 typed in mid-term) counts from the day it was
        # entered: its term duties get their days from then, and periods already due before then
        # are not owed through this list (nobody was reminded of them), so entering it never turns
        # a whole term's duties of every school 已逾期 at once.
        entered = min((max(t.starts_on, t.created_at.astimezone(self.tz).date()) for t in terms), default=first)
        items: list[DueItem] = []
        for rule in rules.values():
            if rule.anchor == "term":
                if term is None or (rule.key == "info_report" and INFO_REPORT in campaigns):
                    continue  # the term campaign's assignments say it (cleared by signing the report)
                counted_from = max(term.starts_on, term.created_at.astimezone(self.tz).date())
                due = counted_from + dt.timedelta(days=rule.days)
                period = term.starts_on.isoformat()
                for s in schools:
                    if (s.id, rule.key, period) not in done:
                        items.append(self._item(rule, s, due, today, period, f"（{term.name}）"))
            elif rule.anchor in ("weekly", "monthly", "quarterly"):
                if rule.anchor == "weekly" and WEEKLY_REPORT in campaigns:
                    continue  # the weekly campaign's assignments say it
                if rule.anchor == "monthly" and REPORT in campaigns:
                    continue
                periods = [p for p in self._periods(rule, today) if p[3] <= today and p[2] >= max(first, entered)]
                for s in schools:
                    # the latest overdue period of a rule and school stands for the earlier ones
                    # (counted in its title); the period still running is listed apart
                    owed = [p for p in periods if (s.id, rule.key, p[0]) not in done]
                    late = [p for p in owed if p[2] < today]
                    if late:
                        period, label, due, _ = late[-1]
                        earlier = f"（此前另有 {len(late) - 1} 期未完成）" if len(late) > 1 else ""
                        items.append(self._item(rule, s, due, today, period, label + earlier))
                    for period, label, due, _ in owed[len(late) :]:
                        items.append(self._item(rule, s, due, today, period, label))
            elif rule.anchor in ("case_monthly", "case_weekly"):
                items += self._case_records(session, rule, schools, today, first)
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
            source=rule.cited,
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

    def _case_records(
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
                    source=rule.cited,
                )
            )
        return items
