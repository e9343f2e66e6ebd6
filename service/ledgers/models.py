"""The 适龄儿童台账, the bureau's term dates and deadline rules, and what was done against them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, utcnow
from service.db.sealed import Sealed, SealedRow
from service.units.models import Unit


class ChildEntry(SealedRow, Base):
    """One child the school must enrol this year (适龄儿童台账, Suiyang 二): from its first-grade
    roster, with its 报到 and 随迁子女 marked. A child who never reports becomes a 失学 case. The
    身份证号, address and guardian's phone are sealed; a child is unique in its school and year by
    the ID number's blind index."""

    __tablename__ = "child_entries"
    __table_args__ = (UniqueConstraint("school_id", "year", "id_number_bidx", name="uq_child_entry"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: The year of the autumn intake (入学年份).
    year: Mapped[int]
    row: Mapped[int]
    student_name: Mapped[str] = mapped_column(String(30))
    id_number = Sealed[str](index="id_number")
    id_number_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    sex: Mapped[str | None] = mapped_column(String(2))
    birth_date: Mapped[dt.date | None]
    migrant: Mapped[bool] = mapped_column(default=False)
    home_address = Sealed[str | None]()
    home_address_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    guardian_name: Mapped[str | None] = mapped_column(String(30))
    guardian_phone = Sealed[str | None]()
    guardian_phone_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    reported_on: Mapped[dt.date | None]
    #: The 失学 case opened for a child who did not report.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80))
    #: When its personal data was removed (retention): it still counts in that year's figures.
    erased_at: Mapped[dt.datetime | None]

    school: Mapped[Unit] = relationship(lazy="joined")


class DeadlineRule(Base):
    """A statutory deadline as data: a bureau changes its day without code. A bureau has a row only
    for a rule it changed; the others follow ``deadlines.DEFAULT_RULES``."""

    __tablename__ = "deadline_rules"
    __table_args__ = (UniqueConstraint("bureau_id", "key", name="uq_deadline_rule"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    key: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(60))
    #: The bureau's own notice and article the rule rests on, as the bureau entered it; empty
    #: until it does (the page then shows the seed notice as another place's: ``reference``).
    source: Mapped[str] = mapped_column(String(60), default="")
    #: case_registered, case_dropped, failed_attempts, notice_expired, term, case_monthly,
    #: case_weekly, weekly, monthly or quarterly (``deadlines.ANCHORS``)
    anchor: Mapped[str] = mapped_column(String(16))
    #: Days after a case's registration (case_registered) or dropout (case_dropped), the failed 劝返
    #: before a 联合劝返 (failed_attempts), days after a notice's report-by date (notice_expired),
    #: days after term start (term), days between records (case_*), the weekday 1–7 (weekly), the
    #: day of the month (monthly) or days before the quarter's end (quarterly).
    days: Mapped[int]
    #: How many days before its due day an item shows (items of a term show from the term's start,
    #: a case's steps from the day they apply).
    lead_days: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80))

    #: Where the default came from, shown as another place's notice while ``source`` is empty (set
    #: by ``Deadlines.rules`` for the bureau's region; not stored).
    reference = ""

    @property
    def cited(self) -> str:
        """What an item of this rule says it rests on: the bureau's source, or the marked reference."""
        return self.source or self.reference


class BureauBasis(Base):
    """A bureau's own basis: its region (which seed notices it is shown first as references), its
    own notice, and its 巩固率 target with the passage that sets it."""

    __tablename__ = "bureau_basis"

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(ForeignKey("units.id"), unique=True)
    #: Province and city, e.g. 山东省济南市.
    region: Mapped[str] = mapped_column(String(30), default="")
    #: The bureau's own 控辍保学 notice (title, number, date), cited by its rules.
    notice: Mapped[str] = mapped_column(String(200), default="")
    #: The 巩固率 target (0.99 = 99 %) and the passage that sets it.
    target: Mapped[float] = mapped_column(default=0.99)
    target_source: Mapped[str] = mapped_column(String(60), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80))


class RuleDone(Base):
    """A unit recorded that it did what a rule asks for one period (a term, a week, a quarter)."""

    __tablename__ = "rule_done"
    __table_args__ = (UniqueConstraint("unit_id", "rule_key", "period", name="uq_rule_done"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    rule_key: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))
    done_on: Mapped[dt.date]
    note: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReportVersion(Base):
    """One signed version of a unit's 控辍保学动态管理月报表 for a period of the monthly campaign: the
    figures made from the data (a school's) or summed from its units' signed versions (an
    office's). A correction is a new version; the one it replaces stays, marked superseded."""

    __tablename__ = "report_versions"
    __table_args__ = (UniqueConstraint("unit_id", "period", "version", name="uq_report_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: The campaign's period (``2027-10``: filed in October, counting September).
    period: Mapped[str] = mapped_column(String(16))
    version: Mapped[int]
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), index=True)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    actor: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    unit: Mapped[Unit] = relationship(lazy="joined")


