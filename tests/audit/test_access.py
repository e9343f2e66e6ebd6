"""The access log: reads noted in memory are written in order by a flush, chained and keyed as the
audit log is, on SQLite and PostgreSQL; ``docsign access verify`` finds an edited, a deleted and a
cut-off entry."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from sqlalchemy import select, text

from service.audit.access import AccessLog, Read, verify_access_chain
from service.audit.models import AccessEntry
from service.db.session import Database
from service.settings import Settings
from tests.databases import postgres_database

DOCSIGN = str(Path(sys.executable).with_name("docsign"))
AT = dt.datetime(2026, 9, 25, 8, 0, tzinfo=dt.UTC)


def _read(i: int) -> Read:
    return Read(
        at=AT + dt.timedelta(seconds=i),
        user_id=7,
        username="hjl-xx-head",
        role="unit_signer",
        unit_id=3,
        client="10.0.0.8",
        user_agent="Mozilla/5.0",
        via="GET /cases/{case_id}" if i % 2 else "GET /api/cases",
        subject="case" if i % 2 else "case_list",
        subject_id=str(i) if i % 2 else "",
        filter={} if i % 2 else {"status": "open"},
        rows=None if i % 2 else 12,
    )


def _verify(tmp_path: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCSIGN_DATA_DIR": str(tmp_path), "DOCSIGN_DATABASE_URL": database_url}
    return subprocess.run([DOCSIGN, "access", "verify"], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_reads_are_chained_and_tampering_is_found(tmp_path: Path, backend: str) -> None:
    with postgres_database() if backend == "postgresql" else nullcontext("") as url:
        settings = Settings(data_dir=tmp_path, database_url=url)
        db = Database(settings)
        db.migrate()
        log = AccessLog(db)
        for i in range(3):
            log.note(_read(i))
        with db.session() as s:
            assert s.scalars(select(AccessEntry)).all() == []  # noted, not written yet
        assert log.flush() == 3
        for i in range(3, 6):
            log.note(_read(i))
        assert log.flush() == 3 and log.flush() == 0
        with db.session() as s:
            entries = s.scalars(select(AccessEntry).order_by(AccessEntry.id)).all()
            assert [(e.subject, e.subject_id, e.rows) for e in entries[:2]] == [
                ("case_list", "", 12),
                ("case", "1", None),
            ]
            assert entries[0].filter == {"status": "open"} and entries[0].username == "hjl-xx-head"
            assert entries[0].role == "unit_signer" and entries[0].client == "10.0.0.8"
            assert [e.at for e in entries] == sorted(e.at for e in entries)
            report = verify_access_chain(s)
        assert report.ok and report.events == 6
        ok = _verify(tmp_path, url)
        assert ok.returncode == 0 and "访问日志完整：共 6 条记录" in ok.stdout, ok.stdout + ok.stderr

        # someone with the database but not the key hides whose read it was
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE access_log SET username = 'wsr-head' WHERE id = 4"))
        with db.session() as s:
            report = verify_access_chain(s)
        assert not report.ok and report.first_bad_id == 4 and "被修改" in (report.reason or "")
        bad = _verify(tmp_path, url)
        assert bad.returncode == 1 and "访问日志被改动" in bad.stdout and "第 4 号记录" in bad.stdout
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE access_log SET username = 'hjl-xx-head' WHERE id = 4"))
            conn.execute(text("DELETE FROM access_log WHERE id = 2"))
        with db.session() as s:
            report = verify_access_chain(s)
        assert not report.ok and report.first_bad_id == 3 and "删除" in (report.reason or "")
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM access_log WHERE id >= 2"))
        with db.session() as s:
            report = verify_access_chain(s)
        assert not report.ok and "末尾缺少记录（应有 6 条，实有 1 条）" in (report.reason or "")
        db.dispose()


def test_a_failed_flush_keeps_the_reads_in_order(tmp_path: Path) -> None:
    db = Database(Settings(data_dir=tmp_path))
    log = AccessLog(db)  # not migrated: the table is missing, as when the database is away
    log.note(_read(0))
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
        log.flush()
    log.note(_read(1))
    db.migrate()
    assert log.flush() == 2
    with db.session() as s:
        assert [e.subject for e in s.scalars(select(AccessEntry).order_by(AccessEntry.id))] == ["case_list", "case"]
        assert verify_access_chain(s).ok
    db.dispose()
