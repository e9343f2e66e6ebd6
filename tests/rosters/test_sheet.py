"""Reading and checking a roster sheet: every planted error reported (row, column, reason), nothing
imported until clean; the sheets schools really send, imported or refused with exactly why."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.session import Database
from service.rosters.errors import RosterInvalid
from service.rosters.models import Roster, RosterEntry
from service.rosters.sheet import check_roster
from service.settings import Settings
from service.units.models import Unit, UnitType
from tests import sheet_shapes
from tests.api.conftest import Service, running_service, setup_licheng
from tests.rosters.roster_data import HEADER, rows, xlsx

COL = {name: i for i, name in enumerate(HEADER)}


def plant(data: list[list[object]]) -> dict[tuple[int, str], str]:
    """Thirty errors of different kinds, one per cell; returns (sheet row, column) -> kind."""
    planted: dict[tuple[int, str], str] = {}

    def put(i: int, column: str, value: object, kind: str) -> None:
        data[i][COL[column]] = value
        planted[(i + 2, column)] = kind

    n = 0
    for _ in range(5):  # bad checksum
        put(
            n,
            "身份证号",
            str(data[n][COL["身份证号"]])[:17] + ("0" if str(data[n][COL["身份证号"]])[-1] != "0" else "1"),
            "checksum",
        )
        n += 1
    for _ in range(3):  # wrong length
        put(n, "身份证号", str(data[n][COL["身份证号"]])[:16], "length")
        n += 1
    for _ in range(4):  # missing guardian
        put(n, "监护人姓名", "", "guardian")
        n += 1
    for _ in range(3):  # missing guardian phone
        put(n, "监护人电话", "", "phone missing")
        n += 1
    for _ in range(3):  # bad phone
        put(n, "监护人电话", "8816128", "phone")
        n += 1
    for _ in range(4):  # unknown school
        put(n, "学校代码", "NO-SUCH-SCHOOL", "school")
        n += 1
    for k in range(3):  # the same student listed again further down
        data[100 + k] = list(data[60 + k])
        planted[(100 + k + 2, "身份证号")] = "duplicate"
    for _ in range(2):  # birth date disagrees with the 身份证号
        put(n, "出生日期", "2017-01-01", "birth")
        n += 1
    for _ in range(2):  # sex disagrees with the 身份证号
        data[n][COL["性别"]] = "男" if data[n][COL["性别"]] == "女" else "女"
        planted[(n + 2, "性别")] = "sex"
        n += 1
    put(n, "学生姓名", "", "name")
    assert len(planted) == 30
    return planted


def test_thirty_planted_errors_are_exactly_the_thirty_reported(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("bureau")
        data = [list(r) for r in rows(120, ["WSR-SH", "WSR-XD", "HJL-XX", "SYXX"])]
        planted = plant(data)
        report_by = (dt.date.today() + dt.timedelta(days=20)).isoformat()
        r = c.post(
            "/api/rosters",
            files={"file": ("一年级名单.xlsx", xlsx(data))},
            data={"kind": "enrollment_notice", "report_by": report_by},
        )
        assert r.status_code == 422 and r.json()["code"] == "ROSTER_INVALID"
        errors = r.json()["details"]["errors"]
        reported = {(e["row"], e["column"]) for e in errors}
        assert reported == set(planted), (sorted(reported - set(planted)), sorted(set(planted) - reported))
        assert len(errors) == 30
        by_cell = {(e["row"], e["column"]): e["message"] for e in errors}
        assert any("校验码不正确" in by_cell[k] for k, v in planted.items() if v == "checksum")
        assert all("同一名学生" in by_cell[k] for k, v in planted.items() if v == "duplicate")
        assert all("不存在" in by_cell[k] for k, v in planted.items() if v == "school")
        assert _count(service, Roster) == 0 and _count(service, RosterEntry) == 0

        # only the good rows, when asked: the 30 rows with an error are skipped
        r = c.post(
            "/api/rosters",
            files={"file": ("一年级名单.xlsx", xlsx(data))},
            data={"kind": "enrollment_notice", "report_by": report_by, "only_valid": "true"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["rows"] == 90 and r.json()["skipped"] == 30 and len(r.json()["errors"]) == 30
        assert _count(service, RosterEntry) == 90


def _count(service: Service, model: type) -> int:
    with service.state.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# --- rosters as schools really keep them, straight through check_roster ---------------------------

SHAPES = {s.key: s for s in sheet_shapes.shapes()}
CASES = [
    pytest.param(key, fmt, id=f"{key}-{fmt}")
    for key, shape in SHAPES.items()
    for fmt in sheet_shapes.FORMATS
    if not (fmt == "csv" and len(shape.sheets) > 1)
]


@pytest.fixture(scope="module")
def licheng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A bureau, one office and its two schools, in a database of their own."""
    db = Database(Settings(data_dir=tmp_path_factory.mktemp("roster-db")))
    db.migrate()
    with db.session() as s:
        bureau = Unit(code="LCJT", name="历城区教体局", type=UnitType.BUREAU.value)
        office = Unit(code="WSR", name="王舍人街道教育办公室", type=UnitType.OFFICE.value, parent=bureau)
        s.add_all([bureau, office])
        for code, name in (("WSR-SH", "王舍人街道石河小学"), ("WSR-XD", "王舍人街道辛甸小学")):
            s.add(Unit(code=code, name=name, type=UnitType.SCHOOL.value, parent=office))
        s.commit()
    yield db
    db.dispose()


