"""The daily job that disables accounts nobody has used for too long."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar, Protocol

from service.jobs.registry import JobContext, JobParams, job

if TYPE_CHECKING:
    from service.accounts.service import Accounts
    from service.settings import Settings

log = logging.getLogger(__name__)


class Needs(Protocol):
    """What the accounts' job needs of the services."""

    accounts: Accounts
    settings: Settings


class DisableDormant(JobParams):
    kind: ClassVar[str] = "accounts.disable_dormant"


@job(DisableDormant)
def disable_dormant(ctx: JobContext[Needs], params: DisableDormant) -> None:
    """Disable the accounts unused for ``DOCSIGN_ACCOUNT_DORMANT_DAYS`` days (0: never)."""
    days = ctx.services.settings.account_dormant_days
    if days <= 0:
        return
    disabled = ctx.services.accounts.disable_dormant(ctx.session, days)
    ctx.checkpoint()
    if disabled:
        log.info("disabled %d accounts unused for %d days", len(disabled), days)
