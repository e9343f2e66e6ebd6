"""The platform's 疑似辍学 list imported with a bureau's saved column mapping, and the 人籍一致
comparison of a roster with the 学籍系统's export."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.accounts.errors import Forbidden
from service.cases.models import Case, CaseStatus
from service.container import Services
from service.ledgers.exchange import MappingInvalid
from service.rosters.errors import RosterInvalid
from tests.district import load_district, scope_of
from tests.ledgers.term import TERM_START, goto, new_case, sheet_rows, xlsx
from tests.rosters.roster_data import resident_id

PLATFORM = {
    "school": "学校名称",
    "student_name": "学生姓名",
    "id_number": "身份证件号码",
    "sex": "性别",
    "birth_date": "出生年月日",
    "grade": "年级",
    "class_name": "班级",
    "student_number": "全国学籍号",
    "guardian_name": "家长姓名",
    "guardian_phone": "家长手机",
    "reason": "疑似原因",
}
HEADER = (
    "序号",
    "学校名称",
    "学生姓名",
    "性别",
    "出生年月日",
    "身份证件号码",
    "全国学籍号",
    "年级",
    "班级",
    "家长姓名",
    "家长手机",
    "疑似原因",
)


def platform_row(n: int, school: str, name: str, **over: str) -> tuple[str, ...]:
    born = "20130611"
    values = {
        "school": school,
        "name": name,
        "sex": "男",
        "birth": "2013-06-11",
        "id": resident_id(n, born, female=False),
        "number": f"G{resident_id(n, born, female=False)}",
        "grade": "八年级",
        "class": "三班",
        "guardian": f"{name[0]}家长",
        "phone": f"139053{n:05d}",
        "reason": "连续缺课",
        **over,
    }
    return (
        str(n),
        *(
            values[k]
            for k in ("school", "name", "sex", "birth", "id", "number", "grade", "class", "guardian", "phone", "reason")
        ),
    )


def test_a_platform_list_imports_with_the_saved_mapping(services: Services) -> None:
    load_district(services)
    goto(services.clock, TERM_START)
    with services.db.session() as s:
        bureau, school = scope_of(s, "bureau"), scope_of(s, "wsr-sh-head")
        with pytest.raises(Forbidden):
            services.ledgers.exchange.set_mapping(s, school, PLATFORM)
        with pytest.raises(MappingInvalid) as bad:
            services.ledgers.exchange.set_mapping(s, bureau, {**PLATFORM, "student_name": "", "sex": "学生姓名"})
        assert [e["field"] for e in bad.value.details["errors"]] == ["姓名"]
        with pytest.raises(MappingInvalid, match="对应了同一列"):
            services.ledgers.exchange.set_mapping(s, bureau, {**PLATFORM, "sex": "学生姓名"})
        s.rollback()
        services.ledgers.exchange.set_mapping(s, bureau, PLATFORM)
        s.commit()
        already = new_case(services, s, "wsr-sh-head", "WSR-SH", 93, "韦已在册")
        sh, xd = "历城区王舍人街道石河小学", "历城区王舍人街道辛甸小学"
        rows = [
            ("全国基础教育管理服务平台 疑似辍学学生名单（下发）",),
            HEADER,
            platform_row(91, sh, "杨新一"),
            platform_row(93, sh, "韦已在册", id=already.id_number, birth="2013-05-10"),
            platform_row(95, xd, "朱新二"),
            platform_row(97, sh, "秦坏号", id="370112201306110000"),
        ]
        sheet = xlsx(rows)
        count = select(func.count()).select_from(Case)
        with pytest.raises(RosterInvalid) as exc:
            services.ledgers.exchange.import_suspected(s, bureau, sheet, "疑似辍学.xlsx")
        assert {e["row"] for e in exc.value.details["errors"]} == {6}
        s.rollback()
        assert s.scalar(count) == 1  # nothing half-saved
        # a school imports only its own rows: another school's is an error
        with pytest.raises(RosterInvalid) as exc:
            services.ledgers.exchange.import_suspected(s, school, sheet, "疑似辍学.xlsx", only_valid=False)
        assert {e["row"] for e in exc.value.details["errors"]} == {5, 6}
        s.rollback()
        result = services.ledgers.exchange.import_suspected(s, bureau, sheet, "疑似辍学.xlsx", only_valid=True)
        s.commit()
        assert result.skipped == [(4, "韦已在册")] and [e["row"] for e in result.errors] == [6]
        made = {c.student_name: c for c in s.scalars(select(Case).where(Case.id.in_(result.created)))}
        assert set(made) == {"杨新一", "朱新二"}
        assert all(c.status == CaseStatus.SUSPECTED for c in made.values())
        assert (
            made["朱新二"].school.name == xd
            and made["杨新一"].student_number == f"G{resident_id(91, '20130611', female=False)}"
        )
        assert made["杨新一"].reason_detail == "平台下发疑似辍学：连续缺课"
        assert s.scalar(count) == 3 and already.id
        # the same list again creates nobody
        again = services.ledgers.exchange.import_suspected(s, bureau, sheet, "疑似辍学.xlsx", only_valid=True)
        assert again.created == [] and [r for r, _ in again.skipped] == [3, 4, 5]


def test_a_roster_compared_with_the_register_lists_exactly_the_mismatches(services: Services) -> None:
    ids = [resident_id(2 * n + 1, "20200301", female=False) for n in range(6)]
    roster = xlsx(
        [
            ("一年级花名册",),
            ("姓名", "身份证号", "学籍号"),
            ("甲", ids[0], ""),
            ("乙", ids[1], ""),
            ("丙", "", "L2027003"),  # no 身份证号 yet: matched by 学籍号
            ("丁", ids[3], ""),  # not in the register
        ]
    )
    register = xlsx(
        [
            ("学籍号", "学生姓名", "身份证件号"),
            ("L2027001", "甲", ids[0]),
            ("L2027002", "乙", ids[1]),
            ("L2027003", "丙", ids[2]),
            ("L2027005", "戊", ids[4]),  # on the register, not at school
        ]
    )
    result = services.ledgers.exchange.compare((roster, "花名册.xlsx"), (register, "学籍.xlsx"))
    assert (result.roster, result.register) == (4, 4)
    assert [(c.row, c.name) for c in result.only_roster] == [(6, "丁")]
    assert [(c.row, c.name, c.id_number) for c in result.only_register] == [(5, "戊", ids[4])]
    with pytest.raises(RosterInvalid, match="身份证号"):
        services.ledgers.exchange.compare((xlsx([("姓名", "班级"), ("甲", "一班")]), "x.xlsx"), (register, "学籍.xlsx"))


def test_a_ledger_exports_in_the_provincial_layout_the_bureau_mapped(services: Services) -> None:
    load_district(services)
    goto(services.clock, TERM_START)
    with services.db.session() as s:
        bureau, head = scope_of(s, "bureau"), scope_of(s, "wsr-sh-head")
        open_case = new_case(services, s, "wsr-sh-head", "WSR-SH", 101, "许在册")
        back = new_case(services, s, "wsr-sh-head", "WSR-SH", 103, "何复学")
        services.cases.returned(s, head, back, TERM_START)
        s.commit()
        with pytest.raises(MappingInvalid, match="至少要对应一列"):
            services.ledgers.exchange.set_mapping(s, bureau, {}, "ledger_export")
        s.rollback()
        layout = {"id_number": "身份证件号码", "student_name": "学生姓名", "status": "控辍状态", "closure": "销号类型"}
        services.ledgers.exchange.set_mapping(s, bureau, layout, "ledger_export")
        s.commit()
        mapping = services.ledgers.exchange.mapping(s, bureau.unit, "ledger_export")
        ledger = services.ledgers.ledger(s, bureau.unit, "dropouts")
        masked = sheet_rows(services.ledgers.provincial_workbook(ledger, mapping))
        assert masked[1][1] == open_case.id_number[:6] + "********" + open_case.id_number[-4:]
        rows = sheet_rows(services.ledgers.provincial_workbook(ledger, mapping, full=True))
        assert rows == [
            ["学生姓名", "身份证件号码", "控辍状态", "销号类型"],
            ["许在册", open_case.id_number, "辍学", None],
            ["何复学", back.id_number, "已复学", "已复学"],
        ]
