"""The 控辍保学动态管理月报表 (Suiyang 四), the 辍学周报告 (Zaozhuang 三.(四)(五)) and the 学生失学辍学信息报告
(county plan 二.(三).2) made from the data and signed through the monthly, the weekly and the term
campaign.

A school's report counts its own cases; an office's sums its schools' signed reports, the
bureau's view sums every school's (summed up the tree, never counted twice). The report of the
campaign period ``2027-10`` (due in October) counts September; the weekly report of the period
``2027-W41`` (due in that ISO week) counts the week before, Monday to Sunday; the 信息报告 of the
period ``2027-09-01`` (a term's start) counts the term's first 15 days, and lists who is 失学 or
辍学 at their end with the grade, key group, reason and whereabouts of each. Reviewing shows the figures;
signing issues them as a document certified with the unit's key and marks the period's
assignments (one per campaign asking for the report) as filed. A correction is a new signed
version, the previous one superseded, with the differences listed on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.scope import Scope
from service.archive.models import Document, DocumentStatus
from service.archive.service import Archive, RecordAs, mask_name
from service.campaigns.errors import AssignmentNotSignable
from service.campaigns.models import Assignment, AssignmentState
from service.campaigns.service import INFO_REPORT, REPORT, WEEKLY_REPORT, is_term_period
from service.cases.errors import CaseInvalid
from service.cases.models import STATUS_TITLES, Case, CaseStatus
from service.documents.pipeline import IssueRequest
from service.errors import NotFoundForUser
from service.ledgers.models import ChildEntry, ReportVersion
from service.units.models import Unit, UnitType
from service.units.service import visible_unit_ids

#: The month's figures, in the order the form prints them.
ROWS = (
    ("new_suspected", "新增疑似辍学（含失学）"),
    ("new_dropped", "新增辍学（核实确认）"),
    ("returned", "劝返复学"),
    ("written_off", "核销"),
    ("deferred", "延缓入学/休学"),
    ("attempts", "劝返次数"),
    ("open", "月末未销号个案"),
)
#: The 信息报告's figures: the 入学 of the year's 适龄儿童, who is 失学, 辍学 or 疑似辍学 at the end of
#: the term's first 15 days (the three add up to the open cases), and what happened since the start.
TERM_ROWS = (
    ("children", "适龄儿童应入学"),
    ("children_reported", "适龄儿童已报到入学"),
    ("children_missing", "适龄儿童未报到"),
    ("out_of_school", "失学（应入未入）"),
    ("dropped", "辍学（含劝返中）"),
    ("suspected", "疑似辍学"),
    ("open", "未销号个案合计"),
    ("new_suspected", "开学以来新增疑似辍学（含失学）"),
    ("new_dropped", "开学以来新增辍学（核实确认）"),
    ("returned", "开学以来劝返复学"),
    ("written_off", "开学以来核销"),
    ("deferred", "开学以来延缓入学/休学"),
    ("attempts", "开学以来劝返次数"),
)
NO_GROUP = "非重点群体"
NO_REASON = "原因未填写"
#: 开学后15日内 (county plan 二.(三).2): the days a term's 信息报告 counts; the deadline rule sets when
#: it is due.
TERM_DAYS = 15
BREAKDOWNS = (("grades", "年级"), ("groups", "重点群体"))
#: Signed reports this recent are checked against the data and flagged when it changed since.
CORRECTION_WINDOW = dt.timedelta(days=366)


@dataclass(frozen=True)
class PeriodKind:
    """What differs between the reports: the campaign's assignment kind, the document kind and its
    title, the words for the period, the figures and breakdowns it shows, and whether it lists the
    children themselves."""

    assignment: str
    document: str
    title: str
    #: The report's name in a file name: 月报表, 周报告, 信息报告.
    short: str
    #: The end of the period, for the open cases: 月末, 周末, 报告时.
    end: str
    rows: tuple[tuple[str, str], ...]
    breakdowns: tuple[tuple[str, str], ...] = BREAKDOWNS
    lists_children: bool = False


def _calendar(title: str, short: str, end: str, assignment: str, document: str) -> PeriodKind:
    return PeriodKind(assignment, document, title, short, end, (*ROWS[:-1], ("open", f"{end}未销号个案")))


MONTHLY = _calendar("控辍保学动态管理月报表", "月报表", "月末", REPORT, "monthly_report")
WEEKLY = _calendar("辍学周报告", "周报告", "周末", WEEKLY_REPORT, "weekly_report")
TERM = PeriodKind(
    INFO_REPORT,
    "info_report",
    "学生失学辍学信息报告",
    "信息报告",
    "报告时",
    TERM_ROWS,
    (*BREAKDOWNS, ("reasons", "辍学原因")),
    lists_children=True,
)
PERIOD_KINDS = {k.assignment: k for k in (MONTHLY, WEEKLY, TERM)}


def period_kind(period: str) -> PeriodKind:
    """``2027-W41`` is a week's, ``2027-10`` a month's, ``2027-09-01`` (a term's start) a term's."""
    if is_term_period(period):
        return TERM
    return WEEKLY if "-W" in period else MONTHLY


def covered(period: str) -> tuple[dt.date, dt.date]:
    """The days a period's report counts: the calendar month before the period's month, the ISO
    week (Monday to Sunday) before the period's week, or a term's first 15 days. ValueError for a
    malformed period."""
    if is_term_period(period):
        start = dt.date.fromisoformat(period)
        return start, start + dt.timedelta(days=TERM_DAYS - 1)
    year, rest = period.split("-")
    if rest.startswith("W"):
        monday = dt.date.fromisocalendar(int(year), int(rest[1:]), 1)
        return monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)
    first = dt.date(int(year), int(rest), 1)
    end = first - dt.timedelta(days=1)
    return end.replace(day=1), end


def period_text(period: str) -> str:
    """``2027年10月报送``, ``2027年第41周报送``, ``2027年9月1日开学后报送``."""
    if is_term_period(period):
        start = dt.date.fromisoformat(period)
        return f"{start.year}年{start.month}月{start.day}日开学后报送"
    year, rest = period.split("-")
    return f"{int(year)}年第{int(rest[1:])}周报送" if rest.startswith("W") else f"{int(year)}年{int(rest)}月报送"


def empty(kind: PeriodKind | None = None) -> dict[str, Any]:
    """A kind's figures, all zero (the monthly report's by default)."""
    kind = kind or MONTHLY
    out: dict[str, Any] = {k: 0 for k, _ in kind.rows}
    out.update({k: {} for k, _ in kind.breakdowns})
    if kind.lists_children:
        out["students"] = []
    return out


def add(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add a unit's figures to a total made by :func:`empty` (its keys say what is summed)."""
    for k, v in total.items():
        if isinstance(v, dict):
            for name, n in part.get(k, {}).items():
                v[name] = v.get(name, 0) + int(n)
        elif isinstance(v, list):
            v.extend(part.get(k, []))
        else:
            total[k] = v + int(part.get(k, 0))
    return total


