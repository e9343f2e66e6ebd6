from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, utcnow
from service.db.sealed import Sealed, SealedRow
from service.units.models import Unit


class CaseStatus(StrEnum):
    SUSPECTED = "suspected"  # 疑似辍学
    DROPPED = "dropped"  # 辍学
    PERSUADING = "persuading"  # 劝返中
    RETURNED = "returned"  # 已复学
    DEFERRED = "deferred"  # 延缓入学/休学
    WRITTEN_OFF = "written_off"  # 核销


STATUS_TITLES = {
    CaseStatus.SUSPECTED: "疑似辍学",
    CaseStatus.DROPPED: "辍学",
    CaseStatus.PERSUADING: "劝返中",
    CaseStatus.RETURNED: "已复学",
    CaseStatus.DEFERRED: "延缓入学/休学",
    CaseStatus.WRITTEN_OFF: "核销",
}
OPEN_STATUSES = {CaseStatus.SUSPECTED, CaseStatus.DROPPED, CaseStatus.PERSUADING}

#: 非真实性失学辍学 that may be written off, from the Zaozhuang notice, annex 1 (一).
WRITE_OFF_REASONS = {
    "age_mismatch": "年龄不符",
    "duplicate_registration": "户籍重复（含迁出未注销）",
    "missing": "失踪失联",
    "deceased": "实际死亡",
    "unable_to_learn": "因身体原因不具备学习条件",
    "enrolled_elsewhere": "实际就读无学籍",
    "deferred_for_illness": "因特殊原因申请延缓入学（正常休学）",
}

#: The evidence annex 1 asks for with each write-off reason (its 台账 line).
WRITE_OFF_EVIDENCE = {
    "age_mismatch": "户口登记机关更正后的户口信息",
    "duplicate_registration": "户口登记机关注销重复户籍的证明",
    "missing": "公安派出所出具的失踪失联确认说明",
    "deceased": "死亡医学证明、火化证明或户口注销证明",
    "unable_to_learn": "残疾人教育专家委员会鉴定证明（专家签字、部门盖章）",
    "enrolled_elsewhere": "正式学籍号、身份证号等学籍信息",
    "deferred_for_illness": "监护人书面申请、指定医疗机构检查证明和批准意见",
}

#: 辍学原因 as the registration form lists them.
REASONS = ("厌学", "学习困难", "家庭经济困难", "身体原因", "外出务工", "早婚早育", "信教", "家长不送", "其他")
#: Notices a case gets one at a time (a roster issues others in bulk: ``rosters.models.ROSTER_KINDS``).
CASE_NOTICE_KINDS = ("return_notice", "deadline_return_notice")

ATTEMPT_METHODS = ("家访", "电话", "约谈", "联合劝返", "送教上门", "司法督促", "其他")
#: The 劝返 the school, the 乡镇 and the village do together (Suiyang 三).
JOINT = "联合劝返"
KEY_GROUPS = ("留守儿童", "随迁子女", "残疾儿童", "家庭经济困难", "建档立卡", "孤儿或事实无人抚养")


