"""Phones, dates and numbers that lost digits, in every form offices type them."""

from __future__ import annotations

import datetime as dt

import pytest

from service.sheets import Column, normalize_date, normalize_phone, read_sheet
from tests.sheets.samples import xlsx


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("13805310001", "13805310001"),
        ("+86 138 0531 0001", "13805310001"),
        ("+86-13805310001", "13805310001"),
        ("8613805310001", "13805310001"),
        ("138-0531-0001", "13805310001"),
        ("１３８ ０５３１ ０００１", "13805310001"),
        ("0531-88120000", "0531-88120000"),
        ("(0531)88120000", "0531-88120000"),
        ("（0531）88120000", "0531-88120000"),
        ("0531 88120000", "0531-88120000"),
        ("053188120000", "0531-88120000"),
        ("01088120000", "010-88120000"),
        ("0531-88120000-806", "0531-88120000-806"),
        ("88120000", "88120000"),  # no area code: left for the import to refuse
    ],
)
def test_phones_written_any_way_are_stored_in_one_form(typed: str, stored: str) -> None:
    assert normalize_phone(typed) == stored


@pytest.mark.parametrize(
    ("value", "date"),
    [
        (dt.date(2025, 9, 1), "2025-09-01"),
        (dt.datetime(2025, 9, 1, 0, 0), "2025-09-01"),
        (45901, "2025-09-01"),
        (45901.0, "2025-09-01"),
        ("45901", "2025-09-01"),
        ("2025.9.1", "2025-09-01"),
        ("2025/9/1", "2025-09-01"),
        ("2025年9月1日", "2025-09-01"),
        ("２０２５年９月１日", "2025-09-01"),
        ("2025-09-01 00:00:00", "2025-09-01"),
        (20250901, "2025-09-01"),
        ("20250901", "2025-09-01"),
        ("2025.2.30", None),
        ("九月一日", None),
    ],
)
def test_dates_in_every_form_offices_type_them(value: object, date: str | None) -> None:
    assert normalize_date(value) == date


def test_a_phone_stored_as_a_number_lost_its_leading_zero_and_says_so() -> None:
    columns = [Column("name", ("姓名",), required=True), Column("phone", ("电话",), kind="phone")]
    sheet = read_sheet(xlsx([["姓名", "电话"], ["张三", 53188120000], ["李四", 13805310001]]), "x.xlsx", columns)
    assert [r.values["phone"] for r in sheet.rows] == ["53188120000", "13805310001"]
    assert [(p["row"], p["value"]) for p in sheet.problems] == [(2, "53188120000")]
    assert "开头的 0 已经丢失" in sheet.problems[0]["message"]
