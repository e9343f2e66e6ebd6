"""The monthly 四查三比对 (``Compare.monthly``): asked daily, it runs once a month per bureau."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from service.jobs.registry import JobContext, JobParams, job

if TYPE_CHECKING:
    from service.ledgers.service import Ledgers


class Needs(Protocol):
    """What the ledgers' jobs need of the services."""

    ledgers: Ledgers


class CompareMonthly(JobParams):
    kind: ClassVar[str] = "ledgers.compare_monthly"


@job(CompareMonthly)
def compare_monthly(ctx: JobContext[Needs], params: CompareMonthly) -> None:
    """Each bureau with lists and no run this month is compared, each committed on its own."""
    ctx.services.ledgers.compare.monthly(ctx.session, ctx.checkpoint)
    ctx.checkpoint()