def _child(student: dict[str, Any]) -> str:
    return f"{student['school']}{student['name']}（{student['grade']}）"


def differences(old: dict[str, Any], new: dict[str, Any], kind: PeriodKind | None = None) -> list[str]:
    """What a correction changed, in words: 劝返复学 1→2, 年级「七年级」1→2, 新列入 …, 不再列入 …."""
    kind = kind or MONTHLY
    out = []
    for k, title in kind.rows:
        if old.get(k, 0) != new.get(k, 0):
            out.append(f"{title} {old.get(k, 0)}→{new.get(k, 0)}")
    for key, title in kind.breakdowns:
        for name in sorted(set(old.get(key, {})) | set(new.get(key, {}))):
            a, b = old.get(key, {}).get(name, 0), new.get(key, {}).get(name, 0)
            if a != b:
                out.append(f"{title}「{name}」{a}→{b}")
    if kind.lists_children:
        before = {_child(x): x for x in old.get("students", [])}
        after = {_child(x): x for x in new.get("students", [])}
        out += [f"新列入 {c}" for c in sorted(set(after) - set(before))]
        out += [f"不再列入 {c}" for c in sorted(set(before) - set(after))]
        for c in sorted(set(before) & set(after)):
            if before[c] != after[c]:
                out.append(
                    f"{c} {before[c]['category']}·{before[c]['reason']}→{after[c]['category']}·{after[c]['reason']}"
                )
    return out


