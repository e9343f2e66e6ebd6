"""Checks on a student's and guardians' data, shared by the case forms and the roster import.

Each check returns (column, reason) pairs in Chinese, so a form can show them beside its fields and
an import can list them by row.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumError

from service.documents.fields import _resident_id_reason

PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(-\d{1,6})?)$")
RELATIONS = ("父亲", "母亲", "祖父", "祖母", "外祖父", "外祖母", "其他监护人")


def parse_date(value: object) -> dt.date | None:
    """A date typed in a sheet or a form: 2024-09-01, 2024/9/1, 2024年9月1日, or an Excel date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value or "").strip()
    m = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", text)
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def check_id(id_number: str, sex: str | None = None, birth: dt.date | None = None) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    try:
        ric.validate(id_number)
    except StdnumError as exc:
        return [("身份证号", _resident_id_reason(exc))]
    born = ric.get_birth_date(id_number)
    if birth is not None and birth != born:
        problems.append(("出生日期", f"与身份证号中的出生日期（{born.year}年{born.month}月{born.day}日）不一致"))
    if sex in ("男", "女"):
        by_id = "男" if int(id_number[16]) % 2 == 1 else "女"
        if sex != by_id:
            problems.append(("性别", f"与身份证号中的性别（{by_id}）不一致"))
    return problems


def check_guardian(values: Mapping[str, str], prefix: str = "监护人") -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    name, relation, phone = values.get("name", ""), values.get("relation", ""), values.get("phone", "")
    if not name:
        problems.append((f"{prefix}姓名", "缺少监护人姓名"))
    if relation and relation not in RELATIONS:
        problems.append((f"{prefix}关系", f"应为 {'、'.join(RELATIONS)} 之一"))
    if not phone:
        problems.append((f"{prefix}电话", "缺少监护人电话"))
    elif not PHONE.match(phone.replace(" ", "")):
        problems.append((f"{prefix}电话", "电话号码格式不正确：手机号11位，座机写成 区号-号码"))
    return problems
