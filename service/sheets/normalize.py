"""A cell's text as Excel shows it, and each column kind's normal form: codes, 身份证号 (ID
numbers), phones and dates, with the problem when the file lost what the person typed."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from service.sheets.columns import Column

#: A cell's value as the formats hand it over (text, number, bool, date, time or None).
CellValue = object

#: Excel keeps 15 significant digits of a number: anything this large typed as a number has lost digits.
EXACT_DIGITS_LIMIT = 10**15


def shown(value: CellValue) -> str:
    """A cell as Excel shows it: ``370112001`` not ``370112001.0``, ``3.70102201501011E+17`` for a
    number too long to keep, a date as ``2018-03-07``."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        if value.is_integer() and abs(value) < EXACT_DIGITS_LIMIT:
            return str(int(value))
        if abs(value) >= EXACT_DIGITS_LIMIT:
            mantissa, exponent = f"{value:.14E}".split("E")
            return f"{mantissa.rstrip('0').rstrip('.')}E+{int(exponent):02d}"
        return f"{value:.15g}"
    return str(value).strip()


#: Invisible format characters (Unicode category Cf: zero-width space, BOM, soft hyphen, word
#: joiner, direction marks, tag characters…) that a paste from a web system leaves in a cell.
_FORMAT_CHARACTERS = dict.fromkeys(
    cp for cp in (*range(0x10000), *range(0xE0000, 0xE0080)) if unicodedata.category(chr(cp)) == "Cf"
)


def clean_text(text: str) -> str:
    """NFKC (full-width digits and letters become ASCII, a non-breaking or ideographic space a
    space), invisible format characters gone, spaces collapsed."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_FORMAT_CHARACTERS)
    return " ".join(text.split())


def normalize_phone(text: str) -> str:
    """``+86 138 0531 0001`` and ``138-0531-0001`` -> ``13805310001``; ``(0531)88120000`` and
    ``053188120000`` -> ``0531-88120000``. Anything else comes back without its spaces."""
    s = re.sub(r"\s+", "", clean_text(text))
    s = re.sub(r"[—–－]", "-", s)
    s = re.sub(r"^(?:\+86|0086|\(\+?86\))-?", "", s)
    digits = s.replace("-", "")
    if re.fullmatch(r"(?:86)?1[3-9]\d{9}", digits):
        return digits[-11:]
    m = re.fullmatch(r"\((0\d{2,3})\)-?(\d{7,8})(-\d{1,6})?", s) or re.fullmatch(r"(0\d{2,3})-(\d{7,8})(-\d{1,6})?", s)
    if m:
        return f"{m.group(1)}-{m.group(2)}{m.group(3) or ''}"
    m = re.fullmatch(r"(0[12]\d|0[3-9]\d{2})(\d{7,8})", s)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return s


def normalize_date(value: CellValue) -> str | None:
    """A date cell, an Excel serial, ``2025.9.1``, ``2025/9/1``, ``2025年9月1日`` or ``20250901`` as
    ``2025-09-01``; None when it is not a date."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if float(value).is_integer() and 19000101 <= value <= 29991231:
            text = str(int(value))
        elif 1 <= value < 2958466:  # an Excel serial (day 1 is 1900-01-01; Excel's 1900 leap day counted)
            return (dt.date(1899, 12, 30) + dt.timedelta(days=int(value))).isoformat()
        else:
            return None
    else:
        text = clean_text(str(value or "")).replace(" ", "")
        if re.fullmatch(r"[1-9]\d{4}", text):  # a date column left as General shows its serial
            return normalize_date(int(text))
    m = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:\d{1,2}:\d{2}(?::\d{2})?)?", text) or re.fullmatch(
        r"(\d{4})(\d{2})(\d{2})", text
    )
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        return None


_SCIENTIFIC = re.compile(r"\d(?:\.\d+)?[Ee]\+\d{1,3}")


def normalize_cell(value: CellValue, typed: str, column: Column) -> tuple[str, str | None]:
    """The normalised text of a cell, and the problem with it (in Chinese) if reading lost something."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    lost = is_number and abs(value) >= EXACT_DIGITS_LIMIT  # type: ignore[arg-type]
    if column.kind in ("id_number", "phone", "code") and _SCIENTIFIC.fullmatch(typed.strip()):
        lost = True  # the same number saved as the text Excel showed (a CSV)
    if lost:
        what = "身份证号" if column.kind == "id_number" else column.title
        return typed, (
            f"{what}被存成了数字，只剩15位有效数字（表格里现在是 {typed}），后几位已经丢失："
            "请把该列设为“文本”格式后重新填写，或从学籍系统重新导出名单"
        )
    if column.kind == "date":
        return normalize_date(value if not isinstance(value, str) else typed) or clean_text(typed), None
    text = clean_text(typed)
    if column.kind == "phone":
        phone = normalize_phone(text)
        if is_number and not re.fullmatch(r"1[3-9]\d{9}", phone):
            return phone, (
                f"电话被存成了数字，开头的 0 已经丢失（表格里现在是 {typed}）：请把该列设为“文本”格式后重新填写，座机写成 区号-号码"
            )
        return phone, None
    if column.kind == "id_number":
        return text.replace(" ", "").upper(), None
    if column.kind == "code":
        return text.replace(" ", ""), None
    return text, None
