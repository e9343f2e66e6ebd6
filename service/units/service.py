"""The unit tree: import from an Excel or CSV sheet, and which units a user may see.

A sheet has one row per unit: 单位代码, 单位名称, 单位类型 (教体局 / 街道教育办 / 学校), 上级单位代码,
负责人, 联系电话, 地址. Every bad row is reported (row, column, reason) and nothing is imported
until the sheet is clean. Rows whose code exists update that unit; units are never deleted by an import.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import sheets
from service.audit.service import Actor, record, record_when_done
from service.errors import DocsignError
from service.sheets import Column, Kind
from service.units.errors import SheetInvalid
from service.units.models import Unit, UnitType


class ActsForBureau(Protocol):
    """Who imports a unit sheet, as this domain needs them (an ``accounts.scope.Scope`` is one):
    how they appear in the audit log, and the bureau whose unit tree they keep."""

    @property
    def actor(self) -> Actor: ...

    def keeps_units(self) -> Unit:
        """The bureau; refuses anyone who is neither its staff nor its system administrator."""
        ...


CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(-\d{1,6})?)$")

COLUMNS = {
    "code": ("单位代码", "代码", "学校代码", "编码"),
    "name": ("单位名称", "名称", "单位", "学校名称"),
    "type": ("单位类型", "类型"),
    "parent": ("上级单位代码", "上级代码", "上级单位"),
    "head_name": ("负责人", "负责人姓名", "校长", "主任"),
    "phone": ("联系电话", "电话"),
    "address": ("地址", "单位地址"),
}
HEADERS = {
    "code": "单位代码",
    "name": "单位名称",
    "type": "单位类型",
    "parent": "上级单位代码",
    "head_name": "负责人",
    "phone": "联系电话",
    "address": "地址",
}
TYPE_WORDS = {
    UnitType.BUREAU: ("教体局", "教育局", "区教体局", "县教体局", "教育和体育局", "bureau"),
    UnitType.OFFICE: ("街道教育办", "教育办", "教办", "教育办公室", "街道教育办公室", "中心学校", "office"),
    UnitType.SCHOOL: ("学校", "小学", "中学", "初中", "九年一贯制学校", "区直学校", "school"),
}
ALLOWED_PARENT = {
    UnitType.BUREAU: set(),
    UnitType.OFFICE: {UnitType.BUREAU},
    UnitType.SCHOOL: {UnitType.BUREAU, UnitType.OFFICE},
}


@dataclass
class SheetRow:
    row: int
    values: dict[str, str]


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)


def read_sheet(data: bytes, filename: str) -> list[SheetRow]:
    """Rows of the unit sheet (.xlsx, .xls, .et, .ods or .csv), keyed by our column names; raises
    SheetInvalid for a file we cannot read, a missing column, or a cell whose value was lost."""
    kinds: dict[str, Kind] = {"code": "code", "parent": "code", "phone": "phone"}
    columns = [
        Column(key, names, required=key in ("code", "name", "type", "parent"), kind=kinds.get(key, "text"))
        for key, names in COLUMNS.items()
    ]
    try:
        sheet = sheets.read_sheet(data, filename, columns)
    except sheets.UnreadableSheet as exc:
        raise SheetInvalid(exc.message, details=exc.details) from exc
    if sheet.problems:
        raise SheetInvalid(
            f"表格中有 {len(sheet.problems)} 处错误，未导入任何单位。请按逐行列出的原因修改后重新上传。",
            details={"errors": sheet.problems},
        )
    return [SheetRow(r.number, r.values) for r in sheet.rows]


def _unit_type(word: str) -> UnitType | None:
    for t, words in TYPE_WORDS.items():
        if word in words:
            return t
    return None


def import_units(session: Session, rows: Sequence[SheetRow], root: Unit | None = None) -> ImportResult:
    """Validate every row, then create or update the units; nothing is written if any row is bad.

    With ``root`` (the importing bureau), rows may only create units under it or update units of its
    own tree: a code belonging to another bureau's tree is refused, never taken over.
    """
    result = ImportResult()
    everything = list(session.scalars(select(Unit)))
    mine = descendants(everything, root.id) if root is not None else {u.id for u in everything}
    existing = {u.code: u for u in everything if u.id in mine}
    foreign = {u.code for u in everything if u.id not in mine}

    def err(row: int, key: str, message: str) -> None:
        result.errors.append({"row": row, "column": HEADERS[key], "message": message})

    seen: dict[str, int] = {}
    types: dict[str, UnitType] = {code: UnitType(u.type) for code, u in existing.items()}
    parsed: list[tuple[SheetRow, UnitType | None]] = []
    for r in rows:
        v = r.values
        code = v.get("code", "")
        if not code:
            err(r.row, "code", "单位代码不能为空")
        elif not CODE.match(code):
            err(r.row, "code", "单位代码只能包含字母、数字、下划线和短横线，最长32位")
        elif code in seen:
            err(r.row, "code", f"单位代码与第{seen[code]}行重复")
        elif code in foreign:
            err(r.row, "code", f"单位代码「{code}」不能使用，请换一个代码（单位代码在全系统中唯一）")
        else:
            seen[code] = r.row
        unit_type = _unit_type(v.get("type", ""))
        if unit_type is None:
            err(r.row, "type", f"单位类型「{v.get('type', '')}」无法识别，应为 教体局、街道教育办 或 学校")
        elif code:
            types[code] = unit_type
        name = v.get("name", "")
        if not name:
            err(r.row, "name", "单位名称不能为空")
        elif len(name.encode()) > 64:
            err(r.row, "name", "单位名称过长（最多21个汉字），公章和证书放不下")
        phone = v.get("phone", "").replace(" ", "")
        if phone and not PHONE.match(phone):
            err(r.row, "phone", "电话号码格式不正确：手机号11位，座机写成 区号-号码")
        if len(v.get("head_name", "")) > 32:
            err(r.row, "head_name", "负责人姓名过长")
        parsed.append((r, unit_type))

    for r, unit_type in parsed:
        parent = r.values.get("parent", "")
        if unit_type is None:
            continue
        if unit_type == UnitType.BUREAU:
            if parent:
                err(r.row, "parent", "教体局不应有上级单位")
            elif root is not None and r.values.get("code") != root.code:
                err(r.row, "type", "只能导入本局下属的街道教育办和学校，不能新建其他教体局")
            continue
        if not parent:
            err(r.row, "parent", "街道教育办和学校必须填写上级单位代码")
            continue
        if parent == r.values.get("code"):
            err(r.row, "parent", "上级单位不能是自己")
            continue
        parent_type = types.get(parent)
        if parent_type is None:
            err(r.row, "parent", f"上级单位代码「{parent}」不存在（表中和系统中都没有）")
        elif parent_type not in ALLOWED_PARENT[unit_type]:
            allowed = "教体局" if unit_type == UnitType.OFFICE else "教体局或街道教育办"
            err(
                r.row,
                "parent",
                f"上级单位「{parent}」的类型不对：{'街道教育办' if unit_type == UnitType.OFFICE else '学校'}的上级应为{allowed}",
            )

    if result.errors:
        result.errors.sort(key=lambda e: (int(str(e["row"])), str(e["column"])))
        return result

    by_code = dict(existing)
    # Parents first: bureaus, then offices, then schools.
    order = {UnitType.BUREAU: 0, UnitType.OFFICE: 1, UnitType.SCHOOL: 2}
    for r, unit_type in sorted(parsed, key=lambda p: order[p[1]]):  # type: ignore[index]
        assert unit_type is not None
        v = r.values
        unit = by_code.get(v["code"])
        if unit is None:
            unit = Unit(code=v["code"])
            session.add(unit)
            by_code[v["code"]] = unit
            result.created += 1
        else:
            result.updated += 1
        unit.name = v["name"]
        unit.type = unit_type.value
        unit.parent = by_code.get(v.get("parent", "")) if v.get("parent") else None
        unit.head_name = v.get("head_name") or unit.head_name
        unit.phone = v.get("phone", "").replace(" ", "") or unit.phone
        unit.address = v.get("address") or unit.address
        session.flush()
    return result


def all_units(session: Session) -> list[Unit]:
    return list(session.scalars(select(Unit).order_by(Unit.id)))


def descendants(units: Iterable[Unit], root_id: int) -> set[int]:
    children: dict[int | None, list[int]] = {}
    for u in units:
        children.setdefault(u.parent_id, []).append(u.id)
    out, stack = {root_id}, [root_id]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def visible_unit_ids(session: Session, unit: Unit) -> set[int]:
    """A bureau sees its whole tree, an office itself and its schools, a school itself."""
    if unit.type == UnitType.SCHOOL:
        return {unit.id}
    return descendants(all_units(session), unit.id)


def bureau_of(unit: Unit) -> Unit:
    node = unit
    while node.parent is not None:
        node = node.parent
    return node


def import_units_sheet(
    session: Session, scope: ActsForBureau, data: bytes, filename: str, now: dt.datetime
) -> ImportResult:
    """A bureau (its staff or its system administrator) imports its unit sheet: every bad row is in the SheetInvalid's details and nothing
    is written; otherwise the units are created or updated and the import is audited."""
    bureau = scope.keeps_units()
    try:
        rows = read_sheet(data, filename)
        result = import_units(session, rows, bureau)
        if result.errors:
            raise SheetInvalid(
                f"表格中有 {len(result.errors)} 处错误，未导入任何单位。请按逐行列出的原因修改后重新上传。",
                details={"errors": result.errors},
            )
    except DocsignError as exc:  # a refused import is audited too (the caller rolls back)
        errors = exc.details.get("errors", []) if isinstance(exc.details, dict) else []
        record_when_done(
            session,
            scope.actor,
            "unit.import_failed",
            "unit",
            "*",
            now,
            file=filename[:128],
            code=exc.code,
            errors=len(errors),
        )
        raise
    record(
        session,
        scope.actor,
        "unit.import",
        "unit",
        "*",
        now,
        created=result.created,
        updated=result.updated,
        file=filename,
    )
    return result
