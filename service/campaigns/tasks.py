"""Campaign jobs, run by whichever job runner the settings choose."""

from __future__ import annotations

from typing import Any

from service.campaigns.models import Campaign
from service.errors import NotFound
from service.jobs.registry import JobContext, actor_from, job


@job("campaign.issue")
def issue_campaign(ctx: JobContext, params: dict[str, Any]) -> None:
    campaign = ctx.session.get(Campaign, int(params["campaign_id"]))
    if campaign is None:
        raise NotFound("任务已不存在。")
    ctx.services.campaigns.issue(
        ctx.session,
        campaign,
        actor_from(params),
        checkpoint=ctx.checkpoint,
        progress=lambda done, total: ctx.progress(done, total, "issue"),
        job_id=ctx.job_id,
    )


@job("campaigns.release_claims")
def release_claims(ctx: JobContext, params: dict[str, Any]) -> None:
    """Signatures claimed by a process that died before making them become signable again."""
    ctx.services.campaigns.release_expired_claims(ctx.session)
