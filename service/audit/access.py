"""The access log: every read of children's data, kept apart from the audit log but chained and
keyed the same way (HMAC-SHA256 under the audit key over each entry and the previous hash).

A read is noted in memory (:meth:`AccessLog.note`, no database work in the request) and written
in batches (:meth:`AccessLog.flush`: by the container's background thread every few seconds and
at shutdown), so a page is not slowed and a GET writes nothing while it is answered. An entry
names the record read (a case id, a document id, a roster id) or the list and its filter, never
the child's personal data. :func:`verify_access_chain` (``docsign access verify``) finds an edited,
deleted or cut-off entry.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from service.audit.models import AccessEntry, AccessHead
from service.audit.service import GENESIS, ChainReport, audit_key, check_chain, in_id_order, keyed_hash, mask_personal
from service.db.session import Database


@dataclass(frozen=True)
class Read:
    """One read of children's data, as noted while answering."""

    at: dt.datetime
    user_id: int | None
    username: str
    role: str | None
    unit_id: int | None
    client: str | None
    user_agent: str | None
    #: The page, API route, export or command (``GET /cases/{case_id}``, ``docsign ...``).
    via: str
    #: What was read (``case``, ``document``, ``case_list``, ``ledger``...) and which one.
    subject: str
    subject_id: str = ""
    filter: dict[str, Any] = field(default_factory=dict)
    #: Rows in a list or an export.
    rows: int | None = None
    #: An export's purpose (用途) and whether it held full 身份证号 and phones; None for other reads.
    purpose: str | None = None
    full: bool | None = None


def _digest(key: bytes, prev: str, entry: AccessEntry) -> str:
    # an export's purpose and masking are hashed only when present, so entries written before
    # exports carried them (migration 0016) verify as they were written
    export = {} if entry.purpose is None and entry.full is None else {"export": [entry.purpose, entry.full]}
    return keyed_hash(
        key,
        {
            **export,
            "prev": prev,
            "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "user_id": entry.user_id,
            "username": entry.username,
            "role": entry.role,
            "unit_id": entry.unit_id,
            "client": entry.client,
            "user_agent": entry.user_agent,
            "via": entry.via,
            "subject": [entry.subject, entry.subject_id],
            "filter": entry.filter,
            "rows": entry.rows,
        },
    )


def append(session: Session, reads: list[Read]) -> list[AccessEntry]:
    """Append ``reads`` in order, in the caller's transaction, after taking the chain's head (which
    serializes writers across processes as the audit log's head does)."""
    if not reads:
        return []
    moved = cast(
        CursorResult[Any],
        session.execute(update(AccessHead).where(AccessHead.id == 1).values(entries=AccessHead.entries + len(reads))),
    )
    if moved.rowcount == 0:
        session.add(AccessHead(id=1, entries=len(reads), last_hash=GENESIS))
        session.flush()
    head = session.get(AccessHead, 1, populate_existing=True)
    assert head is not None
    key = audit_key(session)
    prev = head.last_hash
    written = []
    for read in reads:
        entry = AccessEntry(
            at=read.at,
            user_id=read.user_id,
            username=read.username[:80],
            role=read.role,
            unit_id=read.unit_id,
            client=read.client[:64] if read.client else None,
            user_agent=read.user_agent[:200] if read.user_agent else None,
            via=read.via[:120],
            subject=read.subject[:32],
            subject_id=read.subject_id[:64],
            # a filter is ids and choices; anything personal typed into one is masked as in the audit log
            filter=mask_personal(json.loads(json.dumps(read.filter, ensure_ascii=False, default=str))),
            rows=read.rows,
            purpose=read.purpose[:80] if read.purpose is not None else None,
            full=read.full,
            prev_hash=prev,
        )
        entry.hash = _digest(key, prev, entry)
        session.add(entry)
        written.append(entry)
        prev = entry.hash
    head.last_hash = prev
    session.flush()
    return written


class AccessLog:
    """Reads noted in memory and appended in one transaction per flush."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[Read] = []
        self._lock = threading.Lock()
        #: Held through a whole flush: batches are written one after the other, in the order noted,
        #: and a flush returns only once what was noted before it is written.
        self._writing = threading.Lock()

    def note(self, read: Read) -> None:
        with self._lock:
            self._pending.append(read)

    def flush(self) -> int:
        """Write what was noted; on failure the reads go back in front of any noted since."""
        with self._writing:
            with self._lock:
                reads, self._pending = self._pending, []
            if not reads:
                return 0
            try:
                with self.db.session() as s:
                    append(s, reads)
                    s.commit()
            except BaseException:
                with self._lock:
                    self._pending[:0] = reads
                raise
            return len(reads)


def verify_access_chain(session: Session) -> ChainReport:
    """Check every entry's hash and link, and the head's count (entries cut off the end)."""
    key = audit_key(session)
    head = session.get(AccessHead, 1)
    return check_chain(
        in_id_order(session, AccessEntry),
        lambda prev, entry: _digest(key, prev, entry),
        None if head is None else (head.entries, head.last_hash),
    )