class SchoolRoll(Base):
    """How many pupils a school has on its roll (在籍学生数) in a school year: what the 巩固率 is
    reckoned against (Qiaocheng: 九年义务教育巩固率不低于99%)."""

    __tablename__ = "school_rolls"
    __table_args__ = (UniqueConstraint("school_id", "year", name="uq_school_roll"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: The school year by the year it starts in (2027 for 2027–2028).
    year: Mapped[int]
    students: Mapped[int]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80))


class ColumnMapping(Base):
    """How a bureau's platform sheets name their columns, saved once (the mapping is data): our
    field key -> the header the platform writes."""

    __tablename__ = "column_mappings"
    __table_args__ = (UniqueConstraint("bureau_id", "kind", name="uq_column_mapping"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: suspected_import: the 疑似辍学 list the 全国基础教育管理服务平台 sends down.
    kind: Mapped[str] = mapped_column(String(32))
    mapping: Mapped[dict[str, str]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80))


class SourceList(Base):
    """One dated version of a list a bureau receives (四查三比对): 公安户籍, the 学籍 export, the
    schools' enrolment, 脱贫户/低保, 残疾儿童, the platform's 疑似辍学. A new upload is a new version;
    the comparison reads the latest of each kind (``ledgers.compare``)."""

    __tablename__ = "source_lists"
    __table_args__ = (UniqueConstraint("bureau_id", "kind", "version", name="uq_source_list"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: huji, xueji, enrolled, poverty, disabled or platform (``compare.LIST_KINDS``).
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int]
    filename: Mapped[str] = mapped_column(String(128))
    children: Mapped[int]
    #: Rows whose 身份证号 fails its check digit (kept, never matched: each is a finding).
    invalid_ids: Mapped[int] = mapped_column(default=0)
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    uploaded_by: Mapped[str] = mapped_column(String(80))


class SourceChild(SealedRow, Base):
    """One child of a source list: the 身份证号 sealed with its blind index (the comparison matches
    by it alone), the name, birth date and where the list places the child."""

    __tablename__ = "source_children"

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("source_lists.id"), index=True)
    row: Mapped[int]
    name: Mapped[str] = mapped_column(String(30))
    id_number = Sealed[str](index="id_number")
    id_number_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    #: False when the 身份证号 fails the check (a digit mistyped or transposed).
    id_valid: Mapped[bool] = mapped_column(default=True)
    birth_date: Mapped[dt.date | None]
    school_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    #: 乡镇（街道） and 村（社区） as the list writes them.
    township: Mapped[str] = mapped_column(String(30), default="")
    village: Mapped[str] = mapped_column(String(30), default="")


class CompareRun(Base):
    """One run of the comparison for a bureau: which list versions it read, what it found."""

    __tablename__ = "compare_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: upload, manual or schedule
    trigger: Mapped[str] = mapped_column(String(16))
    #: kind -> source_lists.id of the versions read.
    lists: Mapped[dict[str, int]] = mapped_column(JSON)
    #: rule -> findings the run found (new or still there).
    counts: Mapped[dict[str, int]] = mapped_column(JSON)
    new_findings: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seconds: Mapped[float] = mapped_column(default=0.0)
    actor: Mapped[str] = mapped_column(String(80))


class Finding(SealedRow, Base):
    """A child the comparison found who should be at school and may not be, routed to a school (or
    to the 街道教育办 of its 乡镇, or the bureau). Its identity is (rule, blind index): a later run
    finds the same finding again and never reopens one that was answered. Closed only by an
    answer with its reason (and evidence where there is some)."""

    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("bureau_id", "rule", "id_number_bidx", name="uq_finding"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: The rule that found it (``compare.RULES``).
    rule: Mapped[str] = mapped_column(String(16))
    #: Who must answer: the school, else the 街道教育办 of the 乡镇, else the bureau.
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    township: Mapped[str] = mapped_column(String(30), default="")
    village: Mapped[str] = mapped_column(String(30), default="")
    student_name: Mapped[str] = mapped_column(String(30))
    id_number = Sealed[str](index="id_number")
    id_number_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_bidx: Mapped[str] = mapped_column(String(64))
    birth_date: Mapped[dt.date | None]
    #: The lists the child is in (``compare.SOURCE_TITLES`` keys).
    sources: Mapped[list[str]] = mapped_column(JSON)
    #: open or answered
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    #: Whether the latest run found it again (an open finding the data no longer shows stays open).
    current: Mapped[bool] = mapped_column(default=True)
    first_run_id: Mapped[int] = mapped_column(ForeignKey("compare_runs.id"))
    last_run_id: Mapped[int] = mapped_column(ForeignKey("compare_runs.id"))
    found_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_found_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: transfer, abroad, death, elsewhere, at_school or other (``compare.ANSWERS``).
    answer: Mapped[str | None] = mapped_column(String(16))
    answer_note: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[dt.datetime | None]
    answered_by: Mapped[str | None] = mapped_column(String(80))
    evidence_filename: Mapped[str | None] = mapped_column(String(128))
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))

    unit: Mapped[Unit] = relationship(lazy="joined", foreign_keys=[unit_id])
