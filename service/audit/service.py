"""The audit log: every action appended with a keyed hash (HMAC-SHA256) over its content and the
previous hash.

The key is the service's secret (``DOCSIGN_SECRET_KEY`` or its file, ``Settings.secret``), held
outside the database and handed to every session by ``service.db.session.Database``: someone who
can write the database but does not hold the key cannot rewrite a row and recompute the chain.
Rows are only ever inserted. The chain is checked by :func:`verify_chain` (``docsign audit
verify``): an edited row no longer matches its hash, a deleted one breaks the next row's link.
Appends are serialized by updating the single head row first (a row lock on PostgreSQL, the write
lock on SQLite), so two writers cannot both link to the same predecessor, and the head's count
reveals events cut off the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from service.audit.models import AuditEvent, AuditHead

GENESIS = "0" * 64

#: Details never hold a child's or guardian's data in clear: names under these keys keep their
#: first character, and resident ID numbers and mobile numbers anywhere in a detail are masked.
NAME_KEYS = frozenset({"student", "student_name", "guardian", "guardian_name", "guardian2_name"})
_ID_NUMBER = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask_personal(value: Any, key: str = "") -> Any:
    """A detail value with personal data masked (see ``NAME_KEYS``)."""
    if isinstance(value, dict):
        return {k: mask_personal(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_personal(v, key) for v in value]
    if isinstance(value, str):
        if key in NAME_KEYS and value:
            return value[0] + "*" * (len(value) - 1)
        return _MOBILE.sub(r"\1****\2", _ID_NUMBER.sub(r"\1********\2", value))
    return value


def mask_id_number(value: str) -> str:
    """A 身份证号 as an export shows it by default: the region and the last four kept
    (``370112********0013``), enough to tell two children apart, not to use the number."""
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str) -> str:
    """A phone number as an export shows it by default: a mobile keeps its first three and last four
    digits (``138****0002``), any other number only its last four."""
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    mobile = _MOBILE.fullmatch(value) is not None
    keep = set(digits[:3] + digits[-4:] if mobile else digits[-4:])
    return "".join(ch if not ch.isdigit() or i in keep else "*" for i, ch in enumerate(value))


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    label: str
    unit_id: int | None = None
    client: str | None = None


SYSTEM = Actor(None, "系统")


def audit_key(session: Session) -> bytes:
    key = session.info.get("audit_key")
    if not isinstance(key, bytes) or not key:
        raise RuntimeError("the session carries no audit key: make sessions with service.db.session.Database")
    return key


def _digest(
    key: bytes | None,
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
    return keyed_hash(
        key,
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
    )


def keyed_hash(key: bytes | None, content: dict[str, Any]) -> str:
    """An entry's hash: HMAC-SHA256 under ``key`` of its content as canonical JSON (the audit log's
    and the access log's chains)."""
    payload = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if key is None:  # the chain as written before it was keyed (read only by ``rekey_legacy_chain``)
        return hashlib.sha256(payload.encode()).hexdigest()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def record(
    session: Session, actor: Actor, action: str, object_type: str, object_id: object, at: dt.datetime, **detail: Any
) -> AuditEvent:
    """Append one event in the caller's transaction (it commits or rolls back with the action)."""
    # Take the head first: until this transaction ends, no other writer can append.
    moved = cast(
        CursorResult[Any],
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(events=AuditHead.events + 1)),
    )
    if moved.rowcount == 0:
        session.add(AuditHead(id=1, events=1, last_hash=GENESIS))
        session.flush()
    head = session.get(AuditHead, 1, populate_existing=True)
    assert head is not None
    prev = head.last_hash
    clean = mask_personal(json.loads(json.dumps(detail, ensure_ascii=False, default=str)))
    object_id = str(object_id)
    event = AuditEvent(
        at=at,
        actor_user_id=actor.user_id,
        actor=actor.label,
        action=action,
        object_type=object_type,
        object_id=object_id,
        unit_id=actor.unit_id,
        client=actor.client,
        detail=clean,
        prev_hash=prev,
        hash=_digest(
            audit_key(session),
            prev,
            at,
            actor.user_id,
            actor.label,
            action,
            object_type,
            object_id,
            actor.unit_id,
            actor.client,
            clean,
        ),
    )
    session.add(event)
    head.last_hash = event.hash
    session.flush()
    return event


