"""Archive jobs: recovery of writes a crash left behind, stored verdicts, archive timestamps and the
local PKI's upkeep."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from service.audit.service import SYSTEM, record
from service.jobs.registry import JobContext, job
from service.pki.store import MaintenanceReport

if TYPE_CHECKING:
    from service.container import Services

#: An unfinished write (a temporary file, an open multipart upload) older than this is abandoned.
INCOMPLETE_AFTER = dt.timedelta(hours=1)


@job("archive.sweep")
def sweep(ctx: JobContext, params: dict[str, Any]) -> None:
    """Delete archived files that no committed row points to, and what interrupted writes left."""
    archive = ctx.services.archive
    archive.sweep(ctx.session)
    for store in archive.stores.values():
        store.clean_incomplete(INCOMPLETE_AFTER)


@job("archive.check_pending")
def check_pending(ctx: JobContext, params: dict[str, Any]) -> None:
    """Verify newly archived versions, so the public page reads a stored verdict."""
    archive = ctx.services.archive
    while archive.check_pending(ctx.session):
        ctx.checkpoint()


@job("archive.recheck")
def recheck(ctx: JobContext, params: dict[str, Any]) -> None:
    """Verify the current version of every document again (daily, and after a revocation or a
    change of trust anchors: ``unit_id`` limits it to one unit's documents)."""
    unit_id = params.get("unit_id")
    for done in ctx.services.archive.recheck(ctx.session, int(unit_id) if unit_id is not None else None):
        ctx.checkpoint()
        ctx.progress(done, done, "recheck")


@job("archive.timestamp")
def timestamp(ctx: JobContext, params: dict[str, Any]) -> None:
    """Archive timestamps on every document whose newest timestamp stops protecting it within the
    configured margin (PAdES B-LTA), each a new archived version."""
    services = ctx.services
    margin = dt.timedelta(days=services.settings.archive_timestamp_margin_days)
    for n, _ in enumerate(
        services.archive.refresh_timestamps(ctx.session, margin, job_id=ctx.job_id, checkpoint=ctx.checkpoint), 1
    ):
        ctx.progress(n, n, "timestamp")


def maintain_pki(session: Session, services: Services) -> MaintenanceReport:
    """The local PKI's upkeep, once (see :meth:`Pki.maintain`), each change recorded in the audit
    log; when a key changed, the stored verdicts are queued to be checked again. The caller commits."""
    report = services.pki.maintain(services.clock.now())
    now = services.clock.now()
    for line in report.lines():
        record(session, SYSTEM, "pki.maintain", "pki", "local", now, done=line)
    if report.renewed or report.tsa is not None or report.issuing is not None:
        services.jobs.enqueue(session, "archive.recheck", {}, active_key="archive.recheck")
    return report


@job("pki.maintain")
def maintain_pki_job(ctx: JobContext, params: dict[str, Any]) -> None:
    """The local PKI keeps itself alive: CRLs re-published, unit certificates renewed, the TSA and
    the issuing CA rolled over; each change is recorded in the audit log, and the documents' stored
    verdicts are checked again when a key changed."""
    maintain_pki(ctx.session, ctx.services)
