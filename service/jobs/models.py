from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, utcnow


class Job(Base):
    """A named piece of background work (``kind``, e.g. ``roster.issue``) with its stored parameters,
    its progress, and the lease of the process running it."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    #: queued, running, done, failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    stage: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(String(500))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    #: Set while the job is queued or running (for example campaign.issue:7); unique, so two
    #: clicks or two servers cannot start the same work twice. Cleared when the job ends.
    active_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    #: The process running the job (``host:pid:token``) and until when its claim holds; the process
    #: renews it while it works. A job whose lease has expired is taken over by any runner.
    lease_owner: Mapped[str | None] = mapped_column(String(96))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    #: How many times a runner has started the job (a resumed job counts again).
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")


#: Statuses of a job that has not ended.
ACTIVE = ("queued", "running")


class JobSlice(Base):
    """One slice of a batch job run by the Celery runner (a merged conversion's worth of documents):
    the ids it covers, its own lease, and how many of its documents are done. The job's progress is
    the sum over its slices, so every web process reads the same bar from the database."""

    __tablename__ = "job_slices"
    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_job_slice"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int]
    #: What the slice covers: ids and plain values (roster entry ids, unit ids), never document bytes.
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: queued, running, done, failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(96))
    lease_expires_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    finished_at: Mapped[dt.datetime | None]
