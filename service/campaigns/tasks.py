"""Campaign jobs, run by whichever job runner the settings choose."""

from __future__ import annotations

from typing import Any

from service.campaigns.models import Campaign
from service.errors import NotFound
from service.jobs.registry import JobContext, Split, actor_from, job, split

#: Documents in one slice of a campaign issued by many workers.
CAMPAIGN_SLICE = 50


def _campaign(ctx: JobContext, params: dict[str, Any]) -> Campaign:
    campaign = ctx.session.get(Campaign, int(params["campaign_id"]))
    if campaign is None:
        raise NotFound("任务已不存在。")
    return campaign


@job("campaign.issue")
def issue_campaign(ctx: JobContext, params: dict[str, Any]) -> None:
    ctx.services.campaigns.issue(
        ctx.session,
        _campaign(ctx, params),
        actor_from(params),
        checkpoint=ctx.checkpoint,
        progress=lambda done, total: ctx.progress(done, total, "issue"),
        job_id=ctx.job_id,
    )


def _plan_campaign(ctx: JobContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    campaign = _campaign(ctx, params)
    if campaign.recurrence is not None:
        return []  # opening a period is one quick step: the whole job runs as one task
    todo = [[unit.id, kind] for unit, kind in ctx.services.campaigns.pending(ctx.session, campaign)]
    size = min(CAMPAIGN_SLICE, ctx.services.settings.merge_chunk_size)
    return [{"pairs": todo[i : i + size]} for i in range(0, len(todo), size)]


def _run_campaign_slice(ctx: JobContext, params: dict[str, Any], part: dict[str, Any]) -> int:
    return ctx.services.campaigns.issue(
        ctx.session,
        _campaign(ctx, params),
        actor_from(params),
        checkpoint=ctx.checkpoint,
        progress=lambda done, total: ctx.progress(done, total, "issue"),
        job_id=ctx.job_id,
        only=[(int(u), str(k)) for u, k in part["pairs"]],
    )


def _finish_campaign(ctx: JobContext, params: dict[str, Any]) -> None:
    ctx.services.campaigns.finish_issue(ctx.session, _campaign(ctx, params), actor_from(params))


split("campaign.issue", Split(plan=_plan_campaign, run=_run_campaign_slice, finish=_finish_campaign))


@job("campaigns.release_claims")
def release_claims(ctx: JobContext, params: dict[str, Any]) -> None:
    """Signatures claimed by a process that died before making them become signable again."""
    ctx.services.campaigns.release_expired_claims(ctx.session)


@job("campaigns.open_periods")
def open_periods(ctx: JobContext, params: dict[str, Any]) -> None:
    """Recurring campaigns' periods opened on time by a schedule (in the scale-out profile the
    pages do not open them as they read: many web processes would race to write)."""
    ctx.services.campaigns.refresh_recurring(ctx.session)
