"""Archive jobs: recovery of writes a crash left behind, stored verdicts, archive timestamps and the
local PKI's upkeep."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sqlalchemy.orm import Session

from service.audit.service import SYSTEM, record
from service.jobs.registry import JobContext, JobParams, job
from service.pki.status import MaintenanceReport

if TYPE_CHECKING:
    from service.archive.service import Archive
    from service.clock import Clock
    from service.pki.store import Pki
    from service.settings import Settings

#: An unfinished write (a temporary file, an open multipart upload) older than this is abandoned.
INCOMPLETE_AFTER = dt.timedelta(hours=1)


class Enqueues(Protocol):
    def enqueue(
        self,
        session: Session,
        params: JobParams,
        *,
        unit_id: int | None = None,
        user_id: int | None = None,
        active_key: str | None = None,
    ) -> tuple[Any, bool]: ...


class Needs(Protocol):
    """What archive jobs need of the services."""

    archive: Archive
    pki: Pki
    clock: Clock
    settings: Settings

    @property
    def jobs(self) -> Enqueues: ...

    def write_checkpoint(self) -> str: ...


class SweepArchive(JobParams):
    kind: ClassVar[str] = "archive.sweep"


class CheckPending(JobParams):
    kind: ClassVar[str] = "archive.check_pending"


class Recheck(JobParams):
    kind: ClassVar[str] = "archive.recheck"
    #: Only this unit's documents (after its certificate was revoked); all of them when None.
    unit_id: int | None = None


class TimestampArchive(JobParams):
    kind: ClassVar[str] = "archive.timestamp"


class MaintainPki(JobParams):
    kind: ClassVar[str] = "pki.maintain"


class AuditCheckpoint(JobParams):
    kind: ClassVar[str] = "audit.checkpoint"


@job(SweepArchive)
def sweep(ctx: JobContext[Needs], params: SweepArchive) -> None:
    """Delete archived files that no committed row points to, and what interrupted writes left."""
    archive = ctx.services.archive
    archive.sweep(ctx.session)
    for store in archive.stores.values():
        store.clean_incomplete(INCOMPLETE_AFTER)


@job(CheckPending)
def check_pending(ctx: JobContext[Needs], params: CheckPending) -> None:
    """Verify newly archived versions, so the public page reads a stored verdict."""
    archive = ctx.services.archive
    while archive.check_pending(ctx.session):
        ctx.checkpoint()


@job(Recheck)
def recheck(ctx: JobContext[Needs], params: Recheck) -> None:
    """Verify the current version of every document again (daily, and after a revocation or a
    change of trust anchors: ``unit_id`` limits it to one unit's documents)."""
    for done in ctx.services.archive.recheck(ctx.session, params.unit_id):
        ctx.checkpoint()
        ctx.progress(done, done, "recheck")


@job(TimestampArchive)
def timestamp(ctx: JobContext[Needs], params: TimestampArchive) -> None:
    """Archive timestamps on every document whose newest timestamp stops protecting it within the
    configured margin (PAdES B-LTA), each a new archived version."""
    services = ctx.services
    margin = dt.timedelta(days=services.settings.archive_timestamp_margin_days)
    for n, _ in enumerate(
        services.archive.refresh_timestamps(ctx.session, margin, job_id=ctx.job_id, checkpoint=ctx.checkpoint), 1
    ):
        ctx.progress(n, n, "timestamp")


def maintain_pki(session: Session, services: Needs, *, replace_issuing: bool = False) -> MaintenanceReport:
    """The local PKI's upkeep, once (see :meth:`Pki.maintain`; ``replace_issuing`` replaces the
    issuing CA now), each change recorded in the audit log; when a key changed, the stored verdicts
    are queued to be checked again. The caller commits."""
    report = services.pki.maintain(services.clock.now(), replace_issuing=replace_issuing)
    now = services.clock.now()
    for line in report.lines():
        record(session, SYSTEM, "pki.maintain", "pki", "local", now, done=line)
    for need in report.attention:  # a person must act: told to the bureau by the notices
        record(session, SYSTEM, "pki.attention", "pki", "local", now, need=need)
    if report.renewed or report.tsa is not None or report.issuing is not None:
        services.jobs.enqueue(session, Recheck(), active_key="archive.recheck")
    return report


def rewrap_pki_keys(session: Session, services: Needs) -> list[str]:
    """Key files that older versions wrapped with fewer PBKDF2 rounds, encrypted again (see
    :meth:`Pki.rewrap_keys`), each recorded in the audit log; run at every start. The caller commits."""
    rewrapped = services.pki.rewrap_keys()
    now = services.clock.now()
    for name in rewrapped:
        record(
            session, SYSTEM, "pki.rewrap", "pki_key", name, now, done=f"私钥文件已按新的口令派生强度重新加密：{name}"
        )
    return rewrapped


@job(MaintainPki)
def maintain_pki_job(ctx: JobContext[Needs], params: MaintainPki) -> None:
    """The local PKI keeps itself alive: CRLs re-published, unit certificates renewed, the TSA and
    the issuing CA rolled over; each change is recorded in the audit log, and the documents' stored
    verdicts are checked again when a key changed."""
    maintain_pki(ctx.session, ctx.services)


@job(AuditCheckpoint)
def audit_checkpoint(ctx: JobContext[Needs], params: AuditCheckpoint) -> None:
    """The audit and access logs' heads, signed, timestamped and kept in the archive (daily)."""
    ctx.services.write_checkpoint()
