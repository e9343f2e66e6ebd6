"""The service container: every service and store built once from the settings.

The faces (the HTTP app, the command line, job workers) build one :class:`Services` and pass it
down; nothing else constructs a database, an archive store, the PKI or a runner. Which
implementation each concern gets (the archive store, the job runner, the rate limiter) is decided
here from the settings alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

# Job kinds register themselves when their module is imported.
import service.archive.tasks
import service.campaigns.tasks
import service.cases.tasks  # noqa: F401
from service.accounts.sealing import SecretBox
from service.accounts.service import Accounts
from service.archive.service import Archive, OpenCounter
from service.archive.store import ArchiveStore, open_store
from service.campaigns.service import Campaigns
from service.cases.service import Cases
from service.clock import SYSTEM_CLOCK, Clock
from service.db.session import Database
from service.documents.convert import Converter
from service.documents.pipeline import DocumentEngine
from service.documents.sandbox import UploadLimits, UploadVerifier
from service.jobs.registry import JobContext, report_outage
from service.jobs.runner import EmbeddedRunner, Schedule
from service.ledgers.service import Ledgers
from service.limits import RateLimiter, rate_limiter
from service.pki.store import Pki
from service.settings import Settings
from service.workdir import clean_dead

if TYPE_CHECKING:
    from service.jobs.celery_runner import CeleryRunner

log = logging.getLogger(__name__)

#: Recovery that every running process takes its turn at (only one runs at a time across them).
SCHEDULES = (
    Schedule("campaigns.release_claims", dt.timedelta(minutes=5)),
    Schedule("campaigns.open_periods", dt.timedelta(minutes=5)),
    Schedule("archive.sweep", dt.timedelta(minutes=10)),
    # Verdicts of newly archived versions, so a scan reads a stored verdict; and all of them again
    # each day (revocations, expiring evidence).
    Schedule("archive.check_pending", dt.timedelta(minutes=2)),
    Schedule("archive.recheck", dt.timedelta(days=1)),
    # Long-term validity: the PKI renews what is about to expire, then documents get archive
    # timestamps before theirs stop protecting them.
    Schedule("pki.maintain", dt.timedelta(days=1)),
    Schedule("archive.timestamp", dt.timedelta(days=1)),
)
#: Scans of notices' pages are written to the database this often (they are counted in memory).
OPENS_FLUSH_SECONDS = 5.0


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    pki: Pki
    engine: DocumentEngine
    stores: dict[str, ArchiveStore]
    archive: Archive
    accounts: Accounts
    campaigns: Campaigns
    cases: Cases
    ledgers: Ledgers
    #: The embedded runner, or the Celery runner when a broker is configured.
    jobs: EmbeddedRunner | CeleryRunner
    verify_limit: RateLimiter
    login_limit: RateLimiter
    upload_limit: RateLimiter
    #: Uploaded PDFs not in the archive are checked in these separate, killable processes.
    upload_verifier: UploadVerifier
    opens: OpenCounter

    @classmethod
    def build(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK, *, converter: Converter | None = None) -> Services:
        """Every service from the settings; ``converter`` shares a warm LibreOffice pool (tests)."""
        db = Database(settings)
        pki = Pki(
            settings.certs_dir,
            settings.pki_passphrase.get_secret_value(),
            settings.pki_organization,
            settings.public_base_url,
            now=clock.now,
        )
        stores: dict[str, ArchiveStore] = {
            # a job shows that it waits for the object store (report_outage tells the running job)
            name: open_store(settings, name, on_retry=report_outage)
            for name in ("documents", "reports", "files")
        }
        engine = DocumentEngine(settings, pki=pki, archive=stores["documents"], converter=converter, now=clock.now)
        opens = OpenCounter(db)
        archive = Archive(db, engine, stores, clock.now, temp_root=settings.temp_dir, opens=opens)
        login_limit = rate_limiter(settings, "login", settings.login_rate_per_minute)
        cases = Cases(archive, settings.timezone, clock.now)
        runner: EmbeddedRunner | CeleryRunner
        if settings.scale_out:
            from service.jobs.celery_runner import CeleryRunner, celery_app  # Celery only in this profile

            runner = CeleryRunner(
                db,
                celery_app(settings),
                lease=dt.timedelta(seconds=settings.job_lease_seconds),
                poll=dt.timedelta(seconds=settings.job_poll_seconds),
                schedules=SCHEDULES,
            )
        else:
            runner = EmbeddedRunner(
                db,
                workers=settings.job_workers,
                lease=dt.timedelta(seconds=settings.job_lease_seconds),
                poll=dt.timedelta(seconds=settings.job_poll_seconds),
                schedules=SCHEDULES,
            )
        services = cls(
            settings=settings,
            clock=clock,
            db=db,
            pki=pki,
            engine=engine,
            stores=stores,
            archive=archive,
            accounts=Accounts(
                db,
                login_limit,
                settings.session_hours,
                clock.now,
                require_staff_totp=settings.staff_totp_required,
                failures_per_account=settings.login_failures_per_account,
                failures_per_client=settings.login_failures_per_client,
                lockout_minutes=settings.login_lockout_minutes,
                secrets=SecretBox(settings.secret()),
            ),
            campaigns=Campaigns(archive, settings.timezone, clock.now),
            cases=cases,
            ledgers=Ledgers(cases, settings.timezone, clock.now),
            jobs=runner,
            verify_limit=rate_limiter(settings, "verify", settings.verify_rate_per_minute),
            login_limit=login_limit,
            upload_limit=rate_limiter(settings, "upload", settings.upload_rate_per_minute),
            upload_verifier=UploadVerifier(
                UploadLimits(
                    max_bytes=settings.max_pdf_bytes,
                    max_revisions=settings.upload_max_revisions,
                    max_signatures=settings.upload_max_signatures,
                    cpu_seconds=settings.upload_cpu_seconds,
                ),
                workers=settings.upload_check_processes,
            ),
            opens=opens,
        )
        runner.bind(services.job_context, on_takeover=archive.sweep_job)
        return services

    def job_context(self, session: Session, job_id: int | None = None) -> JobContext:
        return JobContext(services=self, session=session, job_id=job_id)

    def prepare(self) -> None:
        """What every process does before serving: the schema up to date, the PKI in place, and
        the temporary folders of processes that died removed."""
        self.db.migrate()
        self.pki.init()
        clean_dead(self.settings.temp_dir)

    def start(self) -> None:
        """Prepare, then start taking background work and writing scans in batches."""
        self.prepare()
        self.jobs.start()
        self._stopping = threading.Event()
        self._flusher = threading.Thread(target=self._flush_opens, name="docsign-opens", daemon=True)
        self._flusher.start()

    def _flush_opens(self) -> None:
        while not self._stopping.wait(OPENS_FLUSH_SECONDS):
            try:
                self.opens.flush()
            except Exception:  # a busy database: the counts stay in memory for the next round
                log.exception("writing page opens")

    def close(self) -> None:
        if (stopping := getattr(self, "_stopping", None)) is not None:
            stopping.set()
            self._flusher.join(timeout=OPENS_FLUSH_SECONDS + 5)
        self.opens.flush()
        self.jobs.shutdown()
        self.upload_verifier.close()
        self.engine.close()
        self.db.dispose()
