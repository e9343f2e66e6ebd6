"""The jobs' reads for the faces: a user sees the jobs of the units they see (:func:`visible_to`)."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.db.scoping import Sees, valid_id
from service.jobs.models import Job


def visible_to(scope: Sees) -> Select[tuple[Job]]:
    return select(Job).where(Job.unit_id.in_(scope.units))


def get(session: Session, scope: Sees, job_id: int) -> Job | None:
    return session.scalar(visible_to(scope).where(Job.id == job_id)) if valid_id(job_id) else None


def by_active_key(session: Session, scope: Sees, active_key: str) -> Job | None:
    """The job started under ``active_key`` (a roster's issue, say), if the user sees it."""
    return session.scalar(visible_to(scope).where(Job.active_key == active_key).order_by(Job.id.desc()).limit(1))
