"""When each browser session was last used, noted in memory by every request and written in batches
(``Services.flush_batches``): the idle timeout needs it, and a GET writes nothing to the database."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import or_, update

from service.accounts.models import LoginSession
from service.db.session import Database


class SessionActivity:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._seen: dict[str, dt.datetime] = {}
        self._lock = threading.Lock()

    def note(self, token_hash: str, at: dt.datetime) -> None:
        with self._lock:
            if (known := self._seen.get(token_hash)) is None or known < at:
                self._seen[token_hash] = at

    def last(self, token_hash: str) -> dt.datetime | None:
        """The last use this process has seen and not yet written."""
        with self._lock:
            return self._seen.get(token_hash)

    def forget(self, token_hash: str) -> None:
        with self._lock:
            self._seen.pop(token_hash, None)

    def flush(self) -> None:
        """Write the noted uses (a later one never moves back); on failure they stay for the next round."""
        with self._lock:
            batch = dict(self._seen)
        if not batch:
            return
        with self.db.session() as session:
            for token_hash, at in batch.items():
                session.execute(
                    update(LoginSession)
                    .where(
                        LoginSession.token_hash == token_hash,
                        or_(LoginSession.last_seen_at.is_(None), LoginSession.last_seen_at < at),
                    )
                    .values(last_seen_at=at)
                )
            session.commit()
        with self._lock:
            for token_hash, at in batch.items():
                if self._seen.get(token_hash) == at:
                    del self._seen[token_hash]
