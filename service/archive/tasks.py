"""Archive jobs: recovery of writes that a crash left behind."""

from __future__ import annotations

import datetime as dt
from typing import Any

from service.audit.service import SYSTEM, record
from service.jobs.registry import JobContext, job

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


@job("pki.maintain")
def maintain_pki(ctx: JobContext, params: dict[str, Any]) -> None:
    """The local PKI keeps itself alive: CRLs re-published, unit certificates renewed, the TSA and
    the issuing CA rolled over; each change is recorded in the audit log, and the documents' stored
    verdicts are checked again when a key changed."""
    services = ctx.services
    report = services.pki.maintain(services.clock.now())
    now = services.clock.now()
    for line in report.lines():
        record(ctx.session, SYSTEM, "pki.maintain", "pki", "local", now, done=line)
    if report.renewed or report.tsa is not None:
        services.jobs.enqueue(ctx.session, "archive.recheck", {}, active_key="archive.recheck")