class Case(SealedRow, Base):
    """One student's dropout case: who, where, why, and where it stands. The 身份证号 and the home
    address are sealed (``service.db.sealed``); the ID number is found by its blind index."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    student_name: Mapped[str] = mapped_column(String(30))
    id_number = Sealed[str](index="id_number")
    id_number_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    student_number: Mapped[str | None] = mapped_column(String(24))
    sex: Mapped[str] = mapped_column(String(2))
    ethnicity: Mapped[str | None] = mapped_column(String(10))
    birth_date: Mapped[dt.date]
    grade: Mapped[str] = mapped_column(String(16))
    class_name: Mapped[str | None] = mapped_column(String(16))
    home_address = Sealed[str | None]()
    home_address_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    dropout_date: Mapped[dt.date | None]
    #: The day the child became 疑似辍学 and the day 辍学 (as entered: a case entered late still
    #: counts in the period it belongs to); None when the case never was.
    suspected_on: Mapped[dt.date | None]
    dropped_on: Mapped[dt.date | None]
    dropout_reason: Mapped[str | None] = mapped_column(String(16))
    reason_detail: Mapped[str | None] = mapped_column(String(500))
    measures: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.SUSPECTED)
    #: 失学: an age-eligible child who never enrolled (应入未入), as opposed to one who left school.
    never_enrolled: Mapped[bool] = mapped_column(default=False)
    write_off_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]
    #: When its personal data was removed (retention, or a guardian's request): the row then keeps
    #: only what the figures count (school, sex, grade, birth year, status, dates, reasons).
    erased_at: Mapped[dt.datetime | None]

    school: Mapped[Unit] = relationship(lazy="joined")
    closure: Mapped[CaseClosure | None] = relationship(lazy="selectin", uselist=False)
    guardians: Mapped[list[Guardian]] = relationship(order_by="Guardian.id", lazy="selectin")
    attempts: Mapped[list[Attempt]] = relationship(order_by="Attempt.date, Attempt.id", lazy="selectin")
    home_visits: Mapped[list[HomeVisit]] = relationship(order_by="HomeVisit.date, HomeVisit.id", lazy="selectin")

    @property
    def grade_class(self) -> str:
        return f"{self.grade}{self.class_name or ''}"

    @property
    def listed_on(self) -> dt.date:
        """The day the child entered a ledger (疑似辍学 or 辍学, whichever came first)."""
        days = [d for d in (self.suspected_on, self.dropped_on) if d is not None]
        return min(days) if days else self.created_at.date()

    def open_on(self, day: dt.date) -> bool:
        """Whether the case stood on a ledger at the end of ``day`` (listed, not yet 销号)."""
        return self.listed_on <= day and (self.closure is None or self.closure.date > day)

    def status_on(self, day: dt.date) -> CaseStatus:
        """疑似辍学 or 辍学 at the end of ``day`` (for a case open then)."""
        if self.dropped_on is not None and self.dropped_on <= day:
            return CaseStatus.DROPPED
        return CaseStatus.SUSPECTED


#: How a case leaves its ledger (销号, Licheng 三, Zaozhuang 三.(四)): the only three acts.
CLOSURE_KINDS = {
    CaseStatus.RETURNED: "已复学",
    CaseStatus.WRITTEN_OFF: "核销",
    CaseStatus.DEFERRED: "延缓入学/休学",
}

#: What a 延缓入学/休学 of a student who refuses to come back rests on (Suiyang 三).
DEFERRAL_BASES = {
    "joint_persuasion": "经联合劝返三次以上仍拒不返校",
    "court_ruling": "经司法部门判决裁定监护人已履行法定义务",
    "disability_assessment": "经残疾人教育专家委员会评估不具备学习条件",
}


class CaseClosure(Base):
    """The recorded act that took a case off its ledger (销号): who, when, on what grounds."""

    __tablename__ = "case_closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    #: returned, written_off or deferred
    kind: Mapped[str] = mapped_column(String(16))
    #: The status the case had: a 疑似辍学 entry leaves the 疑似辍学台账, the others the 辍学台账.
    from_status: Mapped[str] = mapped_column(String(16))
    #: The day back at school, the day of the write-off, or the day of the approval.
    date: Mapped[dt.date]
    #: A WRITE_OFF_REASONS or DEFERRAL_BASES key.
    reason: Mapped[str | None] = mapped_column(String(32))
    #: The approving authority of a deferral (人民政府、乡村振兴工作协调机构、残联…).
    authority: Mapped[str | None] = mapped_column(String(60))
    note: Mapped[str | None] = mapped_column(String(200))
    #: A deferred child taught at home (送教上门, county plan 二.(三).4): its school owes a visit a week.
    home_teaching: Mapped[bool] = mapped_column(default=False)
    actor: Mapped[str] = mapped_column(String(80))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HomeVisit(Base):
    """One 送教上门 visit to a deferred child taught at home (county plan 二.(三).4: 明确送教人员、送教内容、
    送教时间, at least once a week), with its evidence (a photo or a signed sheet) kept in the archive."""

    __tablename__ = "home_visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    date: Mapped[dt.date]
    teachers: Mapped[str] = mapped_column(String(60))
    content: Mapped[str] = mapped_column(String(200))
    evidence_filename: Mapped[str] = mapped_column(String(128))
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    evidence_size: Mapped[int]
    actor: Mapped[str] = mapped_column(String(80))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Guardian(SealedRow, Base):
    """A child's guardian; the phone and the address are sealed."""

    __tablename__ = "guardians"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    name: Mapped[str] = mapped_column(String(30))
    relation: Mapped[str] = mapped_column(String(10))
    phone = Sealed[str]()
    phone_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    address = Sealed[str | None]()
    address_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)


class Attempt(Base):
    """One 劝返 attempt (three细三实: reason, process and material recorded in detail)."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    date: Mapped[dt.date]
    staff: Mapped[str] = mapped_column(String(60))
    method: Mapped[str] = mapped_column(String(10))
    #: Whether the student came back because of it.
    succeeded: Mapped[bool] = mapped_column(default=False)
    result: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class CaseFile(Base):
    """Evidence (核销 papers, recordings) and attempt attachments, stored in the archive by hash."""

    __tablename__ = "case_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"))
    purpose: Mapped[str] = mapped_column(String(16))  # evidence | attachment
    filename: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
