"""Rosters: every planted error reported (row, column, reason), nothing imported until clean."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.cases.errors import RosterInvalid
from service.cases.models import Case, Roster, RosterEntry
from service.cases.roster import check_roster
from service.db.session import Database
from service.settings import Settings
from service.units.models import Unit, UnitType
from tests import sheet_shapes
from tests.api.conftest import Service, running_service, setup_licheng
from tests.cases.roster_data import HEADER, rows, xlsx

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


def test_receipts_ledger_of_an_enrollment_roster_has_its_grade_and_class(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        data = rows(3, ["WSR-SH"], seed=11)
        report_by = (dt.date.today() + dt.timedelta(days=20)).isoformat()
        r = c.post(
            "/api/rosters",
            files={"file": ("一年级名单.xlsx", xlsx(data))},
            data={"kind": "enrollment_notice", "report_by": report_by},
        )
        assert r.status_code == 201, r.text
        sheet = load_workbook(io.BytesIO(c.get(f"/api/rosters/{r.json()['id']}/receipts.xlsx").content)).active
        assert [cell.value for cell in sheet[1]][2] == "年级班级"
        got = sorted((row[3], row[2]) for row in sheet.iter_rows(min_row=2, values_only=True))
        assert got == sorted((row[1], row[6] + row[7]) for row in data)  # e.g. 一年级3班
        # the pages show the codes a roster needs
        assert "本校代码 <b>WSR-SH</b>" in c.get("/rosters").text
        service.login("bureau")
        assert "WSR-SH" in c.get("/rosters").text and '代码 <span class="code">WSR-SH</span>' in c.get("/units").text


def _count(service: Service, model: type) -> int:
    with service.state.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_return_roster_creates_cases_formulas_stay_text_and_receipts_come_back(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        data = [list(r) for r in rows(6, ["WSR-SH"], seed=11)]
        data[0][COL["学生姓名"]] = '=HYPERLINK("http://evil","点我")'
        header = (*HEADER, "辍学日期", "辍学原因")
        data = [[*r, "2024-09-02", "厌学"] for r in data]
        for r in data:
            r[COL["年级"]] = "六年级"
        report_by = (dt.date.today() + dt.timedelta(days=10)).isoformat()
        r = c.post(
            "/api/rosters",
            files={"file": ("复学名单.xlsx", xlsx(data, header))},
            data={"kind": "return_notice", "report_by": report_by},
        )
        assert r.status_code == 201, r.text
        roster_id = r.json()["id"]
        assert _count(service, Case) == 6
        with service.state.db.session() as s:  # the codes reserved at import, as printed on the notices
            entry = s.scalar(select(RosterEntry).where(RosterEntry.roster_id == roster_id).order_by(RosterEntry.row))
            code = entry.code  # type: ignore[union-attr]
        job = service.wait_job(c.post(f"/api/rosters/{roster_id}/issue").json()["id"])
        assert job["status"] == "done" and job["done"] == 6

        # a guardian opens one notice and confirms it
        doc_id = None
        with service.state.db.session() as s:
            entry = s.scalar(select(RosterEntry).where(RosterEntry.roster_id == roster_id).order_by(RosterEntry.row))
            doc_id = entry.document_id  # type: ignore[union-attr]
            # once issued, the database keeps only the code's hash, like the document's
            assert entry.code == hashlib.sha256(code.encode()).hexdigest()  # type: ignore[union-attr]
        page = c.get(f"/v/{code}")
        assert "我已阅知" in page.text
        c.post(f"/v/{code}/opened")  # the page's script: a person saw it
        service.state.opens.flush()
        phone = data[0][COL["监护人电话"]]  # the guardian of the first row confirms with the end of their phone
        confirmed = c.post(f"/v/{code}/confirm", data={"digits": phone[-4:]})
        assert "已于" in confirmed.text and "确认阅知" in confirmed.text and "我已阅知" not in confirmed.text
        info = c.get(f"/api/rosters/{roster_id}").json()
        assert info["issued"] == 6 and info["opened"] == 1 and info["confirmed"] == 1

        # the receipt ledger keeps the formula-looking name as text
        sheet = load_workbook(io.BytesIO(c.get(f"/api/rosters/{roster_id}/receipts.xlsx").content)).active
        names = [row[3] for row in sheet.iter_rows(min_row=2, values_only=True)]
        assert '\'=HYPERLINK("http://evil","点我")' in names
        confirmed_rows = [row for row in sheet.iter_rows(min_row=2, values_only=True) if row[8]]
        assert len(confirmed_rows) == 1
        # the notice carries the name as text, and the case was created for each row
        with service.state.db.session() as s:
            from service.archive.models import Document

            doc = s.get(Document, doc_id)
            assert doc is not None and doc.case_id is not None
        assert re.search(r"HYPERLINK", str(doc.fields["student_name"]))


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
