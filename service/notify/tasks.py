"""Notice jobs: the rules and sending on a schedule, and 催办's messages sent at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from service.jobs.registry import JobContext, JobParams, job

if TYPE_CHECKING:
    from service.notify.service import Notify


class Needs(Protocol):
    """What notice jobs need of the services."""

    notify: Notify


class RunNotify(JobParams):
    """The reminder rules, webhook events from the audit log, and every message and webhook due."""

    kind: ClassVar[str] = "notify.run"


class RunCaseNotices(JobParams):
    """The same, with the case steps' due items too (hourly: they move by the day, and reading
    them for every school costs more than the campaigns' assignments)."""

    kind: ClassVar[str] = "notify.cases"


class SendDeliveries(JobParams):
    """The messages of one 催办 (or a resend), sent now rather than at the next scheduled run."""

    kind: ClassVar[str] = "notify.send"
    delivery_ids: list[int]


@job(RunNotify)
def run_notify(ctx: JobContext[Needs], params: RunNotify) -> None:
    ctx.services.notify.run(ctx.session, ctx.checkpoint, cases=False)


@job(RunCaseNotices)
def run_case_notices(ctx: JobContext[Needs], params: RunCaseNotices) -> None:
    ctx.services.notify.run(ctx.session, ctx.checkpoint, cases=True)


@job(SendDeliveries)
def send_deliveries(ctx: JobContext[Needs], params: SendDeliveries) -> None:
    # a rerun finds the sent ones no longer queued and sends only what is left
    ctx.services.notify.send_due(ctx.session, ctx.checkpoint, only=params.delivery_ids)
