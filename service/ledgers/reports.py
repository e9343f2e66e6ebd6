"""The 控辍保学动态管理月报表 (Suiyang 四) and the 辍学周报告 (Zaozhuang 三.(四)(五)) made from the data and
signed through the monthly and the weekly campaign.

A school's report counts its own cases; an office's sums its schools' signed reports, the
bureau's view sums every school's (summed up the tree, never counted twice). The report of the
campaign period ``2027-10`` (due in October) counts September; the weekly report of the period
``2027-W41`` (due in that ISO week) counts the week before, Monday to Sunday. Reviewing shows the figures;
signing issues them as a document certified with the unit's key and marks the period's
assignment as filed. A correction is a new signed version, the previous one superseded, with the
differences listed on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.scope import Scope
from service.archive.models import Document, DocumentStatus
from service.archive.service import Archive, RecordAs
from service.audit.models import AuditEvent
from service.campaigns.errors import AssignmentNotSignable
from service.campaigns.models import Assignment, AssignmentState
from service.campaigns.service import REPORT, WEEKLY_REPORT
from service.cases.errors import CaseInvalid
from service.cases.models import Attempt, Case, CaseClosure, CaseStatus
from service.documents.pipeline import IssueRequest
from service.ledgers.models import ReportVersion
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
NO_GROUP = "非重点群体"


@dataclass(frozen=True)
class PeriodKind:
    """What differs between the monthly and the weekly report: the campaign's assignment kind, the
    document kind and its title, and the words for the period."""

    assignment: str
    document: str
    title: str
    #: The report's name in a file name: 月报表, 周报告.
    short: str
    #: The end of the period, for the open cases: 月末, 周末.
    end: str

    @property
    def rows(self) -> tuple[tuple[str, str], ...]:
        return (*ROWS[:-1], ("open", f"{self.end}未销号个案"))


MONTHLY = PeriodKind(REPORT, "monthly_report", "控辍保学动态管理月报表", "月报表", "月末")
WEEKLY = PeriodKind(WEEKLY_REPORT, "weekly_report", "辍学周报告", "周报告", "周末")
PERIOD_KINDS = {k.assignment: k for k in (MONTHLY, WEEKLY)}


def period_kind(period: str) -> PeriodKind:
    """``2027-W41`` is a week's, ``2027-10`` a month's."""
    return WEEKLY if "-W" in period else MONTHLY


def covered(period: str) -> tuple[dt.date, dt.date]:
    """The days a period's report counts: the calendar month before the period's month, or the
    ISO week (Monday to Sunday) before the period's week. ValueError for a malformed period."""
    year, rest = period.split("-")
    if rest.startswith("W"):
        monday = dt.date.fromisocalendar(int(year), int(rest[1:]), 1)
        return monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)
    first = dt.date(int(year), int(rest), 1)
    end = first - dt.timedelta(days=1)
    return end.replace(day=1), end


def period_text(period: str) -> str:
    """``2027年10月报送``, ``2027年第41周报送``."""
    year, rest = period.split("-")
    return f"{int(year)}年第{int(rest[1:])}周报送" if rest.startswith("W") else f"{int(year)}年{int(rest)}月报送"


def empty() -> dict[str, Any]:
    return {**{k: 0 for k, _ in ROWS}, "grades": {}, "groups": {}}


