"""Case and roster jobs, run by whichever job runner the settings choose."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from service.cases.batch import finish_roster, slice_roster
from service.cases.models import Roster
from service.errors import NotFound
from service.jobs.models import JobSlice
from service.jobs.registry import JobContext, Split, actor_from, job, split


def _roster(ctx: JobContext, params: dict[str, Any]) -> Roster:
    roster = ctx.session.get(Roster, int(params["roster_id"]))
    if roster is None:
        raise NotFound("名单已不存在。")
    return roster


@job("roster.issue")
def issue_roster(ctx: JobContext, params: dict[str, Any]) -> None:
    ctx.services.cases.issue_roster(
        ctx.session,
        _roster(ctx, params),
        actor_from(params),
        checkpoint=ctx.checkpoint,
        progress=lambda done, total: ctx.progress(done, total, "issue"),
        job_id=ctx.job_id,
    )


def _plan_roster(ctx: JobContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    roster = _roster(ctx, params)
    ctx.services.engine.pki.ensure_unit(roster.issuer.cert_key, roster.issuer.name)
    size = ctx.services.settings.merge_chunk_size
    return [{"entries": ids} for ids in slice_roster(ctx.session, roster, size)]


def _run_roster_slice(ctx: JobContext, params: dict[str, Any], part: dict[str, Any]) -> int:
    return ctx.services.cases.issue_roster(
        ctx.session,
        _roster(ctx, params),
        actor_from(params),
        checkpoint=ctx.checkpoint,
        progress=lambda done, total: ctx.progress(done, total, "issue"),
        job_id=ctx.job_id,
        entry_ids=[int(i) for i in part["entries"]],
    )


def _finish_roster(ctx: JobContext, params: dict[str, Any]) -> None:
    issued = ctx.session.scalar(select(func.coalesce(func.sum(JobSlice.done), 0)).where(JobSlice.job_id == ctx.job_id))
    services = ctx.services
    finish_roster(
        ctx.session,
        services.archive,
        _roster(ctx, params),
        actor_from(params),
        services.clock.now(),
        issued_now=int(issued or 0),
        checkpoint=ctx.checkpoint,
        job_id=ctx.job_id,
    )


split("roster.issue", Split(plan=_plan_roster, run=_run_roster_slice, finish=_finish_roster))
