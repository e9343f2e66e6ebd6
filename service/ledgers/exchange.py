"""Exchange with the platforms the notices name, through the files they already trade.

- The 疑似辍学 list the 全国基础教育管理服务平台 sends down (Suiyang 六) is imported into suspected
  cases. A bureau maps its columns once (the mapping is data, ``ColumnMapping``); a student whose
  case is already open is skipped, not doubled.
- A roster is compared with the 学籍系统's export by 身份证号 (or 学籍号 where a row has no
  身份证号): the children on one list and not the other (人籍一致, Suiyang 二).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.scope import Scope
from service.audit.service import record
from service.cases.checks import check_id, parse_date
from service.cases.models import OPEN_STATUSES, Case
from service.cases.service import CaseIn, Cases, GuardianIn
from service.db.sealed import index_of
from service.errors import InvalidInput
from service.ledgers.models import ColumnMapping
from service.rosters.errors import RosterInvalid
from service.sheets import Column, Kind, Sheet, UnreadableSheet, read_sheet, row_error
from service.units.models import Unit, UnitType
from service.units.service import bureau_of


@dataclass(frozen=True)
class Field:
    key: str
    title: str
    required: bool = False
    kind: Kind = "text"


#: What a platform 疑似辍学 row gives a case; the titles are the headers used when none is mapped.
SUSPECTED_FIELDS = (
    Field("school", "学校名称", True, "code"),
    Field("student_name", "姓名", True),
    Field("id_number", "身份证件号", True, "id_number"),
    Field("sex", "性别", True),
    Field("birth_date", "出生日期", True, "date"),
    Field("grade", "年级", True),
    Field("class_name", "班级"),
    Field("student_number", "学籍号"),
    Field("home_address", "家庭住址"),
    Field("guardian_name", "监护人姓名", True),
    Field("guardian_phone", "监护人联系电话", True, "phone"),
    Field("reason", "疑似辍学原因"),
)
#: The columns of a ledger that can go to the provincial 台账系统 (Licheng 三, Zaozhuang 二.(二)),
#: with the header each has when the bureau has mapped none; a column mapped to nothing is left out.
LEDGER_FIELDS = (
    Field("school", "学校"),
    Field("student_name", "姓名"),
    Field("id_number", "身份证号"),
    Field("sex", "性别"),
    Field("grade_class", "年级班级"),
    Field("key_groups", "重点群体"),
    Field("status", "状态"),
    Field("dropout_date", "辍学日期"),
    Field("dropout_reason", "辍学原因"),
    Field("attempts", "劝返次数"),
    Field("last_attempt", "最近劝返日期"),
    Field("closure", "销号方式"),
    Field("closure_date", "销号日期"),
    Field("closure_reason", "销号原因"),
)
#: The source lists of 四查三比对 (``ledgers.compare``), by kind, with what each is called.
LIST_KINDS = {
    "huji": "公安户籍适龄儿童名单",
    "xueji": "学籍系统导出名单",
    "enrolled": "在校学生名单",
    "poverty": "脱贫户/低保家庭儿童名单",
    "disabled": "残疾儿童名单",
    "platform": "平台下发疑似辍学名单",
}
#: The kinds whose every row names the child's school.
SCHOOL_LISTS = frozenset({"xueji", "enrolled"})


def list_fields(kind: str) -> tuple[Field, ...]:
    """What a row of a source list gives the comparison; only the name and the 身份证号 are always
    required (and the school in the lists of schools)."""
    return (
        Field("name", "姓名", True),
        Field("id_number", "身份证号", True, "id_number"),
        Field("birth_date", "出生日期", False, "date"),
        Field("school", "学校名称", kind in SCHOOL_LISTS, "code"),
        Field("township", "乡镇（街道）"),
        Field("village", "村（社区）"),
    )


KINDS = {
    "suspected_import": SUSPECTED_FIELDS,
    "ledger_export": LEDGER_FIELDS,
    **{f"list_{kind}": list_fields(kind) for kind in LIST_KINDS},
}
MAPPING_TITLES = {
    "suspected_import": "全国基础教育管理服务平台疑似辍学名单",
    "ledger_export": "省台账系统导入表",
    **{f"list_{kind}": title for kind, title in LIST_KINDS.items()},
}


class MappingInvalid(InvalidInput):
    code = "MAPPING_INVALID"
    default_message = "列对应关系有误。"


@dataclass
class ImportResult:
    created: list[int] = field(default_factory=list)
    #: The students of the cases created, in the order of ``created`` (the importing user's own).
    created_names: list[str] = field(default_factory=list)
    #: Rows of students whose case is already open: (row, name).
    skipped: list[tuple[int, str]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Child:
    row: int
    name: str
    id_number: str
    student_number: str

    @property
    def key(self) -> str:
        return self.id_number or f"学籍号:{self.student_number}"


@dataclass
class Comparison:
    roster: int
    register: int
    #: On the roster, not in the 学籍 export (在校未建籍, or 学籍 elsewhere).
    only_roster: list[Child]
    #: In the 学籍 export, not on the roster (在籍不在校: 疑似辍学 to check).
    only_register: list[Child]


COMPARE_COLUMNS = (
    Column("name", ("姓名", "学生姓名", "儿童姓名"), required=True),
    Column("id_number", ("身份证号", "身份证件号", "身份证号码", "公民身份号码"), kind="id_number"),
    Column("student_number", ("学籍号", "全国学籍号", "学籍辅号")),
)


class Exchange:
    def __init__(self, cases: Cases, now: Callable[[], dt.datetime]) -> None:
        self.cases = cases
        self.now = now

    # --- the mapping ---------------------------------------------------------------------------

    def mapping(self, session: Session, bureau: Unit, kind: str = "suspected_import") -> dict[str, str]:
        """The bureau's saved mapping, or the default headers."""
        saved = session.scalar(
            select(ColumnMapping).where(ColumnMapping.bureau_id == bureau.id, ColumnMapping.kind == kind)
        )
        if saved is not None and kind == "ledger_export":
            return dict(saved.mapping)  # a column left blank is left out of the export
        default = {f.key: f.title for f in KINDS[kind]}
        return {**default, **(saved.mapping if saved else {})}

    def set_mapping(
        self, session: Session, scope: Scope, mapping: dict[str, str], kind: str = "suspected_import"
    ) -> ColumnMapping:
        """A bureau saves which header of the platform's sheet holds each field."""
        scope.require(Role.BUREAU, message="只有教体局工作人员可以设置列对应关系。")
        bureau = scope.bureau()
        fields = KINDS[kind]
        clean = {f.key: (mapping.get(f.key) or "").strip()[:40] for f in fields}
        problems = [
            {"field": f.title, "message": "必须填写平台表格中对应的列名"}
            for f in fields
            if f.required and not clean[f.key]
        ]
        used: dict[str, str] = {}
        for f in fields:
            header = clean[f.key]
            if header and header in used:
                problems.append({"field": f.title, "message": f"与「{used[header]}」对应了同一列「{header}」"})
            used.setdefault(header, f.title)
        if not any(clean.values()):
            problems.append({"field": fields[0].title, "message": "至少要对应一列"})
        if problems:
            raise MappingInvalid(
                "；".join(f"{p['field']}：{p['message']}" for p in problems), details={"errors": problems}
            )
        saved = session.scalar(
            select(ColumnMapping).where(ColumnMapping.bureau_id == bureau.id, ColumnMapping.kind == kind)
        )
        if saved is None:
            saved = ColumnMapping(bureau_id=bureau.id, kind=kind, mapping={}, updated_by="")
            session.add(saved)
        saved.mapping = {k: v for k, v in clean.items() if v}
        saved.updated_at = self.now()
        saved.updated_by = scope.actor.label[:80]
        session.flush()
        record(session, scope.actor, "exchange.mapping", "column_mapping", saved.id, self.now(), kind=kind)
        return saved

    # --- the platform's 疑似辍学 list --------------------------------------------------------------

    def _read(self, data: bytes, filename: str, mapping: dict[str, str], fields: tuple[Field, ...]) -> Sheet:
        columns = [
            Column(
                f.key, tuple(dict.fromkeys((mapping.get(f.key) or f.title, f.title))), required=f.required, kind=f.kind
            )
            for f in fields
        ]
        try:
            return read_sheet(data, filename, columns)
        except UnreadableSheet as exc:
            raise RosterInvalid(exc.message, details=exc.details) from exc

    def import_suspected(
        self, session: Session, scope: Scope, data: bytes, filename: str, *, only_valid: bool = False
    ) -> ImportResult:
        """The platform's 疑似辍学 list into suspected cases at the schools the user sees. A bad row
        stops the import (nothing is written) unless ``only_valid``; a student with an open case
        is skipped."""
        mapping = self.mapping(session, bureau_of(scope.unit))
        sheet = self._read(data, filename, mapping, SUSPECTED_FIELDS)
        titles = {f.key: mapping.get(f.key) or f.title for f in SUSPECTED_FIELDS}
        schools = list(session.scalars(select(Unit).where(Unit.id.in_(scope.units), Unit.type == UnitType.SCHOOL)))
        by_name = {s.name: s for s in schools} | {s.code: s for s in schools}
        # open cases of the user's own schools only: another bureau's children are not its to learn about
        open_ids = set(
            session.scalars(
                select(Case.id_number_bidx).where(
                    Case.status.in_([s.value for s in OPEN_STATUSES]), Case.school_id.in_(scope.units)
                )
            )
        )
        result = ImportResult()
        good: list[tuple[int, Unit, CaseIn]] = []
        seen: set[str] = set()
        for line in sheet.rows:
            v = line.values
            errors = list(line.problems)

            def bad(
                key: str,
                message: str,
                v: dict[str, str] = v,
                errors: list[dict[str, Any]] = errors,
                n: int = line.number,
            ) -> None:
                errors.append(row_error(n, titles[key], v.get(key, ""), message))

            school = by_name.get(v["school"])
            if school is None:
                bad("school", "学校不存在，或不在您的管辖范围内")
            birth = parse_date(v["birth_date"]) if v["birth_date"] else None
            if v["sex"] not in ("男", "女"):
                bad("sex", "应为 男 或 女")
            if not line.problems:
                for column, message in check_id(v["id_number"], v["sex"] or None, birth):
                    bad(
                        "id_number" if column == "身份证号" else "birth_date" if column == "出生日期" else "sex",
                        message,
                    )
            for key in ("student_name", "grade", "guardian_name", "guardian_phone", "birth_date"):
                if not v[key]:
                    bad(key, "必须填写")
            if index_of(session, v["id_number"], "id_number") in open_ids:
                result.skipped.append((line.number, v["student_name"]))
                continue
            if v["id_number"] in seen:
                bad("id_number", "名单中重复出现的学生")
            seen.add(v["id_number"])
            if errors:
                result.errors += errors
                continue
            assert school is not None and birth is not None
            good.append(
                (
                    line.number,
                    school,
                    CaseIn(
                        student_name=v["student_name"],
                        id_number=v["id_number"],
                        sex=v["sex"],
                        birth_date=birth,
                        grade=v["grade"],
                        class_name=v["class_name"] or None,
                        student_number=v["student_number"] or None,
                        home_address=v["home_address"][:100] or None,
                        reason_detail=("平台下发疑似辍学：" + v["reason"])[:500]
                        if v["reason"]
                        else "全国基础教育管理服务平台下发的疑似辍学学生",
                        guardians=[GuardianIn(v["guardian_name"][:30], "其他监护人", v["guardian_phone"])],
                    ),
                )
            )
        if not sheet.rows:
            raise RosterInvalid("名单中没有学生。")
        if result.errors and not only_valid:
            raise RosterInvalid(
                f"名单中有 {len(result.errors)} 处错误，未导入任何学生。请按逐行列出的原因修改，或选择只导入无误的行。",
                details={"errors": result.errors},
            )
        for _, school, data_in in good:
            # the bureau files the platform's list at its schools; a school files its own
            case = self.cases.create(session, scope, school.id, data_in, platform_list=scope.has(Role.BUREAU))
            result.created.append(case.id)
            result.created_names.append(case.student_name)
        record(
            session,
            scope.actor,
            "exchange.suspected_import",
            "unit",
            scope.unit.id,
            self.now(),
            filename=filename,
            created=len(result.created),
            skipped=len(result.skipped),
        )
        return result

    # --- 人籍一致 --------------------------------------------------------------------------------

    def _children(self, data: bytes, filename: str, what: str) -> list[Child]:
        try:
            sheet = read_sheet(data, filename, COMPARE_COLUMNS)
        except UnreadableSheet as exc:
            raise RosterInvalid(f"{what}：{exc.message}", details=exc.details) from exc
        if "id_number" not in sheet.headers and "student_number" not in sheet.headers:
            raise RosterInvalid(f"{what}中应有“身份证号”或“学籍号”一列。")
        return [
            Child(r.number, r.values["name"], r.values["id_number"], r.values["student_number"])
            for r in sheet.rows
            if r.values["id_number"] or r.values["student_number"]
        ]

    def compare(self, roster: tuple[bytes, str], register: tuple[bytes, str]) -> Comparison:
        """Who is on the roster and not in the 学籍 export, and the other way round: matched by
        身份证号, or by 学籍号 for a row without one."""
        ours = self._children(*roster, "名单")
        theirs = self._children(*register, "学籍系统导出表")

        def keys(children: list[Child]) -> tuple[set[str], set[str]]:
            return {c.id_number for c in children if c.id_number}, {
                c.student_number for c in children if c.student_number
            }

        our_ids, our_numbers = keys(ours)
        their_ids, their_numbers = keys(theirs)

        def found(c: Child, ids: set[str], numbers: set[str]) -> bool:
            return (bool(c.id_number) and c.id_number in ids) or (
                bool(c.student_number) and c.student_number in numbers
            )

        return Comparison(
            roster=len(ours),
            register=len(theirs),
            only_roster=[c for c in ours if not found(c, their_ids, their_numbers)],
            only_register=[c for c in theirs if not found(c, our_ids, our_numbers)],
        )
