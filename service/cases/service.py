"""The rules of a dropout case, as checks rather than prose.

From the notices in ``reference/``: a case starts as 疑似辍学 and is confirmed as 辍学; every 劝返
attempt is recorded (三细三实); three failed attempts make it due for 联合劝返 (Suiyang 三); a
dropped-out student's guardians get a 复学通知书 (Zaozhuang 三(一)), and when its report-by date
passes unanswered a 限期复学通知书 follows (county plan 二(三)3), after which the matter goes to the
judicial authorities; each school files its 月报 by the 20th (Suiyang 四). A case closes as 已复学,
延缓入学/休学, or 核销 with one of the reasons of the Zaozhuang annex 1 and its evidence.
"""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.archive.models import Document, DocumentStatus
from service.archive.service import Archive, RecordAs, receipt_digest
from service.audit.service import Actor, record
from service.campaigns.ledger import safe_cell
from service.campaigns.models import Assignment, AssignmentState, Campaign
from service.campaigns.service import INFO_REPORT, REPORT, WEEKLY_REPORT, period_label
from service.cases.batch import create_roster, issue_roster
from service.cases.checks import check_guardian, check_id
from service.cases.errors import CaseClosed, CaseInvalid, DuplicateCase, NoticeNotDue, RosterInvalid
from service.cases.models import (
    ATTEMPT_METHODS,
    CASE_NOTICE_KINDS,
    DEFERRAL_BASES,
    KEY_GROUPS,
    OPEN_STATUSES,
    REASONS,
    ROSTER_KINDS,
    STATUS_TITLES,
    WRITE_OFF_EVIDENCE,
    WRITE_OFF_REASONS,
    Attempt,
    Case,
    CaseClosure,
    CaseFile,
    CaseStatus,
    Guardian,
    HomeVisit,
    PrintBundle,
    Roster,
    RosterEntry,
)
from service.cases.notices import notice_fields
from service.cases.roster import check_roster, schools_in
from service.documents.pipeline import IssueRequest
from service.errors import DocsignError, NotFoundForUser, UploadInvalid
from service.jobs.models import Job
from service.jobs.registry import actor_params
from service.jobs.runner import JobRunner
from service.units.models import Unit, UnitType

FAILED_ATTEMPTS_FOR_JOINT = 3
JOINT = "联合劝返"


@dataclass
class GuardianIn:
    name: str
    relation: str
    phone: str
    address: str | None = None


@dataclass
class CaseIn:
    student_name: str
    id_number: str
    sex: str
    birth_date: dt.date
    grade: str
    class_name: str | None = None
    student_number: str | None = None
    ethnicity: str | None = None
    home_address: str | None = None
    key_groups: list[str] = field(default_factory=list)
    dropout_date: dt.date | None = None
    dropout_reason: str | None = None
    reason_detail: str | None = None
    measures: str | None = None
    confirmed: bool = False
    guardians: list[GuardianIn] = field(default_factory=list)


#: The reports by their names in the notices: Suiyang 四 (月报表), Zaozhuang (四) (辍学周报告), the
#: county plan 二.(三).2 (学生失学辍学信息报告).
REPORT_TITLES = {
    REPORT: "控辍保学动态管理月报",
    WEEKLY_REPORT: "控辍保学辍学周报告",
    INFO_REPORT: "学生失学辍学信息报告",
}
#: The deadline rule each report's due item stands for (``ledgers.rules``).
REPORT_RULES = {REPORT: "monthly_report", WEEKLY_REPORT: "weekly_report", INFO_REPORT: "info_report"}


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
    #: The notice and article the deadline comes from.
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


def check_case(data: CaseIn) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not data.student_name.strip():
        problems.append(("学生姓名", "必须填写"))
    problems += check_id(data.id_number.strip().upper(), data.sex, data.birth_date)
    if data.sex not in ("男", "女"):
        problems.append(("性别", "应为 男 或 女"))
    if not data.grade.strip():
        problems.append(("年级", "必须填写"))
    unknown = [g for g in data.key_groups if g not in KEY_GROUPS]
    if unknown:
        problems.append(("重点群体", f"应从 {'、'.join(KEY_GROUPS)} 中选择"))
    if data.dropout_reason and data.dropout_reason not in REASONS:
        problems.append(("辍学原因", f"应为 {'、'.join(REASONS)} 之一"))
    if not data.guardians:
        problems.append(("监护人姓名", "至少填写一位监护人"))
    for i, g in enumerate(data.guardians, 1):
        problems += check_guardian(
            {"name": g.name, "relation": g.relation, "phone": g.phone}, "监护人" if i == 1 else f"监护人{i}"
        )
    return problems


