"""Rosters: an Excel, WPS, .ods or CSV sheet of students and guardians, checked row by row.

A row near the top names the columns; see ``COLUMNS`` (``service.sheets`` finds it below any title
rows, fills merged school cells down, and normalises IDs, phones and dates). A school's own roster
may leave out the school code: the importing school is the school. Every bad row is reported with its row number,
column and reason (a bad 身份证号 checksum, a missing guardian, an unknown school, a student listed
twice…) and nothing is imported until the sheet is clean, unless the user asks to import the good
rows only. A cell that starts with ``=``, ``+``, ``-`` or ``@`` is read as the text it shows, never
as a formula.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import sheets
from service.cases.checks import check_guardian, check_id, parse_date
from service.cases.models import OPEN_STATUSES, REASONS, Case
from service.db.sealed import index_of
from service.rosters.errors import RosterInvalid
from service.sheets import Column, Kind, row_error
from service.units.models import Unit, UnitType

COLUMNS: dict[str, tuple[str, ...]] = {
    "school": ("学校代码", "学校"),
    "student_name": ("学生姓名", "姓名", "儿童姓名"),
    "id_number": ("身份证号", "身份证号码", "公民身份号码"),
    "sex": ("性别",),
    "birth_date": ("出生日期",),
    "student_number": ("学籍号", "全国学籍号"),
    "grade": ("年级",),
    "class_name": ("班级",),
    "home_address": ("家庭住址", "住址"),
    "guardian_name": ("监护人姓名", "监护人", "家长姓名"),
    "guardian_relation": ("监护人关系", "与学生关系", "关系"),
    "guardian_phone": ("监护人电话", "联系电话", "家长电话"),
    "guardian2_name": ("监护人2姓名",),
    "guardian2_relation": ("监护人2关系",),
    "guardian2_phone": ("监护人2电话",),
    "dropout_date": ("辍学日期",),
    "dropout_reason": ("辍学原因",),
    # a first-grade roster feeds the 适龄儿童台账, which marks 随迁子女 (是/否)
    "migrant": ("随迁子女", "是否随迁子女"),
}
TITLES = {k: v[0] for k, v in COLUMNS.items()}
KEYS = {v: k for k, v in TITLES.items()}
REQUIRED = ("school", "student_name", "id_number", "guardian_name", "guardian_phone")
KINDS: dict[str, Kind] = {
    "school": "code",
    "id_number": "id_number",
    "birth_date": "date",
    "dropout_date": "date",
    "guardian_phone": "phone",
    "guardian2_phone": "phone",
}
GRADE_ORDER = {
    g: i
    for i, g in enumerate(
        [
            "一年级",
            "二年级",
            "三年级",
            "四年级",
            "五年级",
            "六年级",
            "七年级",
            "八年级",
            "九年级",
            "初一",
            "初二",
            "初三",
        ]
    )
}


@dataclass
class RosterRow:
    row: int
    values: dict[str, str]
    school: Unit | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: What the person typed, by column key (``values`` holds the normalised text).
    typed: dict[str, str] = field(default_factory=dict)

    def error(self, column: str, message: str) -> None:
        key = KEYS.get(column, "")
        typed = self.typed.get(key, self.values.get(key, ""))
        error = row_error(self.row, column, typed, message)
        if name := self.values.get("student_name"):
            error["student"] = name  # the row named by its student, as a person finds it in the sheet
        self.errors.append(error)


@dataclass
class RosterCheck:
    rows: list[RosterRow]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e for r in self.rows for e in r.errors]

    @property
    def good(self) -> list[RosterRow]:
        return [r for r in self.rows if not r.errors]


def read_rows(data: bytes, filename: str, own_school: bool = False) -> sheets.Sheet:
    """The rows under the header; raises RosterInvalid for a file we cannot read or a missing column.

    With ``own_school`` (a school importing its own roster) the school code column may be left out.
    """
    columns = [
        Column(
            key,
            names,
            required=key in REQUIRED and not (own_school and key == "school"),
            fill_down=key == "school",
            kind=KINDS.get(key, "text"),
        )
        for key, names in COLUMNS.items()
    ]
    try:
        return sheets.read_sheet(data, filename, columns)
    except sheets.UnreadableSheet as exc:
        raise RosterInvalid(exc.message, details=exc.details) from exc


def check_roster(session: Session, data: bytes, filename: str, kind: str, schools: Sequence[Unit]) -> RosterCheck:
    """Every row checked; a roster whose only school in scope is one school may leave its code blank."""
    own = schools[0] if len(schools) == 1 else None
    sheet = read_rows(data, filename, own_school=own is not None)
    by_code = {s.code: s for s in schools}
    by_name = {s.name: s for s in schools}
    rows: list[RosterRow] = []
    first_seen: dict[str, int] = {}
    open_ids = set()
    if kind == "return_notice":
        # Open cases of the importing user's own schools only: a roster must not reveal which
        # children have a case anywhere else.
        open_ids = set(
            session.scalars(
                select(Case.id_number_bidx).where(
                    Case.status.in_([s.value for s in OPEN_STATUSES]), Case.school_id.in_([s.id for s in schools])
                )
            )
        )
    for line in sheet.rows:
        n, values = line.number, line.values
        row = RosterRow(n, values, typed=line.typed)
        row.errors.extend(line.problems)
        lost = {p["column"] for p in line.problems}
        rows.append(row)
        school = by_code.get(values["school"]) or by_name.get(values["school"])
        if not values["school"] and own is not None:
            school = own
        elif not values["school"]:
            row.error(TITLES["school"], "必须填写学校代码")
        elif school is None:
            row.error(TITLES["school"], f"学校「{values['school']}」不存在，或不在您的管辖范围内")
        row.school = school
        if not values["student_name"]:
            row.error(TITLES["student_name"], "必须填写学生姓名")
        id_number = values["id_number"]
        birth = None
        if values.get("birth_date"):
            birth = parse_date(values["birth_date"])
            if birth is None:
                row.error(TITLES["birth_date"], "日期格式不正确，例如 2018-04-15")
        sex = values.get("sex") or None
        if sex and sex not in ("男", "女"):
            row.error(TITLES["sex"], "应为 男 或 女")
            sex = None
        if not id_number:
            row.error(TITLES["id_number"], "必须填写身份证号")
        else:
            for column, message in check_id(id_number, sex, birth):
                row.error(column, message)
            if id_number in first_seen:
                row.error(TITLES["id_number"], f"与第 {first_seen[id_number]} 行是同一名学生（身份证号重复）")
            else:
                first_seen[id_number] = n
            if index_of(session, id_number, "id_number") in open_ids:
                row.error(TITLES["id_number"], "该学生已有未结案的辍学个案，请在个案中发通知书")
        for column, message in check_guardian(
            {
                "name": values["guardian_name"],
                "relation": values.get("guardian_relation", ""),
                "phone": values["guardian_phone"],
            }
        ):
            row.error(column, message)
        if any(values.get(f"guardian2_{k}") for k in ("name", "relation", "phone")):
            for column, message in check_guardian(
                {
                    "name": values.get("guardian2_name", ""),
                    "relation": values.get("guardian2_relation", ""),
                    "phone": values.get("guardian2_phone", ""),
                },
                "监护人2",
            ):
                row.error(column, message)
        if kind == "return_notice":
            if not values.get("dropout_date") or parse_date(values["dropout_date"]) is None:
                row.error(TITLES["dropout_date"], "复学名单应填写辍学日期，例如 2024-09-02")
            if values.get("dropout_reason") and values["dropout_reason"] not in REASONS:
                row.error(TITLES["dropout_reason"], f"应为 {'、'.join(REASONS)} 之一")
            if not values.get("grade"):
                row.error(TITLES["grade"], "复学名单应填写原就读年级")
        if lost:  # only the cause is reported for a value the sheet lost, not a wrong checksum as well
            checked = row.errors[len(line.problems) :]
            row.errors = [*line.problems, *(e for e in checked if e["column"] not in lost)]
    return RosterCheck(rows)


def class_order(values: dict[str, str], row: int) -> str:
    grade = values.get("grade", "")
    rank = GRADE_ORDER.get(grade, 50)
    digits = re.findall(r"\d+", values.get("class_name", ""))
    class_no = int(digits[0]) if digits else 0
    return f"{rank:02d}|{class_no:03d}|{values.get('class_name', '')[:10]}|{row:06d}"


def schools_in(session: Session, unit_ids: set[int]) -> list[Unit]:
    return list(session.scalars(select(Unit).where(Unit.id.in_(unit_ids), Unit.type == UnitType.SCHOOL)))
