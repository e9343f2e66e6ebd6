"""Field validation against each template's JSON Schema, with reasons in Chinese.

Formats the schemas use beyond JSON Schema's own: ``date`` (YYYY-MM-DD), ``cn-resident-id``
(居民身份证号, checked with python-stdnum: length, region, birth date and the check digit) and
``cn-phone`` (a mobile number or a landline with area code). After the schema, a few checks
across fields: a student's birth date and sex must agree with the 身份证号.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from stdnum.cn import ric
from stdnum.exceptions import (
    InvalidChecksum,
    InvalidComponent,
    InvalidFormat,
    InvalidLength,
)
from stdnum.exceptions import (
    ValidationError as StdnumError,
)

from service.documents.errors import FieldsInvalid
from service.documents.registry import DocumentKind, load_schema

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}(-\d{1,6})?$")

FORMAT_CHECKER = FormatChecker(formats=())


class DateFormatError(ValueError):
    pass


class PhoneFormatError(ValueError):
    pass


@FORMAT_CHECKER.checks("date", raises=DateFormatError)  # type: ignore[untyped-decorator]
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        raise DateFormatError("form")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise DateFormatError("calendar") from None
    return True


@FORMAT_CHECKER.checks("cn-resident-id", raises=StdnumError)  # type: ignore[untyped-decorator]
def _is_resident_id(value: object) -> bool:
    if not isinstance(value, str):
        return True
    ric.validate(value)
    return True


@FORMAT_CHECKER.checks("cn-phone", raises=PhoneFormatError)  # type: ignore[untyped-decorator]
def _is_phone(value: object) -> bool:
    if not isinstance(value, str):
        return True
    compact = value.replace(" ", "")
    if not (_MOBILE.match(compact) or _LANDLINE.match(compact)):
        raise PhoneFormatError(value)
    return True


def _resident_id_reason(exc: BaseException | None) -> str:
    if isinstance(exc, InvalidLength):
        return "身份证号应为18位"
    if isinstance(exc, InvalidChecksum):
        return "身份证号校验码不正确（最后一位与前17位不符），请核对是否抄错"
    if isinstance(exc, InvalidComponent):
        return "身份证号中的出生日期或地区码无效"
    if isinstance(exc, InvalidFormat):
        return "身份证号只能由17位数字加1位数字或X组成"
    return "身份证号无效"


def _title(schema: Mapping[str, Any], path: Iterable[str | int]) -> str:
    """The Chinese title of the field at ``path`` (for example 监护人 第1项 电话)."""
    parts: list[str] = []
    node: Mapping[str, Any] = schema
    for step in path:
        if isinstance(step, int):
            parts.append(f"第{step + 1}项")
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(step, {})
            parts.append(str(node.get("title", step)))
    return "".join(parts[:1]) + "".join(f"·{p}" if not p.startswith("第") else p for p in parts[1:])


def _field_path(path: Iterable[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


_TYPE_NAMES = {
    "string": "文字",
    "integer": "整数",
    "number": "数字",
    "array": "列表",
    "object": "对象",
    "boolean": "是或否",
}


def _message(error: ValidationError) -> str:
    v, schema = error.validator, error.schema
    if v == "format":
        fmt = schema.get("format")
        if fmt == "date":
            return (
                "日期应写成 年-月-日 的形式，例如 2024-09-25"
                if str(error.cause) == "form"
                else "这一天不存在，请核对日期"
            )
        if fmt == "cn-resident-id":
            return _resident_id_reason(error.cause)
        if fmt == "cn-phone":
            return "电话号码格式不正确：手机号为11位数字，座机写成 区号-号码，例如 0531-88161285"
    if v == "type":
        return f"应填写{_TYPE_NAMES.get(str(error.validator_value), str(error.validator_value))}"
    if v == "enum":
        return "应为以下之一：" + "、".join(str(x) for x in error.validator_value)
    if v == "minLength":
        return "不能为空" if error.validator_value == 1 else f"至少{error.validator_value}个字"
    if v == "maxLength":
        return f"不能超过{error.validator_value}个字"
    if v == "minItems":
        return f"至少需要填写{error.validator_value}项"
    if v == "maxItems":
        return f"最多填写{error.validator_value}项"
    if v == "minimum":
        return f"不能小于{error.validator_value}"
    if v == "maximum":
        return f"不能大于{error.validator_value}"
    if v == "pattern":
        return str(schema.get("x-pattern-message", "格式不正确"))
    if v == "uniqueItems":
        return "不能有重复项"
    if "x-message" in schema:
        return str(schema["x-message"])
    return "填写有误"


def _errors_of(schema: Mapping[str, Any], fields: Mapping[str, Any]) -> list[dict[str, str]]:
    validator = Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    problems: list[dict[str, str]] = []
    for error in sorted(validator.iter_errors(fields), key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(error.absolute_path)
        if error.validator == "required":
            missing = [name for name in error.validator_value if name not in error.instance]
            for name in missing:
                full = [*path, name]
                problems.append({"field": _field_path(full), "title": _title(schema, full), "message": "必须填写"})
            continue
        if error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - allowed):
                full = [*path, name]
                problems.append(
                    {"field": _field_path(full), "title": name, "message": "模板中没有这个字段，请删除或检查拼写"}
                )
            continue
        problems.append({"field": _field_path(path), "title": _title(schema, path), "message": _message(error)})
    # jsonschema reports a missing property once per `required` error, each listing all of them
    unique: dict[tuple[str, str], dict[str, str]] = {}
    for p in problems:
        unique.setdefault((p["field"], p["message"]), p)
    return list(unique.values())


def _cross_checks(fields: Mapping[str, Any], schema: Mapping[str, Any]) -> list[dict[str, str]]:
    """Agreement between a 身份证号 and the birth date and sex given beside it."""
    problems: list[dict[str, str]] = []
    id_number = fields.get("student_id_number")
    if not isinstance(id_number, str):
        return problems
    try:
        born = ric.get_birth_date(id_number)
    except StdnumError:
        return problems
    birth = fields.get("birth_date")
    if isinstance(birth, str) and _DATE.match(birth) and birth != born.isoformat():
        problems.append(
            {
                "field": "birth_date",
                "title": _title(schema, ["birth_date"]),
                "message": f"与身份证号中的出生日期（{born.year}年{born.month}月{born.day}日）不一致",
            }
        )
    sex = fields.get("sex")
    if sex in ("男", "女"):
        by_id = "男" if int(id_number[16]) % 2 == 1 else "女"
        if sex != by_id:
            problems.append(
                {"field": "sex", "title": _title(schema, ["sex"]), "message": f"与身份证号中的性别（{by_id}）不一致"}
            )
    return problems


def apply_defaults(schema: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields with the schema's top-level defaults filled in for what was left out."""
    out = dict(fields)
    for name, prop in schema.get("properties", {}).items():
        if name not in out and "default" in prop:
            out[name] = prop["default"]
    return out


