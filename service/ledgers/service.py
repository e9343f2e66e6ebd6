"""The 三本台账 (Suiyang 二) made from the data, live, for a school, an office or the bureau.

- 适龄儿童台账: every child of the school's first-grade roster, with 报到 and 随迁子女 marked; a
  child who never reports is opened as a 失学 case (Qiaocheng 五: 未报到的学生登记造册).
- 疑似辍学学生台账 (with 失学): cases still 疑似辍学.
- 辍学学生台账: cases confirmed as 辍学 (辍学 or 劝返中).

An entry leaves the suspected or dropout ledger only by a 销号 act (``Cases.returned``,
``write_off``, ``defer``): it then shows in the ledger's 已销号 part with the act. Every row names
who changed it last and when (三细三实), and an open entry not updated for a month is flagged
(台账每月维护更新一次, Licheng 三).
"""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.audit.models import AuditEvent
from service.audit.service import mask_id_number, mask_phone, record
from service.campaigns.models import TermStart
from service.campaigns.service import Campaigns
from service.cases.checks import check_id, parse_date
from service.cases.errors import CaseInvalid
from service.cases.models import (
    CLOSURE_KINDS,
    DEFERRAL_BASES,
    STATUS_TITLES,
    WRITE_OFF_REASONS,
    Case,
    CaseClosure,
    CaseStatus,
)
from service.cases.service import CaseIn, Cases, GuardianIn
from service.db.sealed import index_of
from service.errors import NotFoundForUser
from service.ledgers.compare import Compare
from service.ledgers.deadlines import Deadlines, DueItem
from service.ledgers.district import District, DistrictFigures
from service.ledgers.excel import fit_columns
from service.ledgers.exchange import Exchange
from service.ledgers.models import ChildEntry
from service.ledgers.reports import Reports, period_kind, period_text
from service.rosters.errors import RosterInvalid
from service.rosters.models import Roster
from service.rosters.sheet import RosterRow
from service.sheets import Column, UnreadableSheet, read_sheet, row_error
from service.sheets.cells import safe_cell
from service.units.models import Unit, UnitType
from service.units.service import bureau_of, visible_unit_ids

LEDGERS = {"children": "适龄儿童台账", "suspected": "疑似辍学学生台账", "dropouts": "辍学学生台账"}
#: The school keeps its 适龄儿童台账: its office and the bureau read it and urge, they do not write it.
LEDGER_OWN = "适龄儿童台账由学校自己填报：上级单位只能查看和督促，不能代为修改。"
#: Which statuses a case has while on each ledger, and which it had when it left it.
ON_LEDGER = {
    "suspected": (CaseStatus.SUSPECTED,),
    "dropouts": (CaseStatus.DROPPED, CaseStatus.PERSUADING),
}

CHILD_COLUMNS = (
    Column("school", ("学校代码", "学校"), fill_down=True, kind="code"),
    Column("student_name", ("儿童姓名", "学生姓名", "姓名"), required=True),
    Column("id_number", ("身份证号", "身份证号码", "公民身份号码"), required=True, kind="id_number"),
    Column("sex", ("性别",)),
    Column("birth_date", ("出生日期",), kind="date"),
    Column("migrant", ("随迁子女", "是否随迁子女")),
    Column("home_address", ("家庭住址", "户籍地址", "住址")),
    Column("guardian_name", ("监护人姓名", "监护人", "家长姓名")),
    Column("guardian_phone", ("监护人电话", "联系电话", "家长电话"), kind="phone"),
)
YES = {"是", "Y", "y", "yes", "1", "√", "✓", "随迁"}


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (the last day of a shorter month)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def school_year_start(today: dt.date) -> dt.date:
    """September 1st of the current school year (学年)."""
    return dt.date(today.year if today.month >= 9 else today.year - 1, 9, 1)


@dataclass
class Change:
    at: dt.datetime
    actor: str
    what: str


