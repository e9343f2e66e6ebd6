"""CSV files as Excel and WPS save them."""

from __future__ import annotations

import pytest

from service.sheets import read_table


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_csv_saved_by_excel_or_wps(encoding: str) -> None:
    data = "学校代码,学生姓名\n\nWSR-SH,张三\n".encode(encoding)
    assert read_table(data, "名单.CSV") == [(1, ["学校代码", "学生姓名"]), (3, ["WSR-SH", "张三"])]