def record_apart(
    session: Session, actor: Actor, action: str, object_type: str, object_id: object, at: dt.datetime, **detail: Any
) -> None:
    """Append one event in a transaction of its own, on the same database and with the same key as
    ``session``: for a refusal that must stay in the log although the caller's work rolls back."""
    with Session(bind=session.get_bind(), info=dict(session.info)) as apart:
        apart.info.pop("wrote", None)
        record(apart, actor, action, object_type, object_id, at, **detail)
        apart.commit()


def record_when_done(
    session: Session, actor: Actor, action: str, object_type: str, object_id: object, at: dt.datetime, **detail: Any
) -> None:
    """Append one event once ``session``'s transaction has ended, committed or rolled back, in a
    transaction of its own: for a refusal that must stay in the log although the caller's work
    rolls back, without waiting on the locks that work may hold (on SQLite, the one write lock a
    second transaction would wait for until it timed out)."""
    done = False

    def write(ended: Session) -> None:
        nonlocal done
        if not done:
            done = True
            record_apart(ended, actor, action, object_type, object_id, at, **detail)

    sa_event.listen(session, "after_commit", write, once=True)
    sa_event.listen(session, "after_rollback", write, once=True)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_id: int | None = None
    reason: str | None = None


def in_id_order(session: Session, model: Any) -> Iterator[Any]:
    """Every row of a chained log (``model`` has ``id``), in order, a thousand at a time."""
    last_id = 0
    while True:
        batch = session.scalars(select(model).where(model.id > last_id).order_by(model.id).limit(1000)).all()
        if not batch:
            return
        yield from batch
        last_id = batch[-1].id


def check_chain(rows: Iterable[Any], digest: Callable[[str, Any], str], head: tuple[int, str] | None) -> ChainReport:
    """Walk a keyed chain: each row's link to the previous hash and its own hash (``digest(prev,
    row)``), then the head's count and last hash (``head``; rows cut off the end)."""
    prev = GENESIS
    count = 0
    for row in rows:
        count += 1
        if row.prev_hash != prev:
            return ChainReport(False, count, row.id, "与上一条记录的链接断开（有记录被删除或插入）")
        if not hmac.compare_digest(digest(prev, row), row.hash):
            return ChainReport(False, count, row.id, "记录内容与其摘要不符（记录被修改）")
        prev = row.hash
    if head is not None and (head[0] != count or head[1] != prev):
        return ChainReport(False, count, None, f"日志末尾缺少记录（应有 {head[0]} 条，实有 {count} 条）")
    return ChainReport(True, count)


def verify_chain(session: Session) -> ChainReport:
    key = audit_key(session)

    def digest(prev: str, event: AuditEvent) -> str:
        return _digest(
            key,
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

    head = session.get(AuditHead, 1)
    return check_chain(
        in_id_order(session, AuditEvent), digest, None if head is None else (head.events, head.last_hash)
    )


def rekey_legacy_chain(connection: Connection, key: bytes) -> int:
    """Re-hash, with ``key``, a chain written before the chain was keyed (plain SHA-256); run once
    by the migration that introduced the key. Each link is checked first and only the intact start
    of the chain is re-hashed: from the first entry that does not match on, nothing is touched, so
    ``verify_chain`` still names that entry. Returns the entries re-hashed."""
    events = AuditEvent.__table__
    rows = connection.execute(select(events).order_by(events.c.id)).mappings().all()
    prev = GENESIS
    intact = 0
    for row in rows:
        fields = (row["at"], row["actor_user_id"], row["actor"], row["action"], row["object_type"])
        rest = (row["object_id"], row["unit_id"], row["client"], row["detail"])
        if row["prev_hash"] != prev or _digest(None, prev, *fields, *rest) != row["hash"]:
            break  # already keyed, or changed: left for verify_chain
        prev = row["hash"]
        intact += 1
    prev = GENESIS
    for row in rows[:intact]:
        fields = (row["at"], row["actor_user_id"], row["actor"], row["action"], row["object_type"])
        rest = (row["object_id"], row["unit_id"], row["client"], row["detail"])
        new = _digest(key, prev, *fields, *rest)
        connection.execute(update(AuditEvent).where(AuditEvent.id == row["id"]).values(prev_hash=prev, hash=new))
        prev = new
    if intact and intact == len(rows):
        connection.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=prev))
    return intact
