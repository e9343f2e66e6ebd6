"""Sealed fields for real, on SQLite and PostgreSQL: after a case with guardians, a roster import and
its batch of notices, no 身份证号, phone or address of the input is in the database file or in a
pg_dump, while the API still shows them to the school and finds duplicates by the blind index; a
value moved to another row does not open; the migration seals a database written before it, picks
up where a stopped run left off, and does nothing the second time."""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.engine import make_url

from service.cases.models import Case, Guardian
from service.crypto import DecryptionFailed
from service.db.sealed import index_of
from service.db.session import MIGRATIONS, Database, alembic_config
from service.ledgers.models import ChildEntry
from service.rosters.models import RosterEntry
from service.settings import Settings
from tests.api.conftest import running_service, setup_licheng
from tests.rosters.roster_data import rows, xlsx

CASE = {
    "student_name": "王浩然",
    "id_number": "37011220120307003X",
    "sex": "男",
    "birth_date": "2012-03-07",
    "grade": "六年级",
    "confirmed": True,
    "home_address": "历城区王舍人街道石河村东街17号",
    "guardians": [
        {"name": "王德福", "relation": "父亲", "phone": "13805319127", "address": "历城区鲍山街道工业北路88号"},
        {"name": "李秀兰", "relation": "母亲", "phone": "15953104468"},
    ],
}


def stored_bytes(settings: Settings) -> bytes:
    """Everything the database keeps, as bytes: the SQLite files once the WAL is checkpointed, or
    PostgreSQL's own dump of the database (plain SQL, the way a stolen dump would read)."""
    url = make_url(settings.database)
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(settings.database)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        return b"".join(p.read_bytes() for p in settings.data_dir.glob("*.sqlite3*"))
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(["pg_dump", "--dbname", plain], capture_output=True, check=True, timeout=120).stdout


def test_no_id_number_phone_or_address_is_stored_in_the_clear(tmp_path: Path, database_url: str) -> None:
    sheet = rows(6, ["WSR-SH", "WSR-XD"], seed=11)
    # each row's address its own, so that finding it means finding that row's
    sheet = [(*r[:8], f"历城区王舍人街道{i}号院", *r[9:]) for i, r in enumerate(sheet)]
    with running_service(tmp_path, database_url=database_url) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        r = c.post("/api/cases", json={**CASE, "school_id": units["WSR-SH"]})
        assert r.status_code == 201, r.text
        case_id = r.json()["id"]
        # the same child again (typed with a lower-case x): found by the blind index
        again = c.post("/api/cases", json={**CASE, "id_number": "37011220120307003x", "school_id": units["WSR-SH"]})
        assert again.status_code == 409 and again.json()["code"] == "DUPLICATE_CASE", again.text

        service.login("bureau")
        twice = c.post(
            "/api/rosters",
            files={"file": ("名单.xlsx", xlsx([*sheet, sheet[0]]))},
            data={"kind": "enrollment_notice", "report_by": "2099-08-31"},
        )
        assert twice.status_code == 422 and "身份证号重复" in twice.text
        roster = c.post(
            "/api/rosters",
            files={"file": ("名单.xlsx", xlsx(sheet))},
            data={"kind": "enrollment_notice", "report_by": "2099-08-31"},
        )
        assert roster.status_code == 201, roster.text
        job = c.post(f"/api/rosters/{roster.json()['id']}/issue")
        assert job.status_code in (200, 201, 202), job.text
        assert service.wait_job(job.json()["id"])["status"] == "done"

        # the school sees its child whole; another school's head does not see it at all
        service.login("wsr-sh-head")
        shown = c.get(f"/api/cases/{case_id}").json()
        assert shown["id_number"] == CASE["id_number"] and shown["home_address"] == CASE["home_address"]
        assert [(g["phone"], g["address"]) for g in shown["guardians"]] == [
            ("13805319127", "历城区鲍山街道工业北路88号"),
            ("15953104468", None),
        ]
        service.login("hjl-xx-head")
        assert c.get(f"/api/cases/{case_id}").status_code == 404

        with service.state.db.session() as s:
            # the 适龄儿童台账 took the roster's first-graders, and the notices carry their fields
            children = s.scalars(select(ChildEntry).order_by(ChildEntry.row)).all()
            assert [(e.id_number, e.guardian_phone, e.home_address) for e in children] == [
                (r[2], r[11], r[8]) for r in sheet
            ]
            entries = s.scalars(select(RosterEntry).order_by(RosterEntry.row)).all()
            assert [e.fields["student_id_number"] for e in entries] == [r[2] for r in sheet]
            assert all(e.document_id is not None for e in entries)
            # a child is unique in its school and year by the index, and found by it
            bidx = index_of(s, sheet[0][2].lower(), "id_number")
            assert s.scalar(select(ChildEntry.student_name).where(ChildEntry.id_number_bidx == bidx)) == sheet[0][1]

        secrets = [CASE["id_number"], CASE["home_address"], "13805319127", "15953104468", "工业北路88号"]
        for r in sheet:
            secrets += [r[2], r[8], r[11]]
        stored = stored_bytes(service.settings)
        # what is not sealed is there to be found (the search works), what is sealed is not
        assert CASE["student_name"].encode() in stored
        found = [v for v in secrets if v.encode() in stored]
        assert found == []