def validate_fields(kind: DocumentKind, fields: Mapping[str, Any], schemas_dir: Path) -> dict[str, Any]:
    """The fields with defaults applied, or :class:`FieldsInvalid` listing every problem."""
    if not isinstance(fields, Mapping):
        raise FieldsInvalid("文书字段应为一个 JSON 对象（键为字段名）。")
    schema = load_schema(kind, schemas_dir)
    completed = apply_defaults(schema, fields)
    problems = _errors_of(schema, completed) or _cross_checks(completed, schema)
    if problems:
        summary = "；".join(f"{p['title']}：{p['message']}" for p in problems[:5])
        more = f"（另有{len(problems) - 5}处）" if len(problems) > 5 else ""
        raise FieldsInvalid(f"「{kind.title}」的字段有误：{summary}{more}。", details={"errors": problems})
    return completed


# Chinese dates as 公文 print them (GB/T 9704-2012: Arabic numerals, no leading zeros).


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def cn_date(value: object) -> str:
    """2024-09-25 -> 2024年9月25日"""
    d = _as_date(value)
    return f"{d.year}年{d.month}月{d.day}日"


def cn_month_day(value: object) -> str:
    """2024-09-29 -> 9月29日"""
    d = _as_date(value)
    return f"{d.month}月{d.day}日"


def cn_year_month(value: object) -> str:
    """2024-09-29 -> 2024年9月"""
    d = _as_date(value)
    return f"{d.year}年{d.month}月"


def percent(value: object) -> str:
    """99.5 -> 99.5%, 100 -> 100%"""
    number = float(str(value))
    return f"{number:g}%"


#: What a clerk writes in an official field that has nothing to say, instead of leaving it blank.
DASH = "—"


def dash(value: object) -> object:
    """The value, or a dash when it is empty (None, blank text, an empty list): a printed form
    never shows an official field left blank, which reads as forgotten or as room to write in."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DASH
    if isinstance(value, list | tuple) and not value:
        return DASH
    return value


FILTERS = {
    "cn_date": cn_date,
    "cn_month_day": cn_month_day,
    "cn_year_month": cn_year_month,
    "percent": percent,
    "dash": dash,
}
