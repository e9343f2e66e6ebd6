"""The audit chain detects an edited row and a deleted row."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import text

from service.audit.service import Actor, record, verify_chain
from service.db.session import Database
from service.settings import Settings


def _db(tmp_path: Path) -> Database:
    db = Database(Settings(data_dir=tmp_path))
    db.migrate()
    return db


def test_chain_detects_edits_and_deletions(tmp_path: Path) -> None:
    db = _db(tmp_path)
    at = dt.datetime(2024, 9, 25, 8, 0, tzinfo=dt.UTC)
    with db.session() as s:
        for i in range(6):
            record(
                s,
                Actor(1, "韩玮玮", 1, "127.0.0.1"),
                "document.sign",
                "document",
                i,
                at + dt.timedelta(minutes=i),
                unit="石河小学",
                late=False,
            )
        s.commit()
        assert verify_chain(s).ok and verify_chain(s).events == 6

    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET detail = :d WHERE id = 3"), {"d": '{"unit": "石河小学", "late": true}'}
        )
    with db.session() as s:
        report = verify_chain(s)
    assert not report.ok and report.first_bad_id == 3 and "被修改" in (report.reason or "")

    db2 = _db(tmp_path / "second")
    with db2.session() as s:
        for i in range(4):
            record(s, Actor(None, "系统"), "campaign.issue", "campaign", i, at)
        s.commit()
    with db2.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = 2"))
    with db2.session() as s:
        report = verify_chain(s)
    assert not report.ok and report.first_bad_id == 3 and "删除" in (report.reason or "")
    db.dispose()
    db2.dispose()


def test_cutting_the_end_off_is_detected(tmp_path: Path) -> None:
    db = _db(tmp_path)
    at = dt.datetime(2024, 9, 25, 8, 0, tzinfo=dt.UTC)
    with db.session() as s:
        for i in range(3):
            record(s, Actor(None, "系统"), "campaign.issue", "campaign", i, at)
        s.commit()
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = 3"))
    with db.session() as s:
        report = verify_chain(s)
    assert not report.ok and "末尾" in (report.reason or "")
    db.dispose()


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    """Two transactions appending at once (the second starts while the first is open) still form one chain."""
    import threading

    db = _db(tmp_path)
    at = dt.datetime(2024, 9, 25, 8, 0, tzinfo=dt.UTC)
    first_open = threading.Event()

    def slow() -> None:
        with db.session() as s:
            record(s, Actor(None, "甲"), "document.sign", "document", 1, at)
            first_open.set()
            threading.Event().wait(0.5)
            s.commit()

    def fast() -> None:
        first_open.wait()
        with db.session() as s:
            record(s, Actor(None, "乙"), "document.sign", "document", 2, at)
            s.commit()

    threads = [threading.Thread(target=slow), threading.Thread(target=fast)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.session() as s:
        report = verify_chain(s)
    assert report.ok and report.events == 2
    db.dispose()


def test_a_writer_without_the_key_cannot_rewrite_the_chain(tmp_path: Path) -> None:
    """Someone who can write the database rewrites a row and recomputes every hash after it, as a
    plain SHA-256 chain would let them: the keyed chain still names the rewritten entry."""
    import hashlib
    import json

    from service.audit.models import AuditEvent, AuditHead

    db = _db(tmp_path)
    at = dt.datetime(2024, 9, 25, 8, 0, tzinfo=dt.UTC)
    with db.session() as s:
        for i in range(5):
            record(s, Actor(1, "韩玮玮", 1, "127.0.0.1"), "document.revoke", "document", i, at, reason="发文有误")
        s.commit()
        assert verify_chain(s).ok

    def plain(e: AuditEvent, prev: str) -> str:
        payload = {
            "prev": prev,
            "at": e.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "actor_user_id": e.actor_user_id,
            "actor": e.actor,
            "action": e.action,
            "object": [e.object_type, e.object_id],
            "unit_id": e.unit_id,
            "client": e.client,
            "detail": e.detail,
        }
        text_ = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text_.encode()).hexdigest()

    with db.session() as s:
        events = s.query(AuditEvent).order_by(AuditEvent.id).all()
        prev = events[1].hash
        for e in events[2:]:
            if e.id == 3:
                e.detail = {"reason": "应校长要求撤回"}
            e.prev_hash = prev
            e.hash = plain(e, prev)
            prev = e.hash
        head = s.get(AuditHead, 1)
        assert head is not None
        head.last_hash = prev
        s.commit()
    with db.session() as s:
        report = verify_chain(s)
    assert not report.ok and report.first_bad_id == 3 and "被修改" in (report.reason or "")

    db.dispose()


def test_personal_data_in_details_is_masked(tmp_path: Path) -> None:
    db = _db(tmp_path)
    at = dt.datetime(2024, 9, 25, 8, 0, tzinfo=dt.UTC)
    with db.session() as s:
        event = record(
            s,
            Actor(1, "赵明（石河小学）", 1),
            "case.note",
            "case",
            7,
            at,
            student_name="王浩然",
            reason="监护人 13805310001 来电，学生身份证号 370112201203070013",
            count=3,
        )
        s.commit()
        assert event.detail == {
            "student_name": "王**",
            "reason": "监护人 138****0001 来电，学生身份证号 370112********0013",
            "count": 3,
        }
        assert verify_chain(s).ok
    db.dispose()


def test_a_chain_written_before_the_key_is_rekeyed_by_the_migration(tmp_path: Path) -> None:
    """A database whose chain was written with plain SHA-256 (before 0007) verifies after the
    upgrade; one already broken stays broken."""
    from alembic import command
    from sqlalchemy import update

    from service.audit import service as audit
    from service.audit.models import AuditEvent
    from service.db.session import alembic_config

    for broken in (False, True):
        db = Database(Settings(data_dir=tmp_path / str(broken)))
        command.upgrade(alembic_config(db.engine, db.audit_key), "0006")
        at = dt.datetime(2024, 9, 25, 8, 0, tzinfo=dt.UTC)
        with db.session() as s:
            s.info["audit_key"] = None  # as the service wrote it before the chain was keyed
            original = audit.audit_key
            audit.audit_key = lambda session: None  # type: ignore[assignment,return-value]
            try:
                for i in range(4):
                    record(s, Actor(1, "韩玮玮", 1), "document.issue", "document", i, at, n=i)
            finally:
                audit.audit_key = original
            s.commit()
        if broken:
            with db.engine.begin() as conn:
                conn.execute(update(AuditEvent).where(AuditEvent.id == 2).values(detail={"n": 9}))
        db.migrate()
        with db.session() as s:
            report = verify_chain(s)
        assert report.ok != broken and (report.first_bad_id == 2 if broken else report.events == 4)
        db.dispose()
