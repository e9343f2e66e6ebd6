"""Case and roster jobs, run by whichever job runner the settings choose."""

from __future__ import annotations

from typing import Any

from service.cases.models import Roster
from service.errors import NotFound
from service.jobs.registry import JobContext, actor_from, job


@job("roster.issue")
def issue_roster(ctx: JobContext, params: dict[str, Any]) -> None:
    roster = ctx.session.get(Roster, int(params["roster_id"]))
    if roster is None:
        raise NotFound("名单已不存在。")
    ctx.services.cases.issue_roster(
        ctx.session,
        roster,
        actor_from(params),
        checkpoint=ctx.checkpoint,
        progress=lambda done, total: ctx.progress(done, total, "issue"),
        job_id=ctx.job_id,
    )
