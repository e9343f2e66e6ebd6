"""Job kinds by name: ``@job("roster.issue")`` registers a function of a :class:`JobContext` and the
job's stored parameters (ids and plain values, never objects or document bytes).

A job function must be idempotent: it may be run again after its process died, and then does only
what is not done yet. It commits through ``ctx.checkpoint()`` (which also renews its lease and stops
it when its runner shuts down) and reports progress through ``ctx.progress()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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


@dataclass(frozen=True)
class Split:
    """How a batch job is cut into slices by a runner of many processes (the Celery runner); the
    embedded runner calls the job's function instead, which does the same work in one go.

    ``plan(ctx, params)`` returns each slice's parameters (ids, never document bytes), or an empty
    list when there is nothing to cut (the whole function runs then); ``run(ctx, params, slice)``
    does one slice and returns how many documents it issued; it must be idempotent (a slice whose
    worker died runs again and does only what is missing); ``finish(ctx, params)`` runs once every
    slice is done (print files, the audit entry)."""

    plan: Callable[[JobContext, dict[str, Any]], list[dict[str, Any]]]
    run: Callable[[JobContext, dict[str, Any], dict[str, Any]], int]
    finish: Callable[[JobContext, dict[str, Any]], None]


SPLITS: dict[str, Split] = {}


def split(kind: str, plan: Split) -> None:
    """Declare how job ``kind`` (registered with ``@job``) is cut into slices."""
    SPLITS[kind] = plan


def split_for(kind: str) -> Split | None:
    return SPLITS.get(kind)


#: Told while the object store cannot be reached during the current job (its runner shows it).
_outage: ContextVar[Callable[[int, Exception], None] | None] = ContextVar("docsign_job_outage", default=None)


@contextmanager
def reporting_outages(report: Callable[[int, Exception], None]) -> Iterator[None]:
    """While the block runs in this thread, archive retries are reported through ``report``."""
    token = _outage.set(report)
    try:
        yield
    finally:
        _outage.reset(token)


def report_outage(attempt: int, error: Exception) -> None:
    """The archive stores' ``on_retry``: tells the job running in this thread, if any."""
    if (report := _outage.get()) is not None:
        report(attempt, error)


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
