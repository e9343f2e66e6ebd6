"""The audit log: every action appended with a hash over its content and the previous hash.

Rows are only ever inserted. The chain is checked by :func:`verify_chain` (``docsign audit
verify``): an edited row no longer matches its hash, a deleted one breaks the next row's link.
Appends are serialized (a process lock, and on PostgreSQL a transaction-level advisory lock) so
two writers cannot both link to the same predecessor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from service.audit.models import AuditEvent

GENESIS = "0" * 64
#: Arbitrary constant naming the audit chain's advisory lock on PostgreSQL.
_PG_LOCK_KEY = 724_031_900_2024
_append_lock = threading.Lock()


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    label: str
    unit_id: int | None = None
    client: str | None = None


SYSTEM = Actor(None, "系统")


def _digest(
    prev_hash: str,
    at: dt.datetime,
    actor_user_id: int | None,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    unit_id: int | None,
    client: str | None,
    detail: dict[str, Any],
) -> str:
    payload = json.dumps(
        {
            "prev": prev_hash,
            "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "actor_user_id": actor_user_id,
            "actor": actor,
            "action": action,
            "object": [object_type, object_id],
            "unit_id": unit_id,
            "client": client,
            "detail": detail,
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def record(
    session: Session, actor: Actor, action: str, object_type: str, object_id: object, at: dt.datetime, **detail: Any
) -> AuditEvent:
    """Append one event in the caller's transaction (it commits or rolls back with the action)."""
    with _append_lock:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        last = session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        prev = last.hash if last else GENESIS
        clean = json.loads(json.dumps(detail, ensure_ascii=False, default=str))
        event = AuditEvent(
            at=at,
            actor_user_id=actor.user_id,
            actor=actor.label,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            unit_id=actor.unit_id,
            client=actor.client,
            detail=clean,
            prev_hash=prev,
            hash=_digest(
                prev,
                at,
                actor.user_id,
                actor.label,
                action,
                object_type,
                str(object_id),
                actor.unit_id,
                actor.client,
                clean,
            ),
        )
        session.add(event)
        session.flush()
        return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_id: int | None = None
    reason: str | None = None


def _events(session: Session) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        batch = session.scalars(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(1000)
        ).all()
        if not batch:
            return
        yield from batch
        last_id = batch[-1].id


def verify_chain(session: Session) -> ChainReport:
    prev = GENESIS
    count = 0
    for event in _events(session):
        count += 1
        if event.prev_hash != prev:
            return ChainReport(False, count, event.id, "与上一条记录的链接断开（有记录被删除或插入）")
        expected = _digest(
            prev,
            event.at,
            event.actor_user_id,
            event.actor,
            event.action,
            event.object_type,
            event.object_id,
            event.unit_id,
            event.client,
            event.detail,
        )
        if expected != event.hash:
            return ChainReport(False, count, event.id, "记录内容与其摘要不符（记录被修改）")
        prev = event.hash
    return ChainReport(True, count)
