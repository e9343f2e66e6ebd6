"""One roster feeds the ledger: a school's first-grade 入学通知书 roster fills its 适龄儿童台账 (same
columns, 随迁子女 where the sheet marks it) without a second import; other grades and a second import of
the same children add nothing; a 复学通知书 roster adds nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io

from service.container import Services
from tests.district import load_district, scope_of, unit
from tests.ledgers.term import YEAR, goto
from tests.rosters.roster_data import HEADER, resident_id


def sheet(rows: list[tuple[str, ...]], migrant: list[str] | None = None, dropped: str | None = None) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    extra = ["随迁子女"] if migrant is not None else ["辍学日期"] if dropped is not None else []
    w.writerow([*HEADER, *extra])
    for i, r in enumerate(rows):
        w.writerow([*r, *([migrant[i]] if migrant is not None else [dropped] if dropped is not None else [])])
    return out.getvalue().encode("utf-8")


def child(n: int, grade: str = "一年级", name: str = "") -> tuple[str, ...]:
    idn = resident_id(n, "20210315", female=False)
    return (
        "WSR-SH",
        name or f"新生{n}",
        idn,
        "男",
        "2021-03-15",
        "G" + idn,
        grade,
        "1班",
        "王舍人街道",
        "家长",
        "父亲",
        "13800000001",
    )


def test_a_first_grade_roster_fills_the_age_eligible_childrens_ledger(services: Services) -> None:
    load_district(services)
    goto(services.clock, dt.date(YEAR, 7, 10))
    report_by = dt.date(YEAR, 8, 31)
    with services.db.session() as s:
        head = scope_of(s, "wsr-sh-head")
        rows = [child(1, name="张一"), child(3, name="李二"), child(5, "七年级", name="王七")]
        services.rosters.import_roster(
            s, head, sheet(rows, ["否", "是", ""]), "新生.csv", kind="enrollment_notice", report_by=report_by
        )
        s.commit()
        school = unit(s, "WSR-SH").id
        ledger = services.ledgers.children(s, {school}, YEAR)
        assert [(c.student_name, c.migrant, c.guardian_phone) for c in ledger] == [
            ("张一", False, "13800000001"),
            ("李二", True, "13800000001"),
        ]  # 王七 enters 七年级: not an 适龄儿童 of the first grade
        assert ledger[0].birth_date == dt.date(2021, 3, 15) and ledger[0].sex == "男"
        # the same children in a second roster (a correction) are not added twice
        services.rosters.import_roster(
            s, head, sheet([child(1, name="张一")]), "补发.csv", kind="enrollment_notice", report_by=report_by
        )
        s.commit()
        returning = sheet([child(7, "二年级", name="赵四")], dropped=f"{YEAR}-06-20")
        services.rosters.import_roster(s, head, returning, "复学.csv", kind="return_notice", report_by=report_by)
        s.commit()
        assert [c.student_name for c in services.ledgers.children(s, {school}, YEAR)] == ["张一", "李二"]
