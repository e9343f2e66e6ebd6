"""Campaign jobs, run by whichever job runner the settings choose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from service.audit.schemas import ActorRef
from service.campaigns.models import Campaign
from service.errors import NotFound
from service.jobs.registry import JobContext, JobParams, Split, job, split

if TYPE_CHECKING:
    from service.campaigns.service import Campaigns
    from service.settings import Settings

#: Documents in one slice of a campaign issued by many workers.
CAMPAIGN_SLICE = 50


class Needs(Protocol):
    """What campaign jobs need of the services."""

    campaigns: Campaigns
    settings: Settings


class IssueCampaign(JobParams):
    kind: ClassVar[str] = "campaign.issue"
    campaign_id: int
    actor: ActorRef = ActorRef()


class ReleaseClaims(JobParams):
    kind: ClassVar[str] = "campaigns.release_claims"


class OpenPeriods(JobParams):
    kind: ClassVar[str] = "campaigns.open_periods"


def _campaign(ctx: JobContext[Needs], params: IssueCampaign) -> Campaign:
    campaign = ctx.session.get(Campaign, params.campaign_id)
    if campaign is None:
        raise NotFound("任务已不存在。")
    return campaign


@job(IssueCampaign)
def issue_campaign(ctx: JobContext[Needs], params: IssueCampaign) -> None:
    ctx.services.campaigns.issue(
        ctx.session,
        _campaign(ctx, params),
        params.actor.actor(),
        checkpoint=ctx.checkpoint,
        progress=ctx.progress,
        job_id=ctx.job_id,
    )


def _plan_campaign(ctx: JobContext[Needs], params: IssueCampaign) -> list[dict[str, Any]]:
    campaign = _campaign(ctx, params)
    if campaign.recurrence is not None:
        return []  # opening a period is one quick step: the whole job runs as one task
    todo = [[unit.id, kind] for unit, kind in ctx.services.campaigns.pending(ctx.session, campaign)]
    size = min(CAMPAIGN_SLICE, ctx.services.settings.merge_chunk_size)
    return [{"pairs": todo[i : i + size]} for i in range(0, len(todo), size)]


def _run_campaign_slice(ctx: JobContext[Needs], params: IssueCampaign, part: dict[str, Any]) -> int:
    return ctx.services.campaigns.issue(
        ctx.session,
        _campaign(ctx, params),
        params.actor.actor(),
        checkpoint=ctx.checkpoint,
        progress=ctx.progress,
        job_id=ctx.job_id,
        only=[(int(u), str(k)) for u, k in part["pairs"]],
    )


def _finish_campaign(ctx: JobContext[Needs], params: IssueCampaign) -> None:
    ctx.services.campaigns.finish_issue(ctx.session, _campaign(ctx, params), params.actor.actor())


split(IssueCampaign, Split(plan=_plan_campaign, run=_run_campaign_slice, finish=_finish_campaign))


@job(ReleaseClaims)
def release_claims(ctx: JobContext[Needs], params: ReleaseClaims) -> None:
    """Signatures claimed by a process that died before making them become signable again."""
    ctx.services.campaigns.release_expired_claims(ctx.session)


@job(OpenPeriods)
def open_periods(ctx: JobContext[Needs], params: OpenPeriods) -> None:
    """Recurring campaigns' periods opened on time by a schedule, in every profile (a page or an
    API GET only reads them; creating or starting a recurring campaign opens its first period)."""
    ctx.services.campaigns.refresh_recurring(ctx.session)
