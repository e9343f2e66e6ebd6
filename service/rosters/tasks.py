"""Roster jobs, run by whichever job runner the settings choose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sqlalchemy import func, select

from service.audit.schemas import ActorRef
from service.errors import NotFound
from service.jobs.models import JobSlice
from service.jobs.registry import JobContext, JobParams, Split, job, split
from service.rosters.batch import finish_roster, slice_roster
from service.rosters.models import Roster

if TYPE_CHECKING:
    from service.archive.service import Archive
    from service.clock import Clock
    from service.documents.pipeline import DocumentEngine
    from service.rosters.service import Rosters
    from service.settings import Settings


class Needs(Protocol):
    """What roster jobs need of the services."""

    rosters: Rosters
    archive: Archive
    engine: DocumentEngine
    settings: Settings
    clock: Clock


class IssueRoster(JobParams):
    kind: ClassVar[str] = "roster.issue"
    roster_id: int
    actor: ActorRef = ActorRef()


def _roster(ctx: JobContext[Needs], params: IssueRoster) -> Roster:
    roster = ctx.session.get(Roster, params.roster_id)
    if roster is None:
        raise NotFound("名单已不存在。")
    return roster


@job(IssueRoster)
def issue_roster(ctx: JobContext[Needs], params: IssueRoster) -> None:
    ctx.services.rosters.issue(
        ctx.session,
        _roster(ctx, params),
        params.actor.actor(),
        checkpoint=ctx.checkpoint,
        progress=lambda done, total: ctx.progress(done, total, "issue"),
        job_id=ctx.job_id,
    )


def _plan_roster(ctx: JobContext[Needs], params: IssueRoster) -> list[dict[str, Any]]:
    roster = _roster(ctx, params)
    ctx.services.engine.pki.ensure_unit(roster.issuer.cert_key, roster.issuer.name)
    size = ctx.services.settings.merge_chunk_size
    return [{"entries": ids} for ids in slice_roster(ctx.session, roster, size)]


def _run_roster_slice(ctx: JobContext[Needs], params: IssueRoster, part: dict[str, Any]) -> int:
    return ctx.services.rosters.issue(
        ctx.session,
        _roster(ctx, params),
        params.actor.actor(),
        checkpoint=ctx.checkpoint,
        progress=lambda done, total: ctx.progress(done, total, "issue"),
        job_id=ctx.job_id,
        entry_ids=[int(i) for i in part["entries"]],
    )


def _finish_roster(ctx: JobContext[Needs], params: IssueRoster) -> None:
    issued = ctx.session.scalar(select(func.coalesce(func.sum(JobSlice.done), 0)).where(JobSlice.job_id == ctx.job_id))
    services = ctx.services
    finish_roster(
        ctx.session,
        services.archive,
        _roster(ctx, params),
        params.actor.actor(),
        services.clock.now(),
        issued_now=int(issued or 0),
        checkpoint=ctx.checkpoint,
        job_id=ctx.job_id,
    )


split(IssueRoster, Split(plan=_plan_roster, run=_run_roster_slice, finish=_finish_roster))