def test_a_sealed_value_moved_to_another_row_or_column_does_not_open(tmp_path: Path, database_url: str) -> None:
    with running_service(tmp_path, database_url=database_url) as service:
        units = setup_licheng(service)
        service.login("wsr-sh-head")
        first = service.client.post("/api/cases", json={**CASE, "school_id": units["WSR-SH"]}).json()["id"]
        other = {**CASE, "id_number": "370112201203070013", "student_name": "王浩宇"}
        second = service.client.post("/api/cases", json={**other, "school_id": units["WSR-SH"]}).json()["id"]
        db = service.state.db
        with db.session() as s:
            a, b = s.get(Case, first), s.get(Case, second)
            assert a is not None and b is not None
            b.id_number_sealed = a.id_number_sealed  # another row's ID number
            s.commit()
        with db.session() as s:
            b = s.get(Case, second)
            assert b is not None
            with pytest.raises(DecryptionFailed):
                _ = b.id_number
            b.id_number_sealed = b.home_address_sealed  # its own address, in the ID number's column
            s.commit()
        with db.session() as s:
            b = s.get(Case, second)
            assert b is not None
            with pytest.raises(DecryptionFailed):
                _ = b.id_number
            assert b.home_address == CASE["home_address"]  # in its own column, its own row: opens


# --- the migration ----------------------------------------------------------------------------------