def _schools(s: Session, *codes: str) -> list[Unit]:
    return list(s.scalars(select(Unit).where(Unit.code.in_(codes)).order_by(Unit.code)))


@pytest.mark.parametrize(("key", "fmt"), CASES)
def test_every_shape_a_school_sends_imports_or_says_exactly_why_not(
    key: str, fmt: str, licheng: Database, roster_corpus: dict[tuple[str, str], tuple[str, bytes]]
) -> None:
    shape = SHAPES[key]
    name, data = roster_corpus[(key, fmt)]
    with licheng.session() as s:
        schools = _schools(s, "WSR-SH", "WSR-XD")  # a bureau's import: the school column is needed
        if shape.refused:
            with pytest.raises(RosterInvalid) as refused:
                check_roster(s, data, name, "enrollment_notice", schools)
            assert shape.refused in refused.value.message
            errors = refused.value.details["errors"]
            assert [(e["column"], e["field"]) for e in errors] == [("监护人电话", "guardian_phone")]
            return
        check = check_roster(s, data, name, "enrollment_notice", schools)
    assert {r.row: r.values["student_name"] for r in check.good} == shape.imported
    assert [(e["row"], e["column"], e["value"]) for e in check.errors] == [(r, c, v) for r, c, v, _ in shape.errors]
    assert all(e["message"].startswith(x[3]) for e, x in zip(check.errors, shape.errors, strict=True))
    for r in check.good:
        assert r.school is not None
        assert r.school.code == shape.values.get(r.row, {}).get("school", "WSR-SH")


def test_a_schools_own_roster_may_leave_out_the_school_code(licheng: Database) -> None:
    body = [[s.name, s.id_number, s.guardian, s.phone] for s in sheet_shapes.STUDENTS]
    data = xlsx(body, ["学生姓名", "身份证号", "监护人姓名", "监护人电话"])
    with licheng.session() as s:
        check = check_roster(s, data, "名单.xlsx", "enrollment_notice", _schools(s, "WSR-SH"))
        assert not check.errors
        assert [(r.row, r.school.code if r.school else None) for r in check.good] == [
            (2, "WSR-SH"),
            (3, "WSR-SH"),
            (4, "WSR-SH"),
            (5, "WSR-SH"),
        ]
        # a bureau importing the same sheet must say which school each student is in
        with pytest.raises(RosterInvalid, match="表头缺少列：学校代码") as refused:
            check_roster(s, data, "名单.xlsx", "enrollment_notice", _schools(s, "WSR-SH", "WSR-XD"))
        assert refused.value.details["errors"][0]["title"] == "学校代码"


def test_each_row_error_carries_what_was_typed(licheng: Database) -> None:
    body = [s.cells() for s in sheet_shapes.STUDENTS]
    body[0][0] = "石河小学"  # not a school in scope
    body[1][7] = "8816128"  # no area code
    body[2][2] = str(body[2][2])[:17] + ("1" if str(body[2][2])[17] != "1" else "2")  # a typo in the ID
    data = xlsx(body, sheet_shapes.HEADER)
    with licheng.session() as s:
        check = check_roster(s, data, "名单.xlsx", "enrollment_notice", _schools(s, "WSR-SH", "WSR-XD"))
    assert [(e["row"], e["column"], e["value"]) for e in check.errors] == [
        (2, "学校代码", "石河小学"),
        (3, "监护人电话", "8816128"),
        (4, "身份证号", body[2][2]),
    ]
    assert "校验码不正确" in check.errors[2]["message"]
