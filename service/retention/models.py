from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, utcnow


class RetentionRecord(Base):
    """One removal of personal data: what (a case, a roster, a row of the 适龄儿童台账, cached page
    images), under which rule or request, when, by whom, and how much went. It names records by
    id and counts only: the retention log itself holds no personal data."""

    __tablename__ = "retention_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    #: ``case``, ``roster``, ``children`` or ``page_cache`` (a rule), or ``request`` (a guardian's).
    rule: Mapped[str] = mapped_column(String(16))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int | None]
    #: The day the rule made it due (None for a request).
    due_on: Mapped[dt.date | None]
    #: What went, counted: {"fields": 12, "files": 2, "documents": 3, "versions": 4}.
    removed: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(80))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
