"""Job kinds by name, with typed parameters.

A job kind is a :class:`JobParams` model naming the kind (``kind = "roster.issue"``) and holding what
the job is about (ids and plain values, never objects or document bytes); ``@job(IssueRoster)``
registers the function that does it, ``fn(ctx, params)``. The runners store the parameters as JSON
and give the function its model back. This package knows no domain: a domain's ``tasks.py``
registers its kinds, says what it needs of the services (a ``Protocol``), and the composition root
binds a runner to the services that satisfy it.

A job function must be idempotent: it may be run again after its process died, and then does only
what is not done yet. It commits through ``ctx.checkpoint()`` (which also renews its lease and stops
it when its runner shuts down) and reports progress through ``ctx.progress()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.orm import Session

from service.errors import DocsignError


class UnknownJobKind(DocsignError):
    code = "UNKNOWN_JOB_KIND"
    http_status = 500
    default_message = "没有这种后台任务。"


class JobParamsInvalid(DocsignError):
    code = "JOB_PARAMS_INVALID"
    http_status = 500
    default_message = "后台任务的参数不完整或有误，无法执行。请联系管理员查看日志。"


class JobStopped(Exception):
    """Raised at a checkpoint when the runner is shutting down: the job goes back to the queue and
    another process (or this one after restart) resumes it."""


class JobParams(BaseModel):
    """What one kind of job is told: its kind's name and the ids it works on. Stored as JSON in the
    job row; unknown keys (a row an older version wrote) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: ClassVar[str]


P = TypeVar("P", bound=JobParams)
#: What a job's function is given of the services: each domain's tasks say it as a Protocol.
S = TypeVar("S")


@dataclass
class JobContext(Generic[S]):
    """What a running job gets: the services, its own session, and hooks to its runner."""

    services: S
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


@dataclass(frozen=True)
class Split(Generic[P]):
    """How a batch job is cut into slices by a runner of many processes (the Celery runner); the
    embedded runner calls the job's function instead, which does the same work in one go.

    ``plan(ctx, params)`` returns each slice's parameters (ids, never document bytes), or an empty
    list when there is nothing to cut (the whole function runs then); ``run(ctx, params, slice)``
    does one slice and returns how many documents it issued; it must be idempotent (a slice whose
    worker died runs again and does only what is missing); ``finish(ctx, params)`` runs once every
    slice is done (print files, the audit entry)."""

    plan: Callable[[JobContext[Any], P], list[dict[str, Any]]]
    run: Callable[[JobContext[Any], P, dict[str, Any]], int]
    finish: Callable[[JobContext[Any], P], None]


@dataclass(frozen=True)
class JobKind(Generic[P]):
    """One registered kind: its parameters' model, its function, and how it splits (if it does)."""

    params: type[P]
    run: Callable[[JobContext[Any], P], None]
    split: Split[P] | None = None

    @property
    def name(self) -> str:
        return self.params.kind

    def parse(self, stored: dict[str, Any]) -> P:
        try:
            return self.params.model_validate(stored)
        except ValidationError as exc:
            raise JobParamsInvalid(f"后台任务「{self.name}」的参数有误：{exc.error_count()} 处不符。") from exc

    def execute(self, ctx: JobContext[Any], stored: dict[str, Any]) -> None:
        self.run(ctx, self.parse(stored))


KINDS: dict[str, JobKind[Any]] = {}


def job(params: type[P]) -> Callable[[Callable[[JobContext[Any], P], None]], Callable[[JobContext[Any], P], None]]:
    """Register the function that does jobs of ``params.kind``."""

    def register(fn: Callable[[JobContext[Any], P], None]) -> Callable[[JobContext[Any], P], None]:
        known = KINDS.get(params.kind)
        if known is not None and known.run is not fn:
            raise ValueError(f"job kind {params.kind!r} registered twice")
        KINDS[params.kind] = JobKind(params, fn, known.split if known else None)
        return fn

    return register


def split(params: type[P], plan: Split[P]) -> None:
    """Declare how jobs of ``params.kind`` (registered with ``@job``) are cut into slices."""
    KINDS[params.kind] = JobKind(params, kind_for(params.kind).run, plan)


def kind_for(kind: str) -> JobKind[Any]:
    try:
        return KINDS[kind]
    except KeyError:
        raise UnknownJobKind(f"没有名为「{kind}」的后台任务。") from None


def stored(params: JobParams) -> dict[str, Any]:
    """The JSON a job row keeps of its parameters."""
    return params.model_dump(mode="json")


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