def _migration() -> ModuleType:
    path = MIGRATIONS / "versions" / "0019_seal_fields.py"
    spec = importlib.util.spec_from_file_location("seal_fields_0019", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _insert(conn: sa.Connection, table: sa.Table, **given: Any) -> None:
    """A row with ``given`` values and something of the right type in every other required column."""
    dummy = {
        sa.Integer: 1,
        sa.Boolean: False,
        sa.Float: 0.0,
        sa.Date: dt.date(2026, 9, 1),
        sa.DateTime: dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
        sa.JSON: {},
        sa.String: "x",
    }
    row = dict(given)
    for column in table.columns:
        if column.name in row or column.nullable or column.server_default is not None or column.primary_key:
            continue
        row[column.name] = next(v for t, v in dummy.items() if isinstance(column.type, t))
    conn.execute(table.insert().values(row))


PLAIN_CHILD = "370112201805050036"


def test_the_migration_seals_a_database_written_before_it_and_resumes(tmp_path: Path, database_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url=database_url)
    db = Database(settings)
    try:
        from alembic import command

        command.upgrade(alembic_config(db.engine, db.audit_key, db.keyring), "0017_retention")
        meta = sa.MetaData()
        meta.reflect(db.engine)
        t = meta.tables
        documents_fields = {"student_id_number": "370112201203070021", "guardian_phone": "13700001111"}
        with db.engine.begin() as conn:
            _insert(conn, t["units"], id=1, code="S1", name="石河小学", type="school")
            for n, (id_number, address) in enumerate(
                [
                    ("370112201203070021", "石河村一号"),
                    ("370112201203070048", None),
                    ("370112201203070056", "石河村三号"),
                ],
                1,
            ):
                _insert(
                    conn,
                    t["cases"],
                    id=n,
                    school_id=1,
                    id_number=id_number,
                    home_address=address,
                    student_name=f"生{n}",
                )
                _insert(conn, t["guardians"], id=n, case_id=n, name="父", relation="父亲", phone=f"1380000000{n}")
            _insert(
                conn,
                t["child_entries"],
                id=1,
                school_id=1,
                year=2026,
                id_number=PLAIN_CHILD,
                guardian_phone="13911112222",
            )
            _insert(conn, t["child_entries"], id=2, school_id=1, year=2026, id_number="erased-2")
            _insert(conn, t["documents"], id=1, code_hash="h1", fields=documents_fields, public={})
            _insert(conn, t["rosters"], id=1, issuer_id=1)
            _insert(conn, t["roster_entries"], id=1, roster_id=1, school_id=1, code="c1", fields=documents_fields)

        # a run that stopped after its first committed batch: one case sealed, nothing else
        migration = _migration()
        command.upgrade(alembic_config(db.engine, db.audit_key, db.keyring), "0018_sealed_columns")
        with db.engine.begin() as conn:
            assert migration.seal_batch(conn, db.keyring, "cases", size=1) == 1
            first = conn.execute(sa.text("SELECT row_key, id_number_sealed FROM cases WHERE id = 1")).one()

        db.migrate()
        with db.engine.connect() as conn:
            # the first row kept what the stopped run sealed; the plain columns are gone
            assert tuple(conn.execute(sa.text("SELECT row_key, id_number_sealed FROM cases WHERE id = 1")).one()) == (
                first[0],
                bytes(first[1]),
            )
            columns = {c["name"] for c in sa.inspect(conn).get_columns("cases")}
            assert "id_number" not in columns and "home_address" not in columns
        with db.session() as s:
            cases = s.scalars(select(Case).order_by(Case.id)).all()
            assert [(c.id_number, c.home_address) for c in cases] == [
                ("370112201203070021", "石河村一号"),
                ("370112201203070048", None),
                ("370112201203070056", "石河村三号"),
            ]
            assert [g.phone for g in s.scalars(select(Guardian).order_by(Guardian.id))] == [
                "13800000001",
                "13800000002",
                "13800000003",
            ]
            by_index = select(Case.id).where(Case.id_number_bidx == index_of(s, "370112201203070048", "id_number"))
            assert s.scalar(by_index) == 2
            child = s.get(ChildEntry, 1)
            assert child is not None and (child.id_number, child.guardian_phone) == (PLAIN_CHILD, "13911112222")
            entry = s.get(RosterEntry, 1)
            assert entry is not None and entry.fields == documents_fields
            before = {
                table: sorted(map(tuple, s.execute(sa.text(f"SELECT * FROM {table}")).all()))
                for table in ("cases", "guardians", "child_entries", "documents", "roster_entries")
            }
        # the plain values are gone from the files too (SQLite rewrote the rows without them)
        stored = stored_bytes(settings)
        assert "石河小学".encode() in stored  # not sealed: the search works
        assert [
            v for v in ("370112201203070021", PLAIN_CHILD, "13911112222", "13800000002") if v.encode() in stored
        ] == []

        db.migrate()  # a second run finds nothing to do
        with db.session() as s:
            after = {table: sorted(map(tuple, s.execute(sa.text(f"SELECT * FROM {table}")).all())) for table in before}
        assert after == before
    finally:
        db.dispose()