@dataclass
class LedgerRow:
    case_id: int
    school_id: int
    school: str
    student_name: str
    id_number: str
    sex: str
    grade_class: str
    key_groups: list[str]
    never_enrolled: bool
    status: str
    status_title: str
    dropout_date: dt.date | None
    dropout_reason: str | None
    attempts: int
    last_attempt: dt.date | None
    updated_at: dt.datetime
    stale: bool
    changed: Change | None
    closure: dict[str, Any] | None = None


@dataclass
class ChildRow:
    id: int
    school_id: int
    school: str
    row: int
    student_name: str
    id_number: str
    sex: str | None
    birth_date: dt.date | None
    migrant: bool
    guardian_name: str | None
    guardian_phone: str | None
    reported_on: dt.date | None
    case_id: int | None
    updated_at: dt.datetime
    updated_by: str


@dataclass
class Ledger:
    key: str
    title: str
    unit: Unit
    rows: list[LedgerRow] = field(default_factory=list)
    closed: list[LedgerRow] = field(default_factory=list)
    children: list[ChildRow] = field(default_factory=list)

    @property
    def stale(self) -> int:
        return sum(1 for r in self.rows if r.stale)


def describe(event: AuditEvent) -> str:
    """An audit event of a case in words."""
    d = event.detail or {}

    def title(status: object) -> str:
        try:
            return STATUS_TITLES[CaseStatus(str(status))]
        except ValueError:
            return str(status)

    if event.action == "case.create":
        return f"登记为{title(d.get('status'))}"
    if event.action == "case.status":
        text = f"{title(d.get('from'))}→{title(d.get('to'))}"
        extra = d.get("reason_title") or d.get("basis") or ""
        return f"{text}（{extra}）" if extra else text
    if event.action == "case.attempt":
        return f"劝返（{d.get('method', '')}，{d.get('date', '')}）{'，已复学' if d.get('succeeded') else ''}"
    if event.action == "case.home_visit":
        return f"送教上门（{d.get('date', '')}）"
    if event.action == "child.report":
        return "已报到"
    # an action this list does not know yet is named as an action, never as its code
    return "其他操作"


def _birth(id_number: str) -> dt.date | None:
    from stdnum.cn import ric

    try:
        return ric.get_birth_date(id_number)
    except ValueError:
        return None