class Cases:
    """The case use cases: registering, 劝返 attempts, closing, notices, the 一生一表, rosters."""

    def __init__(self, archive: Archive, tz: str, now: Callable[[], dt.datetime]) -> None:
        self.archive = archive
        self.engine = archive.engine
        self.tz = zoneinfo.ZoneInfo(tz)
        self.now = now

    def today(self) -> dt.date:
        return self.now().astimezone(self.tz).date()

    # --- the case itself ----------------------------------------------------------------------

    def create(
        self, session: Session, scope: Scope, school_id: int, data: CaseIn, *, platform_list: bool = False
    ) -> Case:
        """Register a student who dropped out (or may have) at a school the user sees. The school
        registers its own cases; ``platform_list``: the bureau files, at its schools, the suspected
        cases the national platform sends down (the school then handles them)."""
        school = session.get(Unit, school_id)
        if school is None or school.id not in scope.units:
            raise NotFoundForUser("未找到该学校。")
        actor = scope.actor
        if school.type != UnitType.SCHOOL:
            raise CaseInvalid("辍学个案应登记在学生的学籍学校名下。")
        if not platform_list:
            scope.require_own(school, "辍学个案由学籍学校登记；上级单位只能查看和督促。")
        problems = check_case(data)
        if problems:
            raise CaseInvalid(
                "；".join(f"{c}：{m}" for c, m in problems),
                details={"errors": [{"field": c, "message": m} for c, m in problems]},
            )
        id_number = data.id_number.strip().upper()
        # Only the user's own units are looked at: whether a child has a case at another school is
        # not this user's to learn.
        existing = session.scalar(
            select(Case).where(
                Case.id_number == id_number,
                Case.status.in_([s.value for s in OPEN_STATUSES]),
                Case.school_id.in_(scope.units),
            )
        )
        if existing is not None:
            raise DuplicateCase(
                f"该学生已有未结案的个案（{existing.school.name}，{STATUS_TITLES[CaseStatus(existing.status)]}）。"
            )
        now = self.now()
        case = Case(
            school_id=school.id,
            student_name=data.student_name.strip(),
            id_number=id_number,
            student_number=data.student_number or None,
            sex=data.sex,
            ethnicity=data.ethnicity or None,
            birth_date=data.birth_date,
            grade=data.grade.strip(),
            class_name=(data.class_name or "").strip() or None,
            home_address=data.home_address or None,
            key_groups=list(data.key_groups),
            dropout_date=data.dropout_date,
            dropout_reason=data.dropout_reason or None,
            reason_detail=data.reason_detail or None,
            measures=data.measures or None,
            status=CaseStatus.DROPPED if data.confirmed else CaseStatus.SUSPECTED,
            created_at=now,
            updated_at=now,
        )
        session.add(case)
        session.flush()
        for g in data.guardians:
            session.add(
                Guardian(
                    case_id=case.id,
                    name=g.name.strip(),
                    relation=g.relation or "其他监护人",
                    phone=g.phone.replace(" ", ""),
                    address=g.address or None,
                )
            )
        session.flush()
        session.refresh(case)
        record(session, actor, "case.create", "case", case.id, now, school=school.name, status=case.status)
        return case

    @staticmethod
    def _own(scope: Scope, case: Case) -> None:
        scope.require_own(case.school, "只有本校的账号可以更改本校的个案；上级单位只能查看和督促。")

    def _open(self, case: Case) -> None:
        if CaseStatus(case.status) not in OPEN_STATUSES:
            raise CaseClosed(f"该个案已{STATUS_TITLES[CaseStatus(case.status)]}，不能再做此操作。")

    def _move(self, session: Session, case: Case, status: CaseStatus, actor: Actor, **detail: Any) -> None:
        now = self.now()
        previous = case.status
        case.status = status
        case.updated_at = now
        if status not in OPEN_STATUSES:
            case.closed_at = now
        record(session, actor, "case.status", "case", case.id, now, **{"from": previous, "to": status.value}, **detail)

    def confirm(self, session: Session, scope: Scope, case: Case) -> None:
        """疑似辍学, once checked, is 辍学."""
        self._own(scope, case)
        if case.status != CaseStatus.SUSPECTED:
            raise CaseClosed("只有疑似辍学的个案可以确认为辍学。")
        self._move(session, case, CaseStatus.DROPPED, scope.actor)

    def add_attempt(
        self,
        session: Session,
        scope: Scope,
        case: Case,
        *,
        date: dt.date,
        staff: str,
        method: str,
        result: str,
        succeeded: bool = False,
        note: str | None = None,
        attachments: Sequence[tuple[str, bytes]] = (),
    ) -> Attempt:
        """A 劝返 attempt (date, staff, method, result); a successful one closes the case as 已复学."""
        actor = scope.actor
        self._own(scope, case)
        self._open(case)
        problems = []
        if method not in ATTEMPT_METHODS:
            problems.append(("劝返方式", f"应为 {'、'.join(ATTEMPT_METHODS)} 之一"))
        if not staff.strip():
            problems.append(("劝返人员", "必须填写参与劝返的人员"))
        if not result.strip():
            problems.append(("劝返结果", "必须填写劝返结果"))
        if date > self.today():
            problems.append(("劝返日期", "不能晚于今天"))
        if case.dropout_date and date < case.dropout_date:
            problems.append(("劝返日期", "不能早于辍学日期"))
        if problems:
            raise CaseInvalid(
                "；".join(f"{c}：{m}" for c, m in problems),
                details={"errors": [{"field": c, "message": m} for c, m in problems]},
            )
        # the files are stored before anything is written (the archive journals them in a
        # transaction of its own, which must come first), and recorded with the attempt
        kept = [(filename, len(data), self.archive.keep(session, "files", data)) for filename, data in attachments]
        attempt = Attempt(
            case_id=case.id,
            date=date,
            staff=staff.strip()[:60],
            method=method,
            result=result.strip()[:200],
            succeeded=succeeded,
            note=(note or "").strip()[:200] or None,
            created_at=self.now(),
            created_by_id=actor.user_id,
        )
        session.add(attempt)
        session.flush()
        for filename, size, sha256 in kept:
            session.add(
                CaseFile(
                    case_id=case.id,
                    attempt_id=attempt.id,
                    purpose="attachment",
                    filename=filename[:128],
                    sha256=sha256,
                    size=size,
                    created_at=self.now(),
                )
            )
        record(
            session,
            actor,
            "case.attempt",
            "case",
            case.id,
            self.now(),
            method=method,
            succeeded=succeeded,
            date=date.isoformat(),
        )
        case.updated_at = self.now()
        if succeeded:
            self._close(session, scope, case, CaseStatus.RETURNED, date, note="劝返成功", by="attempt")
        elif case.status in (CaseStatus.SUSPECTED, CaseStatus.DROPPED):
            self._move(session, case, CaseStatus.PERSUADING, actor)
        session.refresh(case)
        return attempt

    def _file(
        self, session: Session, case: Case, purpose: str, filename: str, data: bytes, attempt_id: int | None = None
    ) -> CaseFile:
        sha256 = self.archive.keep(session, "files", data)
        f = CaseFile(
            case_id=case.id,
            attempt_id=attempt_id,
            purpose=purpose,
            filename=filename[:128],
            sha256=sha256,
            size=len(data),
            created_at=self.now(),
        )
        session.add(f)
        session.flush()
        return f

    def _close(
        self,
        session: Session,
        scope: Scope,
        case: Case,
        status: CaseStatus,
        day: dt.date,
        *,
        reason: str | None = None,
        authority: str | None = None,
        note: str | None = None,
        **detail: Any,
    ) -> CaseClosure:
        """The one way a case leaves its ledger: a recorded 销号 act."""
        closure = CaseClosure(
            case_id=case.id,
            kind=status.value,
            from_status=case.status,
            date=day,
            reason=reason,
            authority=authority,
            note=note,
            actor=scope.actor.label[:80],
            created_by_id=scope.actor.user_id,
            created_at=self.now(),
        )
        session.add(closure)
        if authority:
            detail["authority"] = authority
        if note:
            detail["note"] = note
        self._move(session, case, status, scope.actor, date=day.isoformat(), **detail)
        session.flush()
        session.refresh(case)
        return closure

    def _check_day(self, case: Case, day: dt.date | None, title: str) -> dt.date:
        if day is None:
            raise CaseInvalid(f"请填写{title}。", details={"errors": [{"field": title, "message": "必须填写"}]})
        if day > self.today():
            raise CaseInvalid(
                f"{title}不能晚于今天。", details={"errors": [{"field": title, "message": "不能晚于今天"}]}
            )
        if case.dropout_date and day < case.dropout_date:
            raise CaseInvalid(
                f"{title}不能早于辍学日期。", details={"errors": [{"field": title, "message": "不能早于辍学日期"}]}
            )
        return day

    def returned(
        self, session: Session, scope: Scope, case: Case, back_on: dt.date | None = None, note: str | None = None
    ) -> CaseClosure:
        """已复学: the student is back at school since ``back_on`` (today when not given by the API)."""
        self._own(scope, case)
        self._open(case)
        day = self._check_day(case, back_on or self.today(), "复学日期")
        return self._close(session, scope, case, CaseStatus.RETURNED, day, note=(note or "").strip()[:200] or None)

    def defer(
        self,
        session: Session,
        scope: Scope,
        case: Case,
        *,
        basis: str,
        authority: str,
        approved_on: dt.date | None,
        approval: Sequence[tuple[str, bytes]],
        note: str | None = None,
        home_teaching: bool = False,
    ) -> CaseClosure:
        """延缓入学/休学 of a student who will not come back (Suiyang 三): only after three 联合劝返 or a
        court ruling (or, for a child who cannot learn, the 残联 experts' assessment), with the
        approval of the authority named and its document. ``home_teaching``: the child is taught at
        home (送教上门), and the school owes a recorded visit every week (county plan 二.(三).4)."""
        self._own(scope, case)
        self._open(case)
        problems: list[tuple[str, str]] = []
        if basis not in DEFERRAL_BASES:
            problems.append(("办理依据", f"应为 {'、'.join(DEFERRAL_BASES.values())} 之一"))
        joint = sum(1 for a in case.attempts if a.method == JOINT)
        if basis == "joint_persuasion" and joint < FAILED_ATTEMPTS_FOR_JOINT:
            problems.append(("办理依据", f"已记录联合劝返 {joint} 次，满三次后才能以此为依据办理"))
        if not authority.strip():
            problems.append(("批准机关", "必须填写批准的人民政府或乡村振兴工作协调机构（或残联）"))
        if approved_on is None:
            problems.append(("批准日期", "必须填写"))
        elif approved_on > self.today():
            problems.append(("批准日期", "不能晚于今天"))
        if not approval:
            problems.append(("批准文件", "必须上传批准文件（扫描件）"))
        if problems:
            raise CaseInvalid(
                "；".join(f"{c}：{m}" for c, m in problems),
                details={"errors": [{"field": c, "message": m} for c, m in problems]},
            )
        assert approved_on is not None
        for filename, data in approval:
            self._file(session, case, "approval", filename, data)
        closure = self._close(
            session,
            scope,
            case,
            CaseStatus.DEFERRED,
            approved_on,
            reason=basis,
            authority=authority.strip()[:60],
            note=(note or "").strip()[:200] or None,
            basis=DEFERRAL_BASES[basis],
            home_teaching=home_teaching,
        )
        closure.home_teaching = home_teaching
        session.flush()
        return closure

    def add_home_visit(
        self,
        session: Session,
        scope: Scope,
        case: Case,
        *,
        date: dt.date | None,
        teachers: str,
        content: str,
        evidence: Sequence[tuple[str, bytes]],
    ) -> HomeVisit:
        """A 送教上门 visit to a deferred child taught at home: the day, the teachers who went, what
        they taught, and its evidence (a photo or the sheet the guardian signed)."""
        self._own(scope, case)
        if case.status != CaseStatus.DEFERRED or case.closure is None or not case.closure.home_teaching:
            raise CaseInvalid("只有办理了延缓入学/休学并安排送教上门的个案可以登记送教上门记录。")
        problems: list[tuple[str, str]] = []
        if date is None:
            problems.append(("送教日期", "必须填写"))
        elif date > self.today():
            problems.append(("送教日期", "不能晚于今天"))
        elif date < case.closure.date:
            problems.append(("送教日期", "不能早于延缓入学/休学的批准日期"))
        if not teachers.strip():
            problems.append(("送教人员", "必须填写送教的教师"))
        if not content.strip():
            problems.append(("送教内容", "必须填写送教的内容"))
        if len(evidence) != 1:
            problems.append(("送教记录", "请上传一份送教记录（照片或监护人签字的记录表）"))
        if problems:
            raise CaseInvalid(
                "；".join(f"{c}：{m}" for c, m in problems),
                details={"errors": [{"field": c, "message": m} for c, m in problems]},
            )
        assert date is not None
        filename, data = evidence[0]
        sha256 = self.archive.keep(session, "files", data)
        visit = HomeVisit(
            case_id=case.id,
            date=date,
            teachers=teachers.strip()[:60],
            content=content.strip()[:200],
            evidence_filename=(filename or "送教记录")[:128],
            evidence_sha256=sha256,
            evidence_size=len(data),
            actor=scope.actor.label[:80],
            created_by_id=scope.actor.user_id,
            created_at=self.now(),
        )
        session.add(visit)
        session.flush()
        record(session, scope.actor, "case.home_visit", "case", case.id, self.now(), date=date.isoformat())
        case.updated_at = self.now()
        session.refresh(case)
        return visit

    def write_off(
        self,
        session: Session,
        scope: Scope,
        case: Case,
        reason: str,
        evidence: Sequence[tuple[str, bytes]],
        note: str | None = None,
    ) -> CaseClosure:
        """核销: only for one of annex 1's reasons, with the evidence the annex asks for."""
        self._own(scope, case)
        self._open(case)
        if reason not in WRITE_OFF_REASONS:
            raise CaseInvalid(f"核销原因应为以下之一：{'、'.join(WRITE_OFF_REASONS.values())}。")
        if not evidence:
            raise CaseInvalid(
                f"核销「{WRITE_OFF_REASONS[reason]}」需要上传证明材料（{WRITE_OFF_EVIDENCE[reason]}）。",
                details={"errors": [{"field": "证明材料", "message": f"请上传{WRITE_OFF_EVIDENCE[reason]}"}]},
            )
        for filename, data in evidence:
            self._file(session, case, "evidence", filename, data)
        case.write_off_reason = reason
        return self._close(
            session,
            scope,
            case,
            CaseStatus.WRITTEN_OFF,
            self.today(),
            reason=reason,
            note=(note or "").strip()[:200] or None,
            reason_title=WRITE_OFF_REASONS[reason],
        )

    # --- what is due --------------------------------------------------------------------------

    def _notices(self, session: Session, case: Case, kind: str) -> list[Document]:
        return list(
            session.scalars(
                select(Document)
                .where(Document.case_id == case.id, Document.kind == kind, Document.status != DocumentStatus.REVOKED)
                .order_by(Document.issued_at)
            )
        )

    def due(self, session: Session, case: Case, today: dt.date | None = None) -> list[DueItem]:
        today = today or self.today()
        if CaseStatus(case.status) not in OPEN_STATUSES:
            return []
        school = case.school
        items: list[DueItem] = []

        def item(kind: str, title: str, due: dt.date) -> None:
            items.append(DueItem(kind, title, due, today > due, school.id, school.name, case.id, case.student_name))

        failed = [a for a in case.attempts if not a.succeeded and a.method != JOINT]
        joint = [a for a in case.attempts if a.method == JOINT]
        if len(failed) >= FAILED_ATTEMPTS_FOR_JOINT and not any(
            j.date >= failed[FAILED_ATTEMPTS_FOR_JOINT - 1].date for j in joint
        ):
            item(
                "joint_persuasion",
                f"已劝返 {len(failed)} 次仍未复学，应报告教体局和属地政府开展联合劝返",
                failed[FAILED_ATTEMPTS_FOR_JOINT - 1].date,
            )
        if case.status == CaseStatus.SUSPECTED:
            item(
                "confirm",
                "疑似辍学，应核实后确认是否辍学",
                (case.created_at.astimezone(self.tz).date() + dt.timedelta(days=3)),
            )
            return items
        returns = self._notices(session, case, "return_notice")
        deadlines = self._notices(session, case, "deadline_return_notice")
        if not returns:
            item(
                "return_notice",
                "应向监护人送达《义务教育复学通知书》",
                (case.dropout_date or case.created_at.astimezone(self.tz).date()) + dt.timedelta(days=7),
            )
        else:
            last = returns[-1]
            report_by = dt.date.fromisoformat(str(last.fields["report_by"]))
            answered = any(d.issued_at >= last.issued_at for d in deadlines)
            if today > report_by and not answered:
                item(
                    "deadline_notice",
                    f"复学通知书的报到期限（{report_by.month}月{report_by.day}日）已过，应发出《限期复学通知书》",
                    report_by + dt.timedelta(days=1),
                )
        if deadlines:
            report_by = dt.date.fromisoformat(str(deadlines[-1].fields["report_by"]))
            if today > report_by:
                item("judicial", "限期复学逾期仍未复学，应提请司法部门依法督促", report_by + dt.timedelta(days=1))
        return items

    def due_for_units(self, session: Session, unit_ids: set[int], today: dt.date | None = None) -> list[DueItem]:
        """What is due for these schools (a school, an office's schools, a bureau's district)."""
        today = today or self.today()
        items: list[DueItem] = []
        open_cases = session.scalars(
            select(Case).where(Case.school_id.in_(unit_ids), Case.status.in_([s.value for s in OPEN_STATUSES]))
        )
        for case in open_cases:
            items += self.due(session, case, today)
        # The 月报 and 周报 of each school, from the recurring report campaigns (by the 20th, by Wednesday).
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
                    f"{period_label(a.period)}{what}",
                    due,
                    today > due,
                    a.unit_id,
                    a.unit.name,
                )
            )
        return sorted(items, key=lambda i: (not i.overdue, i.due, i.school))

    # --- documents ----------------------------------------------------------------------------

    def _guardian(self, case: Case) -> Guardian:
        if not case.guardians:
            raise CaseInvalid("该个案没有登记监护人，无法发出通知书。请先补充监护人信息。")
        return case.guardians[0]

    def notice_fields(
        self, session: Session, case: Case, kind: str, report_by: dt.date, issuer: Unit
    ) -> dict[str, Any]:
        guardian = self._guardian(case)
        fields = notice_fields(
            guardian_name=guardian.name,
            student_name=case.student_name,
            id_number=case.id_number,
            grade_class=case.grade_class,
            school=case.school,
            issuer=issuer,
            report_by=report_by,
            issue_date=self.today(),
        )
        if kind == "deadline_return_notice":
            returns = self._notices(session, case, "return_notice")
            if not returns:
                raise NoticeNotDue("还没有发出过《义务教育复学通知书》，应先发复学通知书。")
            last_report_by = dt.date.fromisoformat(str(returns[-1].fields["report_by"]))
            if self.today() <= last_report_by:
                raise NoticeNotDue(
                    f"复学通知书的报到期限（{last_report_by.month}月{last_report_by.day}日）还没有过去。"
                )
            fields["return_notice_date"] = str(returns[-1].fields["issue_date"])
        return fields

    def notice_issuer(self, scope: Scope, case: Case, requested: str | None = None) -> Unit:
        """Which unit issues a case's notice: the school, or the bureau when a bureau user asks for
        it (by default a bureau user issues as the bureau, anyone else as the school). Only the
        issuing unit's own signer (or, for the bureau, its staff) may sign with its key."""
        if requested is None:
            requested = "bureau" if scope.unit.type == UnitType.BUREAU else "school"
        if requested == "bureau":
            unit = scope.bureau()
        elif requested == "school":
            unit = case.school
        else:
            raise CaseInvalid("发文单位应为 school（学校）或 bureau（教体局）。")
        scope.require_signer_for(unit)
        return unit

    def issue_notice(
        self,
        session: Session,
        scope: Scope,
        case: Case,
        kind: str,
        report_by: dt.date,
        issuer: str | None = None,
    ) -> Document:
        """A 复学通知书 or 限期复学通知书 for one case, issued, archived and recorded."""
        if kind not in CASE_NOTICE_KINDS:
            raise CaseInvalid("个案只能发复学通知书或限期复学通知书；入学通知书请按名单批量发出。")
        self._open(case)
        if report_by <= self.today():
            raise CaseInvalid("报到截止日期应晚于今天。")
        unit = self.notice_issuer(scope, case, issuer)
        fields = self.notice_fields(session, case, kind, report_by, unit)
        self.engine.pki.ensure_unit(unit.cert_key, unit.name)
        doc, _ = self.archive.issue(
            session,
            IssueRequest(kind, fields, issuer_key=unit.cert_key),
            RecordAs(issuer=unit, case_id=case.id, receipt_digest=receipt_digest(self._guardian(case).phone)),
            scope.actor,
            case=case.id,
            report_by=report_by.isoformat(),
        )
        return doc

    def register(self, session: Session, scope: Scope, case: Case) -> Document:
        """The case as its 辍学学生登记表（一生一表）, signed by the school; each regeneration is a new
        version and the previous one is marked superseded."""
        school = case.school
        scope.require_signer_for(school)
        filled_by = scope.user.display_name if scope.user is not None else school.head_name or ""
        fields: dict[str, Any] = {
            "school_name": school.name,
            "student_name": case.student_name,
            "sex": case.sex,
            "birth_date": case.birth_date.isoformat(),
            "student_id_number": case.id_number,
            "grade_class": case.grade_class,
            "key_groups": case.key_groups,
            "guardians": [
                {
                    k: v
                    for k, v in {
                        "name": g.name,
                        "relation": g.relation,
                        "phone": g.phone,
                        "workplace": g.address,
                    }.items()
                    if v
                }
                for g in case.guardians
            ],
            "dropout_date": (case.dropout_date or case.created_at.astimezone(self.tz).date()).isoformat(),
            "status": STATUS_TITLES[CaseStatus(case.status)].split("/")[0]
            if case.status != CaseStatus.DEFERRED
            else "延缓入学",
            "attempts": [
                {
                    k: v
                    for k, v in {
                        "date": a.date.isoformat(),
                        "staff": a.staff,
                        "method": a.method,
                        "result": a.result,
                        "note": a.note,
                    }.items()
                    if v
                }
                for a in case.attempts
            ],
            "filled_by": filled_by[:20] or "学校",
            "fill_date": self.today().isoformat(),
        }
        # what the case does not know prints as a dash, never as a guess (其他, 未登记)
        for key, value in (
            ("home_address", case.home_address),
            ("dropout_reason", case.dropout_reason),
            ("ethnicity", case.ethnicity),
            ("student_number", case.student_number),
            ("reason_detail", case.reason_detail),
            ("measures", case.measures),
            ("school_phone", school.phone),
        ):
            if value:
                fields[key] = value
        self.engine.pki.ensure_unit(school.cert_key, school.name)
        row, _ = self.archive.issue(
            session,
            IssueRequest("dropout_register", fields, issuer_key=school.cert_key),
            RecordAs(issuer=school, case_id=case.id),
            scope.actor,
            action="case.register",
            case=case.id,
        )
        for old in session.scalars(
            select(Document).where(
                Document.case_id == case.id,
                Document.kind == "dropout_register",
                Document.id != row.id,
                Document.status == DocumentStatus.VALID,
            )
        ):
            old.status = DocumentStatus.SUPERSEDED
            old.superseded_by_id = row.id
        session.flush()
        return row

    # --- rosters ------------------------------------------------------------------------------

    def import_roster(
        self,
        session: Session,
        scope: Scope,
        data: bytes,
        filename: str,
        *,
        kind: str,
        report_by: dt.date,
        only_valid: bool = False,
        issue_date: dt.date | None = None,
    ) -> tuple[Roster, list[dict[str, Any]]]:
        """A school (or the bureau) imports a roster of students and guardians to send notices to.
        Every bad row is reported (row, column, reason); nothing is imported while any row is bad,
        unless ``only_valid``. Each good row gets its verification code now, so a batch killed
        halfway resumes without issuing a code twice. Returns the roster and the rows skipped."""
        try:
            return self._import_roster(
                session,
                scope,
                data,
                filename,
                kind=kind,
                report_by=report_by,
                only_valid=only_valid,
                issue_date=issue_date,
            )
        except DocsignError as exc:
            # A refused import is audited too (in a transaction of its own, since the caller rolls
            # back): who tried, with which file, and why, but none of the rows' contents.
            errors = exc.details.get("errors", []) if isinstance(exc.details, dict) else []
            with self.archive.db.session() as apart:
                record(
                    apart,
                    scope.actor,
                    "roster.import_failed",
                    "unit",
                    scope.unit.id,
                    self.now(),
                    kind=kind,
                    file=filename[:128],
                    code=exc.code,
                    errors=len(errors),
                )
                apart.commit()
            raise

    def _import_roster(
        self,
        session: Session,
        scope: Scope,
        data: bytes,
        filename: str,
        *,
        kind: str,
        report_by: dt.date,
        only_valid: bool,
        issue_date: dt.date | None,
    ) -> tuple[Roster, list[dict[str, Any]]]:
        if kind not in ROSTER_KINDS:
            raise UploadInvalid("名单类型应为 enrollment_notice（入学通知书）或 return_notice（复学通知书）。")
        today = self.today()
        if report_by <= today:
            raise UploadInvalid("报到截止日期应晚于今天。")
        issuer = scope.unit
        if issuer.type == UnitType.OFFICE:
            raise UploadInvalid("通知书由学校或教体局发出，请用学校或教体局的账号导入名单。")
        scope.require_signer_for(issuer)
        check = check_roster(session, data, filename, kind, schools_in(session, scope.units))
        if not check.rows:
            raise RosterInvalid("名单中没有学生。")
        if check.errors and not only_valid:
            raise RosterInvalid(
                f"名单中有 {len(check.errors)} 处错误（涉及 {len(check.rows) - len(check.good)} 行），未导入任何学生。",
                details={"errors": check.errors},
            )
        if not check.good:
            raise RosterInvalid("名单中没有无误的行可以导入。", details={"errors": check.errors})
        roster = create_roster(
            session,
            check,
            kind=kind,
            issuer=issuer,
            filename=filename,
            report_by=report_by,
            issue_date=issue_date or today,
            only_valid=only_valid,
            actor=scope.actor,
            now=self.now(),
        )
        return roster, check.errors

    def start_roster_issue(self, session: Session, scope: Scope, roster: Roster, jobs: JobRunner) -> tuple[Job, bool]:
        """Issue a roster's notices in the background (``roster.issue``); a rerun after an
        interruption issues only what is missing."""
        if roster.issuer_id not in scope.units:
            raise NotFoundForUser()
        scope.require_signer_for(roster.issuer)
        return jobs.enqueue(
            session,
            "roster.issue",
            {"roster_id": roster.id, "actor": actor_params(scope.actor)},
            unit_id=roster.issuer_id,
            user_id=scope.actor.user_id,
            active_key=f"roster.issue:{roster.id}",
        )

    def print_bundle(self, session: Session, roster: Roster, school_id: int) -> PrintBundle:
        bundle = session.scalar(
            select(PrintBundle).where(PrintBundle.roster_id == roster.id, PrintBundle.school_id == school_id)
        )
        if bundle is None:
            raise NotFoundForUser("该校还没有打印文件，请先签发名单。")
        return bundle

    def receipts_workbook(self, session: Session, roster: Roster) -> bytes:
        """The 回执台账: for each notice, whether it was issued, opened, and confirmed by the guardian."""
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = "回执"
        ws.append(["行", "学校", "年级班级", "学生", "监护人", "签发", "首次查看", "查看次数", "确认阅知"])
        rows = session.execute(
            select(RosterEntry, Document)
            .outerjoin(Document, Document.id == RosterEntry.document_id)
            .where(RosterEntry.roster_id == roster.id)
            .order_by(RosterEntry.school_id, RosterEntry.class_order)
        ).all()
        units = {u.id: u.name for u in session.scalars(select(Unit))}
        for entry, doc in rows:
            f = entry.fields
            ws.append(
                [
                    safe_cell(v)
                    for v in (
                        entry.row,
                        units.get(entry.school_id, ""),
                        entry.grade_class or f.get("grade_class", ""),
                        f.get("student_name", ""),
                        f.get("guardian_name", ""),
                        "是" if doc else "否",
                        doc.opened_at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M") if doc and doc.opened_at else "",
                        doc.opened_count if doc else 0,
                        doc.confirmed_at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")
                        if doc and doc.confirmed_at
                        else "",
                    )
                ]
            )
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()

    def issue_roster(
        self,
        session: Session,
        roster: Roster,
        actor: Actor,
        *,
        checkpoint: Callable[[], None],
        progress: Callable[[int, int], None] | None = None,
        job_id: int | None = None,
        entry_ids: Sequence[int] | None = None,
    ) -> int:
        """Issue every notice of the roster that has no document yet, then each school's print PDF;
        returns how many were issued now. ``entry_ids``: only those rows (one slice of a batch run by
        many workers; the print files are made once all slices are done)."""
        return issue_roster(
            session,
            self.archive,
            roster,
            actor,
            self.now,
            checkpoint=checkpoint,
            progress=progress,
            job_id=job_id,
            entry_ids=entry_ids,
        )


def write_off_choices() -> list[tuple[str, str]]:
    return list(WRITE_OFF_REASONS.items())
