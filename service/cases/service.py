"""The rules of a dropout case, as checks rather than prose.

From the notices in ``reference/``: a case starts as 疑似辍学 and is confirmed as 辍学; every 劝返
attempt is recorded (三细三实); a dropped-out student's guardians get a 复学通知书 (Zaozhuang 三(一)),
and when its report-by date passes unanswered a 限期复学通知书 (county plan 二(三)3), which can be sent
only then. A case closes as 已复学, 延缓入学/休学 (after three 联合劝返, a court ruling or the experts'
assessment, Suiyang 三), or 核销 with one of the reasons of the Zaozhuang annex 1 and its evidence.
What a case is due for, and when, is a bureau's rule: ``service.ledgers.deadlines``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.archive.models import STATUS_TITLES as DOCUMENT_STATUS_TITLES
from service.archive.models import Document, DocumentStatus
from service.archive.service import Archive, RecordAs, receipt_digest, stored_pdf
from service.audit.models import AuditEvent
from service.audit.service import Actor, record
from service.cases.casefile import (
    CASE_FILE_KIND,
    RECEIPT_WAYS,
    Originals,
    Part,
    document_code,
    event_text,
    moment,
    page_span,
    sorted_events,
    toc,
    verdict_words,
)
from service.cases.checks import check_guardian, check_id
from service.cases.errors import CaseClosed, CaseFileUnavailable, CaseInvalid, DuplicateCase, NoticeNotDue
from service.cases.models import (
    ATTEMPT_METHODS,
    CASE_NOTICE_KINDS,
    DEFERRAL_BASES,
    JOINT,
    KEY_GROUPS,
    OPEN_STATUSES,
    REASONS,
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
)
from service.cases.notices import notice_fields, sent_notices
from service.db.sealed import index_of
from service.documents.codes import verification_url
from service.documents.pipeline import Appendix, IssuedDocument, IssueRequest
from service.documents.registry import GUARDIAN_NOTICES, get_kind
from service.documents.sign import last_signature_time
from service.errors import NotFoundForUser
from service.units.models import Unit, UnitType
from service.units.service import bureau_of

#: 延缓入学/休学 on the grounds of 联合劝返 needs this many of them (Suiyang 三: 经联合劝返三次以上).
JOINT_FOR_DEFERRAL = 3


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
    """The case use cases: registering, 劝返 attempts, closing, notices, the 一生一表."""

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
        today = self.today()
        if data.dropout_date is not None and data.dropout_date > today:
            problems.append(("辍学日期", "不能晚于今天"))
        if problems:
            raise CaseInvalid(
                "；".join(f"{c}：{m}" for c, m in problems),
                details={"errors": [{"field": c, "message": m} for c, m in problems]},
            )
        id_number = data.id_number.strip().upper()
        # the day the case counts from in every report: the 辍学日期 entered, or today
        first = data.dropout_date or today
        # Only the user's own units are looked at: whether a child has a case at another school is
        # not this user's to learn.
        existing = session.scalar(
            select(Case).where(
                Case.id_number_bidx == index_of(session, id_number, "id_number"),
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
            suspected_on=None if data.confirmed else first,
            dropped_on=first if data.confirmed else None,
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

    def confirm(self, session: Session, scope: Scope, case: Case, on: dt.date | None = None) -> None:
        """疑似辍学, once checked, is 辍学 from the day it was confirmed (``on``, today by default)."""
        self._own(scope, case)
        if case.status != CaseStatus.SUSPECTED:
            raise CaseClosed("只有疑似辍学的个案可以确认为辍学。")
        day = self._check_day(case, on or self.today(), "核实日期")
        if case.suspected_on is not None and day < case.suspected_on:
            raise CaseInvalid(
                "核实日期不能早于列为疑似辍学的日期。",
                details={"errors": [{"field": "核实日期", "message": "不能早于列为疑似辍学的日期"}]},
            )
        case.dropped_on = day
        self._move(session, case, CaseStatus.DROPPED, scope.actor, on=day.isoformat())

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
        # the files are stored (each journaled apart from this transaction) and recorded with the attempt
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
        if basis == "joint_persuasion" and joint < JOINT_FOR_DEFERRAL:
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
            returns = sent_notices(session, case, "return_notice")
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
            "home_visits": [
                {"date": v.date.isoformat(), "teachers": v.teachers, "content": v.content}
                for v in sorted(case.home_visits, key=lambda v: v.date)
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
            ("principal_name", (school.head_name or "")[:20]),
            ("closure", closure_text(case.closure)),
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

    # --- the 案卷 -----------------------------------------------------------------------------

    def case_file(self, session: Session, scope: Scope, case: Case) -> tuple[Document, IssuedDocument]:
        """The case's 案卷 for a court or the 检察院: the 一生一表, every 劝返 with its attachments,
        every document with its verification record, the guardian's receipts and the history in
        one PDF with a 目录, the originals embedded unaltered, the whole certified by the unit
        that makes it (制卷单位) and archived with a verification code of its own (audited as
        ``case.file``). The bureau (its staff), the case's office and its school make it, each
        with its own key like every document it signs: the court's copy is the bureau's. It shows
        the child's data in full."""
        school = case.school
        maker = scope.unit
        if case.school_id not in scope.units or maker.id not in {
            school.id,
            school.parent_id,
            bureau_of(school).id,
        }:
            raise scope.refuse("只有教体局、本校和本校所属教育办可以生成该个案的案卷。")
        scope.require_signer_for(maker)
        if case.erased_at is not None:
            raise CaseFileUnavailable("该个案的个人信息已按期删除（或依申请删除），不能再生成案卷。")
        register = self._current_register(session, case)
        if register is None:
            if maker.id == school.id:
                register = self.register(session, scope, case)
            else:
                raise CaseFileUnavailable("该个案还没有一生一表，请学校先生成一生一表，再生成案卷。")
        originals = Originals()
        docs = list(
            session.scalars(
                select(Document)
                .where(
                    Document.case_id == case.id,
                    Document.kind != CASE_FILE_KIND,
                    Document.status != DocumentStatus.ERASED,
                )
                .order_by(Document.issued_at, Document.id)
            )
        )
        docs.sort(key=lambda d: d.id != register.id)  # the 一生一表 first
        titles = {d.kind: get_kind(d.kind).title for d in docs}
        store = self.archive.documents
        base = self.engine.settings.public_base_url
        documents: list[dict[str, Any]] = []
        receipts: list[dict[str, Any]] = []
        shown: list[tuple[dict[str, Any], Part | None]] = []

        def add_document(doc: Document, label: str) -> None:
            pdf = store.get(stored_pdf(doc))
            code = document_code(pdf)
            title = titles[doc.kind]
            name = originals.embed(f"{title}.pdf", pdf, f"{title}（原件，验证码 {code}）")
            part = originals.show(label.format(title=title, code=code), pdf, name)
            entry = {
                "title": title,
                "issuer": doc.issuer.name if doc.issuer else str(doc.public.get("issuer", "")),
                "issued_at": moment(doc.issued_at, self.tz),
                "signed_at": moment(last_signature_time(pdf), self.tz) or "—",
                "code": "-".join(code[i : i + 4] for i in range(0, len(code), 4)),
                "url": verification_url(base, code),
                "status": DOCUMENT_STATUS_TITLES[DocumentStatus(doc.status)],
                "verdict": verdict_words(self.archive.verdict_now(session, doc)),
                "sha256": doc.current_sha256,
                "attachment": name,
            }
            documents.append(entry)
            shown.append((entry, part))
            if doc.kind in GUARDIAN_NOTICES:
                receipt = {"title": title, "code_tail": code[-4:]}
                if doc.opened_at:
                    receipt["opened"] = f"{moment(doc.opened_at, self.tz)}（共 {doc.opened_count} 次）"
                if doc.confirmed_at:
                    via = RECEIPT_WAYS.get(doc.confirmed_via or "", "")
                    receipt["confirmed"] = moment(doc.confirmed_at, self.tz) + (f"（{via}）" if via else "")
                receipts.append(receipt)

        # pages in reading order: the 一生一表, the 劝返 attachments, then the other documents
        add_document(register, "附件一 {title}")
        files = list(session.scalars(select(CaseFile).where(CaseFile.case_id == case.id).order_by(CaseFile.id)))
        attached: dict[int, list[tuple[str, Part | None]]] = {}
        for f in files:
            data = self.archive.stores["files"].get(f.sha256)
            name = originals.embed(f.filename, data, f"劝返附件「{f.filename}」（原件）")
            part = originals.show(f"附件二 {f.filename}", data, name)
            attached.setdefault(f.attempt_id or 0, []).append((f.filename, part))
        for n, doc in enumerate((d for d in docs if d.id != register.id), 1):
            add_document(doc, f"附件三-{n} {{title}}")
        appendix_pdf = originals.to_bytes()
        doc_ids = {str(d.id) for d in docs}
        events = sorted_events(
            list(
                session.scalars(
                    select(AuditEvent).where(
                        or_(
                            (AuditEvent.object_type == "case") & (AuditEvent.object_id == str(case.id)),
                            (AuditEvent.object_type == "document") & AuditEvent.object_id.in_(doc_ids),
                        )
                    )
                )
            )
        )
        sections = [
            ("目录", "sectoc"),
            ("一、劝返记录", "secattempts"),
            ("二、文书及核验记录", "secdocuments"),
            ("三、监护人回执", "secreceipts"),
            ("四、办理经过", "sectimeline"),
        ]
        fixed: dict[str, Any] = {
            "unit_name": maker.name,
            "made_date": self.today().isoformat(),
            "case_no": f"个案第 {case.id} 号",
            "student_name": case.student_name,
            "sex": case.sex,
            "birth_date": case.birth_date.isoformat(),
            "student_id_number": case.id_number or "",
            "school_name": school.name,
            "grade_class": case.grade_class,
            "status": STATUS_TITLES[CaseStatus(case.status)],
            "attachment_count": len(files),
            "receipts": receipts,
            "events": [
                {
                    "at": moment(e.at, self.tz),
                    "actor": e.actor[:80],
                    "what": event_text(e.action, e.detail, titles)[:300],
                }
                for e in events
            ],
        }
        guardians = "；".join(f"{g.name}（{g.relation}）" for g in case.guardians)
        if guardians:
            fixed["guardians"] = guardians[:200]
        if case.dropout_date:
            fixed["dropout_date"] = case.dropout_date.isoformat()

        def refill(text_pages: int, marks: Mapping[str, int]) -> dict[str, Any]:
            for entry, part in shown:
                entry["pages"] = page_span(text_pages + part.start + 1, part.pages) if part else "—"
            attempts = []
            for a in case.attempts:
                shown_files = [
                    f"{name}（第 {page_span(text_pages + part.start + 1, part.pages)} 页）"
                    if part
                    else f"{name}（见 PDF 附件）"
                    for name, part in attached.get(a.id, [])
                ]
                item = {"date": a.date.isoformat(), "staff": a.staff, "method": a.method, "result": a.result}
                if a.note:
                    item["note"] = a.note
                if shown_files:
                    item["files"] = "；".join(shown_files)[:600]
                attempts.append(item)
            return {
                **fixed,
                "total_pages": text_pages + len(originals.pdf.pages),
                "toc": toc(text_pages, marks, originals.parts, sections),
                "attempts": attempts,
                "documents": [dict(d) for d in documents],
            }

        self.engine.pki.ensure_unit(maker.cert_key, maker.name)
        return self.archive.issue(
            session,
            IssueRequest(CASE_FILE_KIND, refill(0, {}), issuer_key=maker.cert_key),
            RecordAs(issuer=maker, case_id=case.id),
            scope.actor,
            action="case.file",
            appendix=Appendix(appendix_pdf, tuple(originals.files), refill),
            case=case.id,
            documents=len(docs),
            attachments=len(files),
        )

    @staticmethod
    def _current_register(session: Session, case: Case) -> Document | None:
        return session.scalar(
            select(Document)
            .where(
                Document.case_id == case.id,
                Document.kind == "dropout_register",
                Document.status == DocumentStatus.VALID,
            )
            .order_by(Document.id.desc())
            .limit(1)
        )


def closure_text(closure: CaseClosure | None) -> str:
    """The 销号 block of the 一生一表: how and when the case left its ledger, on what grounds."""
    if closure is None:
        return ""
    day = f"{closure.date.year}年{closure.date.month}月{closure.date.day}日"
    if closure.kind == "returned":
        text = f"已复学（{day}返校）"
    elif closure.kind == "written_off":
        text = f"核销（{day}）：{WRITE_OFF_REASONS.get(closure.reason or '', closure.reason or '')}"
    else:
        basis = DEFERRAL_BASES.get(closure.reason or "", closure.reason or "")
        text = f"延缓入学/休学（{day}批准）：{basis}"
        if closure.authority:
            text += f"，批准机关：{closure.authority}"
        if closure.home_teaching:
            text += "，送教上门"
    if closure.note:
        text += f"。{closure.note}"
    return text[:300]


def write_off_choices() -> list[tuple[str, str]]:
    return list(WRITE_OFF_REASONS.items())