class Ledgers:
    def __init__(self, cases: Cases, campaigns: Campaigns, tz: str, now: Callable[[], dt.datetime]) -> None:
        self.cases = cases
        self.campaigns = campaigns
        self.tz = zoneinfo.ZoneInfo(tz)
        self.now = now
        self.deadlines = Deadlines(now, self.today, self.tz)
        self.reports = Reports(cases.archive, self.tz, now)
        self.district = DistrictFigures(
            self.deadlines.items,
            now,
            self.today,
            self.tz,
            target=lambda session, bureau: (
                self.deadlines.basis(session, bureau).target,
                self.deadlines.target_source(session, bureau),
            ),
        )
        self.exchange = Exchange(cases, now)
        self.compare = Compare(self.exchange, cases.archive, self.tz, now)

    def today(self) -> dt.date:
        return self.now().astimezone(self.tz).date()

    # --- what is due --------------------------------------------------------------------------

    def due(self, session: Session, scope: Scope, today: dt.date | None = None) -> list[DueItem]:
        """What the user's units owe (``Deadlines.due``: every due item comes from the one engine),
        and for a school the signed reports its data no longer matches (a correction to sign)."""
        items = self.deadlines.due(session, scope, today)
        if scope.unit.type == UnitType.SCHOOL:
            today = today or self.today()
            for assignment, changes in self.reports.corrections(session, scope.unit):
                kind = period_kind(assignment.period)
                shown = "；".join(changes[:3]) + ("……" if len(changes) > 3 else "")
                items.append(
                    DueItem(
                        "report_correction",
                        f"{period_text(assignment.period).removesuffix('报送')}的{kind.title}已签章后数据有变化"
                        f"（{shown}），应核对后签章更正",
                        today,
                        False,
                        scope.unit.id,
                        scope.unit.name,
                        period=assignment.period,
                    )
                )
        return items

    def set_term(self, session: Session, scope: Scope, name: str, starts_on: dt.date | None) -> TermStart:
        """The bureau enters a term's start date; a term campaign opens the term's period at once
        if it has started (a later one opens on its day, by the ``campaigns.open_periods`` schedule)."""
        term = self.deadlines.set_term(session, scope, name, starts_on)
        self.campaigns.refresh_recurring(session)
        return term

    # --- whose ledger --------------------------------------------------------------------------

    def unit_for(self, session: Session, scope: Scope, unit_id: int | None) -> Unit:
        """The unit whose ledger the user asks for: their own by default, or one they see."""
        if unit_id is None:
            if scope.unit.id not in scope.units:  # an administrator sees no ledger, not even its bureau's
                raise NotFoundForUser("未找到该单位。")
            return scope.unit
        unit = session.get(Unit, unit_id)
        if unit is None or unit.id not in scope.units:
            raise NotFoundForUser("未找到该单位。")
        return unit

    def units_for(self, session: Session, scope: Scope) -> list[Unit]:
        """The units whose ledgers and figures the user may open: their own first, then the
        offices below it, then the schools."""
        units = list(session.scalars(select(Unit).where(Unit.id.in_(scope.units)).order_by(Unit.id)))
        return sorted(units, key=lambda u: (u.id != scope.unit.id, u.type != UnitType.OFFICE, u.id))

    def ledger_for(
        self, session: Session, scope: Scope, key: str, unit_id: int | None, year: int | None = None
    ) -> Ledger:
        """A ledger of a unit the user sees (their own by default), the 适龄儿童台账 of a school
        year (the current one by default)."""
        target = self.unit_for(session, scope, unit_id)
        return self.ledger(session, target, key, year=year or school_year_start(self.today()).year)

    def district_for(self, session: Session, scope: Scope, unit_id: int | None) -> District:
        """The district figures of a unit the user sees, over the current school year and term."""
        target = self.unit_for(session, scope, unit_id)
        today = self.today()
        term = self.deadlines.term_on(session, bureau_of(target), today)
        return self.district.figures(session, target, school_year_start(today).year, term.starts_on if term else None)

    def schools_of(self, session: Session, unit: Unit) -> set[int]:
        ids = visible_unit_ids(session, unit)
        return set(session.scalars(select(Unit.id).where(Unit.id.in_(ids), Unit.type == UnitType.SCHOOL)))

    # --- history -------------------------------------------------------------------------------

    def changes(self, session: Session, case_ids: Sequence[int]) -> dict[int, list[Change]]:
        """Who changed what and when, per case, oldest first (from the audit log)."""
        out: dict[int, list[Change]] = {i: [] for i in case_ids}
        if not case_ids:
            return out
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.object_type == "case", AuditEvent.object_id.in_([str(i) for i in case_ids]))
            .order_by(AuditEvent.id)
        )
        for e in events:
            out[int(e.object_id)].append(Change(e.at, e.actor, describe(e)))
        return out

    # --- the suspected and dropout ledgers -----------------------------------------------------

    def _row(self, case: Case, changes: list[Change], today: dt.date) -> LedgerRow:
        last_attempt = max((a.date for a in case.attempts), default=None)
        updated = case.updated_at
        open_ = case.closure is None
        closure = None
        if case.closure is not None:
            c = case.closure
            reason = WRITE_OFF_REASONS.get(c.reason or "") or DEFERRAL_BASES.get(c.reason or "") or ""
            closure = {
                "kind": c.kind,
                "title": CLOSURE_KINDS[CaseStatus(c.kind)],
                "date": c.date,
                "reason": reason,
                "authority": c.authority,
                "actor": c.actor,
            }
        return LedgerRow(
            case_id=case.id,
            school_id=case.school_id,
            school=case.school.name,
            student_name=case.student_name,
            id_number=case.id_number,
            sex=case.sex,
            grade_class=case.grade_class,
            key_groups=list(case.key_groups or []),
            never_enrolled=case.never_enrolled,
            status=case.status,
            status_title=("失学" if case.never_enrolled and case.status == CaseStatus.SUSPECTED else "")
            or STATUS_TITLES[CaseStatus(case.status)],
            dropout_date=case.dropout_date,
            dropout_reason=case.dropout_reason,
            attempts=len(case.attempts),
            last_attempt=last_attempt,
            updated_at=updated,
            stale=open_ and add_months(updated.astimezone(self.tz).date(), 1) < today,
            changed=changes[-1] if changes else None,
            closure=closure,
        )

    def ledger(
        self, session: Session, unit: Unit, key: str, *, since: dt.date | None = None, year: int | None = None
    ) -> Ledger:
        """One of the three ledgers of a unit's schools. The suspected and dropout ledgers list
        their open entries, then those that left by 销号 since ``since`` (the school year's start)."""
        if key not in LEDGERS:
            raise NotFoundForUser("没有这种台账。")
        today = self.today()
        schools = self.schools_of(session, unit)
        out = Ledger(key, LEDGERS[key], unit)
        if key == "children":
            out.children = self.children(session, schools, year or school_year_start(today).year)
            return out
        statuses = [s.value for s in ON_LEDGER[key]]
        open_cases = list(
            session.scalars(
                select(Case)
                .where(Case.school_id.in_(schools), Case.status.in_(statuses))
                .order_by(Case.school_id, Case.id)
            )
        )
        since = since or school_year_start(today)
        closed_cases = list(
            session.scalars(
                select(Case)
                .join(CaseClosure, CaseClosure.case_id == Case.id)
                .where(
                    Case.school_id.in_(schools),
                    CaseClosure.from_status.in_(statuses),
                    CaseClosure.date >= since,
                )
                .order_by(CaseClosure.date, Case.id)
            )
        )
        changes = self.changes(session, [c.id for c in open_cases + closed_cases])
        out.rows = [self._row(c, changes[c.id], today) for c in open_cases]
        out.closed = [self._row(c, changes[c.id], today) for c in closed_cases]
        return out

    # --- 适龄儿童台账 --------------------------------------------------------------------------

    def children(self, session: Session, schools: set[int], year: int) -> list[ChildRow]:
        entries = session.scalars(
            select(ChildEntry)
            .where(ChildEntry.school_id.in_(schools), ChildEntry.year == year)
            .order_by(ChildEntry.school_id, ChildEntry.row, ChildEntry.id)
        )
        return [
            ChildRow(
                id=e.id,
                school_id=e.school_id,
                school=e.school.name,
                row=e.row,
                student_name=e.student_name,
                id_number=e.id_number,
                sex=e.sex,
                birth_date=e.birth_date,
                migrant=e.migrant,
                guardian_name=e.guardian_name,
                guardian_phone=e.guardian_phone,
                reported_on=e.reported_on,
                case_id=e.case_id,
                updated_at=e.updated_at,
                updated_by=e.updated_by,
            )
            for e in entries
        ]

    def children_from_roster(self, session: Session, scope: Scope, roster: Roster, rows: list[RosterRow]) -> int:
        """A first-grade 入学通知书 roster feeds the schools' 适龄儿童台账 for the year of its report-by
        date: the same children with the same columns (and 随迁子女 where the sheet marks it), so the
        school imports them once. Rows of another grade (a middle school's 七年级) and children
        already on the ledger are left alone. Returns how many were added."""
        if roster.kind != "enrollment_notice":
            return 0
        year = roster.report_by.year  # the autumn intake the notices are for
        now = self.now()
        by_school: dict[int, list[RosterRow]] = {}
        for r in rows:
            grade = (r.values.get("grade") or "").strip()
            if r.school is not None and (not grade or grade.startswith(("一", "1"))):
                by_school.setdefault(r.school.id, []).append(r)
        added = 0
        for school_id, members in by_school.items():
            # children already on the ledger, by the blind index of their 身份证号
            existing = set(
                session.scalars(
                    select(ChildEntry.id_number_bidx).where(ChildEntry.school_id == school_id, ChildEntry.year == year)
                )
            )
            for r in members:
                v = r.values
                bidx = index_of(session, v["id_number"], "id_number")
                if bidx in existing:
                    continue
                existing.add(bidx)
                session.add(
                    ChildEntry(
                        school_id=school_id,
                        year=year,
                        row=r.row,
                        student_name=v["student_name"][:30],
                        id_number=v["id_number"],
                        sex=v.get("sex") or None,
                        birth_date=parse_date(v.get("birth_date") or "") or _birth(v["id_number"]),
                        migrant=(v.get("migrant") or "").strip() in YES,
                        home_address=(v.get("home_address") or "")[:100] or None,
                        guardian_name=(v.get("guardian_name") or "")[:30] or None,
                        guardian_phone=(v.get("guardian_phone") or "")[:20] or None,
                        created_at=now,
                        updated_at=now,
                        updated_by=scope.actor.label[:80],
                    )
                )
                added += 1
        if added:
            session.flush()
            record(session, scope.actor, "children.from_roster", "roster", roster.id, now, year=year, added=added)
        return added

    def import_children(
        self, session: Session, scope: Scope, school: Unit, year: int, data: bytes, filename: str
    ) -> tuple[int, int]:
        """A school's first-grade roster into its 适龄儿童台账. Every bad row is reported and nothing
        is written while any is bad; a child already on the ledger is left as it is. Returns
        (added, already there)."""
        if school.id not in scope.units or school.type != UnitType.SCHOOL:
            raise NotFoundForUser("未找到该学校。")
        scope.require_own(school, LEDGER_OWN)
        try:
            sheet = read_sheet(data, filename, CHILD_COLUMNS)
        except UnreadableSheet as exc:
            raise RosterInvalid(exc.message, details=exc.details) from exc
        errors: list[dict[str, Any]] = [p for r in sheet.rows for p in r.problems]
        seen: dict[str, int] = {}
        good = []
        for line in sheet.rows:
            v = line.values
            bad = bool(line.problems)
            if v["school"] and v["school"] not in (school.code, school.name):
                errors.append(row_error(line.number, "学校代码", v["school"], f"不是本校（{school.name}）的学生"))
                bad = True
            if not v["student_name"]:
                errors.append(row_error(line.number, "儿童姓名", "", "必须填写"))
                bad = True
            birth = parse_date(v["birth_date"]) if v["birth_date"] else None
            sex = v["sex"] or None
            if sex and sex not in ("男", "女"):
                errors.append(row_error(line.number, "性别", sex, "应为 男 或 女"))
                bad = True
                sex = None
            if not line.problems:
                for column, message in check_id(v["id_number"], sex, birth):
                    errors.append(row_error(line.number, column, v["id_number"], message))
                    bad = True
            if v["id_number"] in seen:
                errors.append(
                    row_error(line.number, "身份证号", v["id_number"], f"与第 {seen[v['id_number']]} 行是同一名儿童")
                )
                bad = True
            seen.setdefault(v["id_number"], line.number)
            if not bad:
                good.append((line.number, v, birth, sex))
        if not sheet.rows:
            raise RosterInvalid("名单中没有儿童。")
        if errors:
            raise RosterInvalid(
                f"名单中有 {len(errors)} 处错误，未导入任何儿童。请按逐行列出的原因修改后重新上传。",
                details={"errors": errors},
            )
        existing = set(
            session.scalars(
                select(ChildEntry.id_number_bidx).where(ChildEntry.school_id == school.id, ChildEntry.year == year)
            )
        )
        now = self.now()
        added = 0
        for number, v, birth, sex in good:
            if index_of(session, v["id_number"], "id_number") in existing:
                continue
            session.add(
                ChildEntry(
                    school_id=school.id,
                    year=year,
                    row=number,
                    student_name=v["student_name"][:30],
                    id_number=v["id_number"],
                    sex=sex,
                    birth_date=birth,
                    migrant=v["migrant"].strip() in YES,
                    home_address=v["home_address"][:100] or None,
                    guardian_name=v["guardian_name"][:30] or None,
                    guardian_phone=v["guardian_phone"][:20] or None,
                    created_at=now,
                    updated_at=now,
                    updated_by=scope.actor.label[:80],
                )
            )
            added += 1
        session.flush()
        record(
            session, scope.actor, "children.import", "unit", school.id, now, year=year, added=added, filename=filename
        )
        return added, len(good) - added

    def child(self, session: Session, scope: Scope, entry_id: int) -> ChildEntry:
        entry = session.get(ChildEntry, entry_id) if 0 < entry_id < 2**63 else None
        if entry is None or entry.school_id not in scope.units:
            raise NotFoundForUser("未找到该儿童。")
        return entry

    def report_child(self, session: Session, scope: Scope, entry: ChildEntry, day: dt.date | None) -> None:
        """The child reported (报到) at school on ``day``."""
        scope.require_own(entry.school, LEDGER_OWN)
        if day is None:
            raise CaseInvalid("请填写报到日期。")
        if day > self.today():
            raise CaseInvalid("报到日期不能晚于今天。")
        entry.reported_on = day
        entry.updated_at = self.now()
        entry.updated_by = scope.actor.label[:80]
        record(session, scope.actor, "child.report", "child", entry.id, self.now(), date=day.isoformat())
        session.flush()

    def mark_migrant(self, session: Session, scope: Scope, entry: ChildEntry, migrant: bool) -> None:
        scope.require_own(entry.school, LEDGER_OWN)
        entry.migrant = migrant
        entry.updated_at = self.now()
        entry.updated_by = scope.actor.label[:80]
        record(session, scope.actor, "child.migrant", "child", entry.id, self.now(), migrant=migrant)
        session.flush()

    def child_missing(self, session: Session, scope: Scope, entry: ChildEntry) -> Case:
        """A child who did not report is entered as 失学 (疑似) on the suspected ledger."""
        scope.require_own(entry.school, LEDGER_OWN)
        if entry.reported_on is not None:
            raise CaseInvalid("该儿童已报到。")
        if entry.case_id is not None:
            raise CaseInvalid("该儿童已登记为失学个案。")
        if not entry.guardian_name or not entry.guardian_phone or entry.sex is None or entry.birth_date is None:
            raise CaseInvalid("登记失学需要儿童的性别、出生日期和监护人姓名、电话，请先在名单中补全后重新导入。")
        case = self.cases.create(
            session,
            scope,
            entry.school_id,
            CaseIn(
                student_name=entry.student_name,
                id_number=entry.id_number,
                sex=entry.sex,
                birth_date=entry.birth_date,
                grade="一年级",
                home_address=entry.home_address,
                key_groups=["随迁子女"] if entry.migrant else [],
                reason_detail="适龄儿童未按时报到入学（失学）",
                guardians=[GuardianIn(entry.guardian_name, "其他监护人", entry.guardian_phone)],
            ),
        )
        case.never_enrolled = True
        entry.case_id = case.id
        entry.updated_at = self.now()
        entry.updated_by = scope.actor.label[:80]
        session.flush()
        return case

    # --- Excel ---------------------------------------------------------------------------------

    def workbook(self, session: Session, ledger: Ledger, *, full: bool = False) -> bytes:
        """The ledger as the Excel file units used to keep by hand; 身份证号 and phones masked
        unless ``full`` (the face checks the role may have them)."""
        ids, phones = (str, str) if full else (mask_id_number, mask_phone)
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        when = f"导出时间：{self.now().astimezone(self.tz).strftime('%Y-%m-%d %H:%M')}"
        if ledger.key == "children":
            ws.title = "适龄儿童"
            ws.append([f"{ledger.unit.name}{ledger.title}", when])
            ws.append(
                [
                    "序号",
                    "学校",
                    "姓名",
                    "身份证号",
                    "性别",
                    "出生日期",
                    "随迁子女",
                    "监护人",
                    "联系电话",
                    "报到",
                    "失学个案",
                    "最近更新",
                    "更新人",
                ]
            )
            for n, c in enumerate(ledger.children, 1):
                ws.append(
                    [
                        safe_cell(v)
                        for v in (
                            n,
                            c.school,
                            c.student_name,
                            ids(c.id_number),
                            c.sex or "",
                            c.birth_date.isoformat() if c.birth_date else "",
                            "是" if c.migrant else "否",
                            c.guardian_name or "",
                            phones(c.guardian_phone) if c.guardian_phone else "",
                            c.reported_on.isoformat() if c.reported_on else "未报到",
                            c.case_id or "",
                            self._when(c.updated_at),
                            c.updated_by,
                        )
                    ]
                )
        else:
            ws.title = "在册"
            self._sheet(ws, ledger, ledger.rows, when, ids)
            closed = wb.create_sheet("已销号")
            self._sheet(closed, ledger, ledger.closed, when, ids)
        for sheet in wb.worksheets:
            sheet["A1"].font = Font(bold=True)
            fit_columns(sheet)
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()

    def provincial_workbook(self, ledger: Ledger, mapping: dict[str, str], *, full: bool = False) -> bytes:
        """The suspected or dropout ledger in the layout of the provincial 台账系统's import sheet:
        the bureau's mapped headers, in their order, open entries then those written off; 身份证号
        masked unless ``full``."""
        if ledger.key == "children":
            raise NotFoundForUser("适龄儿童台账不报省台账系统。")
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = ledger.title
        keys = [k for k in mapping if mapping[k]]
        ws.append([mapping[k] for k in keys])
        for r in ledger.rows + ledger.closed:
            c = r.closure or {}
            values: dict[str, object] = {
                "school": r.school,
                "student_name": r.student_name,
                "id_number": r.id_number if full else mask_id_number(r.id_number),
                "sex": r.sex,
                "grade_class": r.grade_class,
                "key_groups": "、".join(r.key_groups),
                "status": r.status_title,
                "dropout_date": r.dropout_date.isoformat() if r.dropout_date else "",
                "dropout_reason": r.dropout_reason or "",
                "attempts": r.attempts,
                "last_attempt": r.last_attempt.isoformat() if r.last_attempt else "",
                "closure": c.get("title", ""),
                "closure_date": c["date"].isoformat() if c.get("date") else "",
                "closure_reason": c.get("reason", ""),
            }
            ws.append([safe_cell(values.get(k, "")) for k in keys])
        fit_columns(ws, skip_rows=0)
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()

    def _when(self, at: dt.datetime) -> str:
        return at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def _sheet(
        self, ws: Any, ledger: Ledger, rows: list[LedgerRow], when: str, ids: Callable[[str], str] = str
    ) -> None:
        ws.append([f"{ledger.unit.name}{ledger.title}", when])
        ws.append(
            [
                "序号",
                "个案编号",
                "学校",
                "姓名",
                "身份证号",
                "性别",
                "年级班级",
                "重点群体",
                "状态",
                "辍学日期",
                "辍学原因",
                "劝返次数",
                "最近劝返",
                "最近变更",
                "变更人",
                "变更时间",
                "超过一个月未更新",
                "销号方式",
                "销号日期",
                "销号原因或依据",
                "批准机关",
            ]
        )
        for n, r in enumerate(rows, 1):
            c = r.closure or {}
            ws.append(
                [
                    safe_cell(v)
                    for v in (
                        n,
                        r.case_id,
                        r.school,
                        r.student_name,
                        ids(r.id_number),
                        r.sex,
                        r.grade_class,
                        "、".join(r.key_groups),
                        r.status_title,
                        r.dropout_date.isoformat() if r.dropout_date else "",
                        r.dropout_reason or "",
                        r.attempts,
                        r.last_attempt.isoformat() if r.last_attempt else "",
                        r.changed.what if r.changed else "",
                        r.changed.actor if r.changed else "",
                        self._when(r.changed.at) if r.changed else "",
                        "是" if r.stale else "",
                        c.get("title", ""),
                        c["date"].isoformat() if c.get("date") else "",
                        c.get("reason", ""),
                        c.get("authority") or "",
                    )
                ]
            )
