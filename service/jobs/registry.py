"""Job kinds by name: ``@job("roster.issue")`` registers a function of a :class:`JobContext` and the
job's stored parameters (ids and plain values, never objects or document bytes).

A job function must be idempotent: it may be run again after its process died, and then does only
what is not done yet. It commits through ``ctx.checkpoint()`` (which also renews its lease and stops
it when its runner shuts down) and reports progress through ``ctx.progress()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from service.audit.service import SYSTEM, Actor
from service.errors import DocsignError

if TYPE_CHECKING:
    from service.container import Services


class UnknownJobKind(DocsignError):
    code = "UNKNOWN_JOB_KIND"
    http_status = 500
    default_message = "没有这种后台任务。"


class JobStopped(Exception):
    """Raised at a checkpoint when the runner is shutting down: the job goes back to the queue and
    another process (or this one after restart) resumes it."""


JobFunction = Callable[["JobContext", dict[str, Any]], None]
REGISTRY: dict[str, JobFunction] = {}


def job(kind: str) -> Callable[[JobFunction], JobFunction]:
    def register(fn: JobFunction) -> JobFunction:
        if kind in REGISTRY and REGISTRY[kind] is not fn:
            raise ValueError(f"job kind {kind!r} registered twice")
        REGISTRY[kind] = fn
        return fn

    return register


def function_for(kind: str) -> JobFunction:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise UnknownJobKind(f"没有名为「{kind}」的后台任务。") from None


def actor_params(actor: Actor) -> dict[str, Any]:
    """How a job remembers who started it (for the audit entries it writes)."""
    return {"user_id": actor.user_id, "label": actor.label, "unit_id": actor.unit_id, "client": actor.client}


def actor_from(params: dict[str, Any]) -> Actor:
    a = params.get("actor")
    if not isinstance(a, dict):
        return SYSTEM
    return Actor(a.get("user_id"), str(a.get("label") or SYSTEM.label), a.get("unit_id"), a.get("client"))


@dataclass
class JobContext:
    """What a running job gets: the services, its own session, and hooks to its runner."""

    services: Services
    session: Session
    job_id: int | None = None
    #: Writes progress where every web process sees it (the job row), in its own short transaction.
    report: Callable[[int, int, str | None], None] = field(default=lambda done, total, stage: None)
    #: Renews the lease; raises JobStopped when the runner is shutting down.
    heartbeat: Callable[[], None] = field(default=lambda: None)

    def progress(self, done: int, total: int, stage: str | None = None) -> None:
        self.report(done, total, stage)

    def checkpoint(self) -> None:
        """Commit the work so far (a rerun will not redo it), renew the lease, stop if asked to."""
        self.session.commit()
        self.heartbeat()