def digest(figures: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(figures, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass
class Draft:
    unit: Unit
    period: str
    start: dt.date
    end: dt.date
    figures: dict[str, Any]
    #: Units summed (an office's schools) and those whose signed report is missing.
    parts: list[str]
    missing: list[str]
    previous: ReportVersion | None
    #: Behind each figure: a school's children (masked names, class, the day of the event), or an
    #: office's schools with their counts; what the signer checks before signing.
    behind: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def kind(self) -> PeriodKind:
        return period_kind(self.period)

    @property
    def changes(self) -> list[str]:
        return differences(self.previous.figures, self.figures, self.kind) if self.previous else []

    @property
    def digest(self) -> str:
        who = {
            k: [(c.get("case_id"), c.get("school"), c.get("day"), c.get("count")) for c in v]
            for k, v in self.behind.items()
        }
        return digest({"figures": self.figures, "parts": self.parts, "behind": who})


class Reports:
    """The monthly, the weekly and the term reports: the same counting, review, signing and
    corrections; a period's kind (:func:`period_kind`) says which."""

    def __init__(self, archive: Archive, tz: zoneinfo.ZoneInfo, now: Callable[[], dt.datetime]) -> None:
        self.archive = archive
        self.tz = tz
        self.now = now

    def today(self) -> dt.date:
        return self.now().astimezone(self.tz).date()

    # --- counting ------------------------------------------------------------------------------

    def _utc(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.tz).astimezone(dt.UTC)

    def _cases(self, session: Session, schools: list[int]) -> list[Case]:
        return list(session.scalars(select(Case).where(Case.school_id.in_(schools)).order_by(Case.school_id, Case.id)))

    def count(self, session: Session, schools: Iterable[int], start: dt.date, end: dt.date) -> dict[str, Any]:
        """A set of schools' figures for the days ``start``..``end`` (Beijing time)."""
        return self.tally(session, schools, start, end)[0]

    def tally(
        self, session: Session, schools: Iterable[int], start: dt.date, end: dt.date
    ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """A set of schools' figures for the days ``start``..``end``, and the children behind each
        figure. Counted by the days of the events as people entered them (疑似辍学 from, 辍学 from,
        each 劝返, 复学, 核销, 延缓), not by the day they were typed in: a case entered late lands in
        the period it belongs to."""
        ids = list(schools)
        out = empty()
        behind: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in ROWS}
        if not ids:
            return out, behind
        grades: Counter[str] = Counter()
        groups: Counter[str] = Counter()
        for case in self._cases(session, ids):

            def child(day: dt.date, what: str = "", case: Case = case) -> dict[str, Any]:
                return {
                    "case_id": case.id,
                    "school": case.school.name,
                    "name": mask_name(case.student_name),
                    "grade_class": case.grade_class,
                    "day": day.isoformat(),
                    "what": what,
                }

            if case.suspected_on is not None and start <= case.suspected_on <= end:
                out["new_suspected"] += 1
                behind["new_suspected"].append(child(case.suspected_on))
            if case.dropped_on is not None and start <= case.dropped_on <= end:
                out["new_dropped"] += 1
                behind["new_dropped"].append(child(case.dropped_on))
            closure = case.closure
            if closure is not None and start <= closure.date <= end:
                out[closure.kind] += 1
                behind[closure.kind].append(child(closure.date))
            for a in case.attempts:
                if start <= a.date <= end:
                    out["attempts"] += 1
                    behind["attempts"].append(child(a.date, a.method))
            if case.open_on(end):
                out["open"] += 1
                behind["open"].append(child(case.listed_on, STATUS_TITLES[case.status_on(end)]))
                grades[case.grade] += 1
                for g in case.key_groups or [NO_GROUP]:
                    groups[g] += 1
        out["grades"], out["groups"] = dict(grades), dict(groups)
        return out, behind

    def count_term(self, session: Session, schools: Iterable[int], start: dt.date, end: dt.date) -> dict[str, Any]:
        """The 信息报告's figures for a set of schools: the counts of :meth:`tally` over the term's
        first days, the 入学 of the year's 适龄儿童 by ``end``, and each child 失学, 辍学 or 疑似辍学
        at ``end`` (open then, whatever became of the case since), with the reason and whereabouts."""
        return self.tally_term(session, schools, start, end)[0]

    def tally_term(
        self, session: Session, schools: Iterable[int], start: dt.date, end: dt.date
    ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        ids = list(schools)
        base, behind = self.tally(session, ids, start, end)
        out = empty(TERM)
        for k in out:
            if k in base:
                out[k] = base[k]
        if not ids:
            return out, behind
        # the intake of the school year the term belongs to (an autumn term starts it)
        year = start.year if start.month >= 8 else start.year - 1
        behind["children_missing"] = []
        for entry in session.scalars(select(ChildEntry).where(ChildEntry.school_id.in_(ids), ChildEntry.year == year)):
            out["children"] += 1
            if entry.reported_on is not None and entry.reported_on <= end:
                out["children_reported"] += 1
            else:
                behind["children_missing"].append(
                    {"school": entry.school.name, "name": mask_name(entry.student_name), "day": "", "what": "未报到"}
                )
        out["children_missing"] = out["children"] - out["children_reported"]
        reasons: Counter[str] = Counter()
        for key in ("out_of_school", "dropped", "suspected"):
            behind[key] = []
        for case in self._cases(session, ids):
            if not case.open_on(end):
                continue
            if case.never_enrolled:
                category, key = "失学", "out_of_school"
            elif case.status_on(end) == CaseStatus.SUSPECTED:
                category, key = STATUS_TITLES[CaseStatus.SUSPECTED], "suspected"
            else:
                category, key = STATUS_TITLES[CaseStatus.DROPPED], "dropped"
            out[key] += 1
            behind[key].append(
                {
                    "case_id": case.id,
                    "school": case.school.name,
                    "name": mask_name(case.student_name),
                    "grade_class": case.grade_class,
                    "day": case.listed_on.isoformat(),
                    "what": category,
                }
            )
            reason = case.dropout_reason or NO_REASON
            reasons[reason] += 1
            out["students"].append(
                {
                    "school": case.school.name,
                    "name": case.student_name,
                    "grade": case.grade_class,
                    "category": category,
                    "groups": "、".join(case.key_groups or []) or NO_GROUP,
                    "reason": reason,
                    "whereabouts": (case.reason_detail or "").strip()[:60] or "未填写",
                }
            )
        out["reasons"] = dict(reasons)
        return out, behind

    # --- versions ------------------------------------------------------------------------------

    def latest(self, session: Session, unit_id: int, period: str) -> ReportVersion | None:
        return session.scalar(
            select(ReportVersion)
            .where(ReportVersion.unit_id == unit_id, ReportVersion.period == period)
            .order_by(ReportVersion.version.desc())
            .limit(1)
        )

    def versions(self, session: Session, unit_id: int, period: str) -> list[ReportVersion]:
        return list(
            session.scalars(
                select(ReportVersion)
                .where(ReportVersion.unit_id == unit_id, ReportVersion.period == period)
                .order_by(ReportVersion.version)
            )
        )

    def _children(self, session: Session, unit: Unit) -> list[Unit]:
        """The units whose signed reports a unit's report sums: an office's schools; for the
        bureau, every school of the district."""
        ids = visible_unit_ids(session, unit) - {unit.id}
        return list(
            session.scalars(select(Unit).where(Unit.id.in_(ids), Unit.type == UnitType.SCHOOL).order_by(Unit.id))
        )

    def draft(self, session: Session, unit: Unit, period: str) -> Draft:
        """The report as it would be signed now: a school's from its data, an office's (and the
        bureau's) as the sum of its schools' latest signed versions."""
        start, end = covered(period)
        kind = period_kind(period)
        previous = self.latest(session, unit.id, period)
        if unit.type == UnitType.SCHOOL:
            tallying = self.tally_term if kind.lists_children else self.tally
            figures, behind = tallying(session, [unit.id], start, end)
            return Draft(unit, period, start, end, figures, [], [], previous, behind)
        total, parts, missing = empty(kind), [], []
        by_school: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in kind.rows}
        for school in self._children(session, unit):
            signed = self.latest(session, school.id, period)
            if signed is None:
                missing.append(school.name)
            else:
                parts.append(school.name)
                add(total, signed.figures)
                for k in by_school:
                    if n := int(signed.figures.get(k, 0)):
                        by_school[k].append({"school": school.name, "count": n})
        return Draft(unit, period, start, end, total, parts, missing, previous, by_school)

    def draft_of(self, session: Session, unit: Unit, kind: PeriodKind, period: str) -> Draft:
        """:meth:`draft` for a period named by a user: one of the kind's, or not found."""
        try:
            covered(period)
        except ValueError:
            raise NotFoundForUser("没有这一期。") from None
        if period_kind(period) != kind:
            raise NotFoundForUser("没有这一期。")
        return self.draft(session, unit, period)

    def filed(self, session: Session, unit: Unit, kind: PeriodKind) -> list[tuple[Assignment, ReportVersion | None]]:
        """A unit's periods of a kind, newest first, each with its latest signed version."""
        periods = session.scalars(
            select(Assignment)
            .where(Assignment.unit_id == unit.id, Assignment.kind == kind.assignment, Assignment.period != "")
            .order_by(Assignment.deadline.desc(), Assignment.id.desc())
        )
        return [(a, self.latest(session, unit.id, a.period)) for a in periods]

    def corrections(self, session: Session, school: Unit) -> list[tuple[Assignment, list[str]]]:
        """A school's reports signed in the last year whose figures the data no longer gives (a
        case entered late, a date corrected): each period's assignment with what changed. They are
        flagged for a new signed version, never rewritten."""
        since = self.now() - CORRECTION_WINDOW
        latest: dict[str, ReportVersion] = {}
        for v in session.scalars(
            select(ReportVersion)
            .where(ReportVersion.unit_id == school.id, ReportVersion.created_at >= since)
            .order_by(ReportVersion.period, ReportVersion.version)
        ):
            latest[v.period] = v
        out = []
        for period, version in sorted(latest.items()):
            if version.version != (self.latest(session, school.id, period) or version).version:
                continue  # a later version signed before the window: not this one's to flag
            draft = self.draft(session, school, period)
            if draft.changes:
                assignment = session.get(Assignment, version.assignment_id) if version.assignment_id else None
                if assignment is not None:
                    out.append((assignment, draft.changes))
        return out

    def _assignment(self, scope: Scope, assignment: Assignment) -> PeriodKind:
        kind = PERIOD_KINDS.get(assignment.kind, MONTHLY)
        scope.require(Role.SIGNER, Role.OFFICE, message=f"只有本单位负责人或教育办工作人员可以签章报送{kind.short}。")
        if assignment.unit_id != scope.unit.id:
            raise scope.refuse(f"只能签章报送本单位的{kind.short}。")
        if assignment.kind not in PERIOD_KINDS or not assignment.period or period_kind(assignment.period) != kind:
            raise AssignmentNotSignable("这不是控辍保学动态管理月报表、辍学周报告或学生失学辍学信息报告的报送任务。")
        return kind

    def review(self, session: Session, scope: Scope, assignment: Assignment) -> Draft:
        self._assignment(scope, assignment)
        return self.draft(session, assignment.unit, assignment.period)

    def sign(self, session: Session, scope: Scope, assignment: Assignment, reviewed: str) -> ReportVersion:
        """Sign the figures the user reviewed (``reviewed`` is their digest) as the next version of
        the unit's report for the period, certified with the unit's key; the period's assignment
        counts as filed. Refused when the data changed since the review, and for a correction
        that changes nothing."""
        kind = self._assignment(scope, assignment)
        unit = assignment.unit
        # office staff prepare and review the office's report; its head (or whom the head delegated
        # to) puts the office's seal on it
        scope.require_signer_for(unit)
        draft = self.draft(session, unit, assignment.period)
        if reviewed != draft.digest:
            raise CaseInvalid(f"核对之后数据有变化，请重新核对{kind.short}后再签章。")
        if draft.previous is not None and not draft.changes and draft.previous.figures.get("parts") == draft.parts:
            raise CaseInvalid("与已签章的版本相同，无需更正。")
        version = (draft.previous.version if draft.previous else 0) + 1
        filled_by = scope.user.display_name if scope.user is not None else (unit.head_name or unit.name)
        fields = {
            "unit_name": unit.name,
            "period_label": period_text(assignment.period),
            "covers": f"{draft.start.year}年{draft.start.month}月{draft.start.day}日至"
            f"{draft.end.year}年{draft.end.month}月{draft.end.day}日",
            "version": version,
            "rows": [{"item": title, "count": draft.figures[k]} for k, title in kind.rows],
            **{
                key: [{"item": g, "count": n} for g, n in sorted(draft.figures[key].items())]
                or [{"item": "无", "count": 0}]
                for key, _ in kind.breakdowns
            },
            "parts": draft.parts,
            "missing": draft.missing,
            "changes": draft.changes,
            "filled_by": filled_by[:30],
            "fill_date": self.today().isoformat(),
        }
        if kind.lists_children:
            fields["students"] = draft.figures["students"]
        self.archive.engine.pki.ensure_unit(unit.cert_key, unit.name)
        doc, _ = self.archive.issue(
            session,
            IssueRequest(kind.document, fields, issuer_key=unit.cert_key),
            RecordAs(issuer=unit),
            scope.actor,
            action="report.sign",
            assignment=assignment.id,
            period=assignment.period,
            version=version,
        )
        row = ReportVersion(
            unit_id=unit.id,
            period=assignment.period,
            version=version,
            assignment_id=assignment.id,
            figures={**draft.figures, "parts": draft.parts, "missing": draft.missing},
            document_id=doc.id,
            actor=scope.actor.label[:80],
            created_at=self.now(),
        )
        session.add(row)
        if draft.previous is not None:
            old = session.get(Document, draft.previous.document_id)
            if old is not None and old.status == DocumentStatus.VALID:
                old.status = DocumentStatus.SUPERSEDED
                old.superseded_by_id = doc.id
        now = self.now()
        # The unit's report of a period is one, whichever campaign asks for it: two campaigns of the
        # same kind (a term campaign made before the 开学日期 and another after) are both filed by
        # it, or the other one's task would stay 待报送 with nothing left to sign.
        for same in session.scalars(
            select(Assignment).where(
                Assignment.unit_id == unit.id,
                Assignment.kind == assignment.kind,
                Assignment.period == assignment.period,
            )
        ):
            if same.state in (AssignmentState.ISSUED, AssignmentState.VIEWED):
                same.state = AssignmentState.SIGNED
                same.signed_at = now
                same.late = now > same.deadline
                same.viewed_at = same.viewed_at or now
            # The signed version is found through ReportVersion; the assignment's document_id
            # stays empty (it names a document to sign, which a report is not).
            same.report_name = f"{unit.name}{kind.short}第{version}版.pdf"[:128]
        session.flush()
        return row
