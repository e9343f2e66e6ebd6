"""The jobs' reads for the faces: a user sees the jobs of the units they see (:func:`visible_to`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.db.scoping import Sees, valid_id
from service.jobs.models import Job, JobSlice


def visible_to(scope: Sees) -> Select[tuple[Job]]:
    return select(Job).where(Job.unit_id.in_(scope.units))


def get(session: Session, scope: Sees, job_id: int) -> Job | None:
    return session.scalar(visible_to(scope).where(Job.id == job_id)) if valid_id(job_id) else None


def by_active_key(session: Session, scope: Sees, active_key: str) -> Job | None:
    """The job started under ``active_key`` (a roster's issue, say), if the user sees it."""
    return session.scalar(visible_to(scope).where(Job.active_key == active_key).order_by(Job.id.desc()).limit(1))


# --- the operator's monitoring (/metrics): the whole machine's work, counted -----------------------


def counts_by_kind_and_status(session: Session) -> list[tuple[str, str, int]]:
    rows = session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
    return [(kind, status, int(n)) for kind, status, n in rows]


def slice_counts(session: Session) -> list[tuple[str, int]]:
    return [
        (status, int(n))
        for status, n in session.execute(select(JobSlice.status, func.count()).group_by(JobSlice.status))
    ]


def stalled_slices(session: Session, now: dt.datetime) -> int:
    """Running slices whose lease ran out: their worker is gone and nobody has taken them yet."""
    query = (
        select(func.count()).select_from(JobSlice).where(JobSlice.status == "running", JobSlice.lease_expires_at < now)
    )
    return session.scalar(query) or 0


def running_progress(session: Session) -> list[tuple[int, str, int, int]]:
    rows = session.execute(select(Job.id, Job.kind, Job.done, Job.total).where(Job.status == "running"))
    return [(int(i), kind, int(done), int(total)) for i, kind, done, total in rows]


def last_done_by_kind(session: Session) -> list[tuple[str, dt.datetime]]:
    """When a job of each kind last finished well: a daily schedule (the audit checkpoint, the PKI's
    upkeep) that stopped running shows as a time falling behind."""
    rows = session.execute(select(Job.kind, func.max(Job.finished_at)).where(Job.status == "done").group_by(Job.kind))
    return [(kind, at if at.tzinfo else at.replace(tzinfo=dt.UTC)) for kind, at in rows if at is not None]