def add(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    for k, _ in ROWS:
        total[k] += int(part.get(k, 0))
    for key in ("grades", "groups"):
        for name, n in part.get(key, {}).items():
            total[key][name] = total[key].get(name, 0) + int(n)
    return total


def differences(old: dict[str, Any], new: dict[str, Any], rows: tuple[tuple[str, str], ...] = ROWS) -> list[str]:
    """What a correction changed, in words: 劝返复学 1→2."""
    out = []
    for k, title in rows:
        if old.get(k, 0) != new.get(k, 0):
            out.append(f"{title} {old.get(k, 0)}→{new.get(k, 0)}")
    for key, title in (("grades", "年级"), ("groups", "重点群体")):
        for name in sorted(set(old.get(key, {})) | set(new.get(key, {}))):
            a, b = old.get(key, {}).get(name, 0), new.get(key, {}).get(name, 0)
            if a != b:
                out.append(f"{title}「{name}」{a}→{b}")
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

    @property
    def kind(self) -> PeriodKind:
        return period_kind(self.period)

    @property
    def changes(self) -> list[str]:
        return differences(self.previous.figures, self.figures, self.kind.rows) if self.previous else []

    @property
    def digest(self) -> str:
        return digest({"figures": self.figures, "parts": self.parts})


class Reports:
    """The monthly and the weekly reports: the same counting, review, signing and corrections; a
    period's kind (:func:`period_kind`) says which."""

    def __init__(self, archive: Archive, tz: zoneinfo.ZoneInfo, now: Callable[[], dt.datetime]) -> None:
        self.archive = archive
        self.tz = tz
        self.now = now

    def today(self) -> dt.date:
        return self.now().astimezone(self.tz).date()

    # --- counting ------------------------------------------------------------------------------

    def _utc(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.tz).astimezone(dt.UTC)

    def count(self, session: Session, schools: Iterable[int], start: dt.date, end: dt.date) -> dict[str, Any]:
        """A set of schools' figures for the days ``start``..``end`` (Beijing time), from the cases,
        their recorded history (audit log), 销号 acts and 劝返 attempts."""
        ids = list(schools)
        out = empty()
        if not ids:
            return out
        case_ids = {str(i) for i in session.scalars(select(Case.id).where(Case.school_id.in_(ids)))}
        lo, hi = self._utc(start), self._utc(end + dt.timedelta(days=1))
        events = session.scalars(
            select(AuditEvent).where(
                AuditEvent.object_type == "case",
                AuditEvent.action.in_(["case.create", "case.status"]),
                AuditEvent.at >= lo,
                AuditEvent.at < hi,
            )
        )
        for e in events:
            if e.object_id not in case_ids:
                continue
            d = e.detail or {}
            if e.action == "case.create":
                key = "new_suspected" if d.get("status") == CaseStatus.SUSPECTED else "new_dropped"
                out[key] += 1
            elif d.get("from") == CaseStatus.SUSPECTED and d.get("to") == CaseStatus.DROPPED:
                out["new_dropped"] += 1
        closures = session.execute(
            select(CaseClosure.kind, func.count())
            .join(Case, Case.id == CaseClosure.case_id)
            .where(Case.school_id.in_(ids), CaseClosure.date >= start, CaseClosure.date <= end)
            .group_by(CaseClosure.kind)
        ).all()
        for kind, n in closures:
            out[kind] += n
        out["attempts"] = int(
            session.scalar(
                select(func.count())
                .select_from(Attempt)
                .join(Case, Case.id == Attempt.case_id)
                .where(Case.school_id.in_(ids), Attempt.date >= start, Attempt.date <= end)
            )
            or 0
        )
        grades: Counter[str] = Counter()
        groups: Counter[str] = Counter()
        for case in session.scalars(select(Case).where(Case.school_id.in_(ids), Case.created_at < hi)):
            if case.closure is not None and case.closure.date <= end:
                continue
            out["open"] += 1
            grades[case.grade] += 1
            for g in case.key_groups or [NO_GROUP]:
                groups[g] += 1
        out["grades"], out["groups"] = dict(grades), dict(groups)
        return out

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
        previous = self.latest(session, unit.id, period)
        if unit.type == UnitType.SCHOOL:
            return Draft(unit, period, start, end, self.count(session, [unit.id], start, end), [], [], previous)
        total, parts, missing = empty(), [], []
        for school in self._children(session, unit):
            signed = self.latest(session, school.id, period)
            if signed is None:
                missing.append(school.name)
            else:
                parts.append(school.name)
                add(total, signed.figures)
        return Draft(unit, period, start, end, total, parts, missing, previous)

    def _assignment(self, scope: Scope, assignment: Assignment) -> PeriodKind:
        kind = PERIOD_KINDS.get(assignment.kind, MONTHLY)
        scope.require(Role.SIGNER, Role.OFFICE, message=f"只有本单位负责人或教育办工作人员可以签章报送{kind.short}。")
        if assignment.unit_id != scope.unit.id:
            raise scope.refuse(f"只能签章报送本单位的{kind.short}。")
        if assignment.kind not in PERIOD_KINDS or not assignment.period or period_kind(assignment.period) != kind:
            raise AssignmentNotSignable("这不是控辍保学动态管理月报表或辍学周报告的报送任务。")
        return kind

    def review(self, session: Session, scope: Scope, assignment: Assignment) -> Draft:
        self._assignment(scope, assignment)
        return self.draft(session, assignment.unit, assignment.period)

    def sign(self, session: Session, scope: Scope, assignment: Assignment, reviewed: str) -> ReportVersion:
        """Sign the figures the user reviewed (``reviewed`` is their digest) as the next version of
        the unit's report for the period, certified with the unit's key; the period's assignment
        counts as filed. Refused when the data changed since the review, and for a correction
        that changes nothing. Call in a fresh transaction (the document is archived in it)."""
        kind = self._assignment(scope, assignment)
        unit = assignment.unit
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
            "grades": [{"item": g, "count": n} for g, n in sorted(draft.figures["grades"].items())]
            or [{"item": "无", "count": 0}],
            "groups": [{"item": g, "count": n} for g, n in sorted(draft.figures["groups"].items())]
            or [{"item": "无", "count": 0}],
            "parts": draft.parts,
            "missing": draft.missing,
            "changes": draft.changes,
            "filled_by": filled_by[:30],
            "fill_date": self.today().isoformat(),
        }
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
        if assignment.state in (AssignmentState.ISSUED, AssignmentState.VIEWED):
            assignment.state = AssignmentState.SIGNED
            assignment.signed_at = now
            assignment.late = now > assignment.deadline
            assignment.viewed_at = assignment.viewed_at or now
        # The signed version is found through ReportVersion; the assignment's document_id stays
        # empty (it names a document to sign, which a report is not).
        assignment.report_name = f"{unit.name}{kind.short}第{version}版.pdf"[:128]
        session.flush()
        return row
