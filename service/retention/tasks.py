"""The daily retention job."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from service.jobs.registry import JobContext, JobParams, job

if TYPE_CHECKING:
    from service.retention.service import Retention


class Needs(Protocol):
    """What the retention job needs of the services."""

    retention: Retention


class ApplyRetention(JobParams):
    kind: ClassVar[str] = "retention.apply"


@job(ApplyRetention)
def apply_retention(ctx: JobContext[Needs], params: ApplyRetention) -> None:
    """Remove the personal data the retention rules make due today, each record committed and
    logged on its own; progress counts the records."""
    retention = ctx.services.retention
    plan = retention.plan(ctx.session)
    total = len(plan.items) + (1 if plan.page_images else 0)
    done = 0

    def checkpoint() -> None:
        nonlocal done
        ctx.checkpoint()
        done += 1
        ctx.progress(done, total, "retention")

    retention.apply(ctx.session, plan, checkpoint=checkpoint)
    ctx.checkpoint()
