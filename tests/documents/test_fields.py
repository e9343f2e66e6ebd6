from __future__ import annotations

import pytest

from service.documents.errors import FieldsInvalid
from service.documents.fields import DASH, cn_date, cn_month_day, dash, percent, validate_fields
from service.documents.registry import KINDS, example_fields, get_kind
from service.settings import Settings


@pytest.mark.parametrize("key", list(KINDS))
def test_every_schema_example_is_valid(settings: Settings, key: str) -> None:
    kind = get_kind(key)
    fields = validate_fields(kind, example_fields(kind, settings.schemas_dir), settings.schemas_dir)
    assert fields


def test_defaults_fill_what_was_left_out(settings: Settings) -> None:
    kind = get_kind("enrollment_notice")
    fields = example_fields(kind, settings.schemas_dir)
    del fields["regulation"]
    assert validate_fields(kind, fields, settings.schemas_dir)["regulation"] == "山东省义务教育条例"


def test_nested_errors_name_the_row(settings: Settings) -> None:
    kind = get_kind("dropout_register")
    fields = example_fields(kind, settings.schemas_dir)
    fields["guardians"][1]["phone"] = "138"
    fields["attempts"][2]["method"] = "微信"
    with pytest.raises(FieldsInvalid) as exc:
        validate_fields(kind, fields, settings.schemas_dir)
    errors = {e["field"]: e for e in exc.value.details["errors"]}
    assert errors["guardians[1].phone"]["title"] == "监护人第2项·联系电话"
    assert errors["attempts[2].method"]["message"].startswith("应为以下之一：家访、电话")


def test_not_an_object(settings: Settings) -> None:
    with pytest.raises(FieldsInvalid):
        validate_fields(get_kind("pledge"), ["not", "an", "object"], settings.schemas_dir)  # type: ignore[arg-type]


def test_chinese_dates_as_documents_print_them() -> None:
    assert cn_date("2024-09-05") == "2024年9月5日"
    assert cn_month_day("2024-09-29") == "9月29日"
    assert percent(99.5) == "99.5%" and percent(100) == "100%"


def test_key_groups_none_stands_alone(settings: Settings) -> None:
    kind = get_kind("dropout_register")
    fields = example_fields(kind, settings.schemas_dir)
    assert validate_fields(kind, fields | {"key_groups": ["无"]}, settings.schemas_dir)["key_groups"] == ["无"]
    with pytest.raises(FieldsInvalid) as exc:
        validate_fields(kind, fields | {"key_groups": ["无", "留守儿童"]}, settings.schemas_dir)
    assert exc.value.details["errors"] == [
        {"field": "key_groups", "title": "重点群体", "message": "选了“无”就不能再选其他重点群体"}
    ]


def test_an_empty_official_field_prints_a_dash() -> None:
    assert [dash(v) for v in (None, "", "  ", [], "汉族", ["无"])] == [DASH, DASH, DASH, DASH, "汉族", ["无"]]
