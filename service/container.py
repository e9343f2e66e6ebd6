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

import service.tables  # noqa: F401 - every table registered before any session flushes
from service.accounts import tasks as account_tasks
from service.accounts.sealing import SecretBox
from service.accounts.service import Accounts
from service.archive import tasks as archive_tasks
from service.archive.service import Archive, OpenCounter
from service.audit.access import AccessLog
from service.audit.checkpoints import write_checkpoint
from service.campaigns import tasks as campaign_tasks
from service.campaigns.models import Assignment
from service.campaigns.service import Campaigns
from service.cases.models import CaseFile, HomeVisit
from service.cases.service import Cases
from service.children import spawn_without_interrupts
from service.clock import SYSTEM_CLOCK, Clock, wall_now
from service.crypto import keyring_for
from service.db.session import Database
from service.documents.convert import Converter
from service.documents.pipeline import DocumentEngine
from service.documents.sandbox import UploadLimits, UploadVerifier
from service.jobs.registry import JobContext, report_outage
from service.jobs.runner import EmbeddedRunner, Schedule
from service.ledgers import tasks as ledger_tasks
from service.ledgers.models import Finding
from service.ledgers.service import Ledgers
from service.limits import RateLimiter, rate_limiter
from service.notify import tasks as notify_tasks
from service.notify.channels import channels_from_settings
from service.notify.service import Notify
from service.pki.store import Pki
from service.retention import tasks as retention_tasks
from service.retention.rules import RetentionRules
from service.retention.service import Retention
from service.rosters import tasks as roster_tasks
from service.rosters.models import PrintBundle
from service.rosters.service import Rosters
from service.settings import Settings
from service.storage import open_store
from service.storage.base import STORE_NAMES, ArchiveStore
from service.storage.derived import DerivedFiles
from service.workdir import clean_dead

if TYPE_CHECKING:
    from service.jobs.celery_runner import CeleryRunner

log = logging.getLogger(__name__)

#: Recovery that every running process takes its turn at (only one runs at a time across them).
SCHEDULES = (
    Schedule(campaign_tasks.ReleaseClaims(), dt.timedelta(minutes=5)),
    Schedule(campaign_tasks.OpenPeriods(), dt.timedelta(minutes=1)),
    Schedule(archive_tasks.SweepArchive(), dt.timedelta(minutes=10)),
    # Verdicts of newly archived versions, so a scan reads a stored verdict; and all of them again
    # each day (revocations, expiring evidence).
    Schedule(archive_tasks.CheckPending(), dt.timedelta(minutes=2)),
    Schedule(archive_tasks.Recheck(), dt.timedelta(days=1)),
    # Long-term validity: the PKI renews what is about to expire, then documents get archive
    # timestamps before theirs stop protecting them.
    Schedule(archive_tasks.MaintainPki(), dt.timedelta(days=1)),
    Schedule(archive_tasks.TimestampArchive(), dt.timedelta(days=1)),
    # The logs' heads written down outside the database, so a cut tail is found.
    Schedule(archive_tasks.AuditCheckpoint(), dt.timedelta(days=1)),
    # Personal data no longer needed (the retention rules in the settings) is removed each day.
    Schedule(retention_tasks.ApplyRetention(), dt.timedelta(days=1)),
    # Accounts nobody has used for DOCSIGN_ACCOUNT_DORMANT_DAYS are disabled each day.
    Schedule(account_tasks.DisableDormant(), dt.timedelta(days=1)),
    # Notices: reminders and escalations as they fall due, held messages and retries, webhooks.
    Schedule(notify_tasks.RunNotify(), dt.timedelta(minutes=5)),
    Schedule(notify_tasks.RunCaseNotices(), dt.timedelta(hours=1)),
    # 四查三比对 once a month per bureau (asked daily: a bureau that had no run this month gets one).
    Schedule(ledger_tasks.CompareMonthly(), dt.timedelta(days=1)),
)
#: The columns of other domains that name archived files, by store (recovery keeps what they name).
FILE_COLUMNS = {
    "documents": (PrintBundle.sha256,),
    "reports": (Assignment.report_sha256,),
    "files": (CaseFile.sha256, HomeVisit.evidence_sha256, Finding.evidence_sha256),
}
#: Scans of notices' pages and reads of children's data are written to the database this often
#: (they are kept in memory until then).
OPENS_FLUSH_SECONDS = 5.0


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    pki: Pki
    engine: DocumentEngine
    stores: dict[str, ArchiveStore]
    #: The audit checkpoints (``service.audit.checkpoints``), apart from the stores rows name.
    checkpoints: ArchiveStore
    #: Page images of documents shown on the signing page, kept sealed under the work folder.
    page_images: DerivedFiles
    archive: Archive
    accounts: Accounts
    campaigns: Campaigns
    cases: Cases
    rosters: Rosters
    ledgers: Ledgers
    retention: Retention
    #: Reminders, escalation, 催办 and webhooks out (``service/notify``).
    notify: Notify
    #: The embedded runner, or the Celery runner when a broker is configured.
    jobs: EmbeddedRunner | CeleryRunner
    verify_limit: RateLimiter
    login_limit: RateLimiter
    upload_limit: RateLimiter
    #: Uploaded PDFs not in the archive are checked in these separate, killable processes.
    upload_verifier: UploadVerifier
    opens: OpenCounter
    #: Reads of children's data, noted by the faces and written in batches with the opens.
    access: AccessLog

    @classmethod
    def build(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK, *, converter: Converter | None = None) -> Services:
        """Every service from the settings; ``converter`` shares a warm LibreOffice pool (tests)."""
        spawn_without_interrupts(settings.temp_dir)  # children (upload checks, signing) leave Ctrl-C to us
        db = Database(settings)
        pki = Pki.from_settings(settings, clock.now)
        stores: dict[str, ArchiveStore] = {
            # a job shows that it waits for the object store (report_outage tells the running job)
            name: open_store(settings, name, on_retry=report_outage)
            for name in STORE_NAMES
        }
        engine = DocumentEngine(settings, pki=pki, archive=stores["documents"], converter=converter, now=clock.now)
        opens = OpenCounter(db)
        archive = Archive(
            db, engine, stores, clock.now, temp_root=settings.temp_dir, opens=opens, file_columns=FILE_COLUMNS
        )
        login_limit = rate_limiter(settings, "login", settings.login_rate_per_minute)
        cases = Cases(archive, settings.timezone, clock.now)
        campaigns = Campaigns(archive, settings.timezone, clock.now)
        rosters = Rosters(archive, settings.timezone, clock.now)
        ledgers = Ledgers(cases, campaigns, settings.timezone, clock.now)
        rosters.on_imported.append(ledgers.children_from_roster)  # a first-grade roster feeds the 适龄儿童台账
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
            checkpoints=open_store(settings, "checkpoints", on_retry=report_outage),
            page_images=DerivedFiles(
                settings.page_cache_dir, keyring_for(settings) if settings.archive_encryption else None
            ),
            archive=archive,
            accounts=Accounts(
                db,
                login_limit,
                settings.session_hours,
                clock.now,
                require_totp=settings.totp_required,
                session_idle_minutes=settings.session_idle_minutes,
                failures_before_backoff=settings.login_failures_before_backoff,
                backoff_max_minutes=settings.login_backoff_max_minutes,
                failures_per_client=settings.login_failures_per_client,
                lockout_minutes=settings.login_lockout_minutes,
                activation_hours=settings.activation_hours,
                public_base_url=settings.public_base_url,
                timezone=settings.timezone,
                secrets=SecretBox(settings.secret()),
            ),
            campaigns=campaigns,
            cases=cases,
            rosters=rosters,
            ledgers=ledgers,
            retention=Retention(
                archive,
                RetentionRules(
                    case_years=settings.retention_case_years,
                    roster_days=settings.retention_roster_days,
                    children_years=settings.retention_children_years,
                    page_cache_days=settings.retention_page_cache_days,
                ),
                settings.timezone,
                clock.now,
                page_cache=settings.page_cache_dir,
            ),
            notify=Notify(settings, channels_from_settings(settings, wall_now), clock.now, ledgers=ledgers),
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
            access=AccessLog(db),
        )
        runner.bind(services.job_context, on_takeover=archive.sweep_job)
        return services

    def job_context(self, session: Session, job_id: int | None = None) -> JobContext[Services]:
        return JobContext(services=self, session=session, job_id=job_id)

    def _serves_every_job(
        self,
    ) -> tuple[
        archive_tasks.Needs,
        campaign_tasks.Needs,
        roster_tasks.Needs,
        retention_tasks.Needs,
        notify_tasks.Needs,
        account_tasks.Needs,
        ledger_tasks.Needs,
    ]:
        """What each domain's jobs need of the services, checked by the type checker (never called)."""
        return self, self, self, self, self, self, self

    def prepare(self) -> None:
        """What every process does before serving: the schema up to date, the PKI in place (key
        files of older versions re-wrapped, audited), and the temporary folders of processes that
        died removed."""
        self.db.migrate()
        self.pki.init()
        if self.pki.files.rewrap_due():
            with self.db.session() as session:
                archive_tasks.rewrap_pki_keys(session, self)
                session.commit()
        clean_dead(self.settings.temp_dir)

    def start(self) -> None:
        """Prepare, then start taking background work and writing scans and reads in batches."""
        self.prepare()
        self.jobs.start()
        self._stopping = threading.Event()
        self._flusher = threading.Thread(target=self._flush_opens, name="docsign-opens", daemon=True)
        self._flusher.start()

    def _flush_opens(self) -> None:
        while not self._stopping.wait(OPENS_FLUSH_SECONDS):
            self.flush_batches()

    def flush_batches(self) -> None:
        """Write the scans counted, the reads and the sessions' uses noted since the last flush."""
        try:
            self.accounts.activity.flush()
        except Exception:  # likewise: the uses stay in memory (and count there) for the next round
            log.exception("writing the sessions' last use")
        try:
            self.opens.flush()
        except Exception:  # a busy database: the counts stay in memory for the next round
            log.exception("writing page opens")
        try:
            self.access.flush()
        except Exception:  # likewise: the reads stay in memory, in order, for the next round
            log.exception("writing the access log")

    def write_checkpoint(self) -> str:
        """An audit checkpoint of both logs now (daily, and when the server stops)."""
        with self.db.session() as session:
            return write_checkpoint(session, self.checkpoints, self.engine.signing.timestamp_token, self.clock.now())

    def close(self) -> None:
        if (stopping := getattr(self, "_stopping", None)) is not None:
            stopping.set()
            self._flusher.join(timeout=OPENS_FLUSH_SECONDS + 5)
        self.opens.flush()
        self.access.flush()
        self.accounts.activity.flush()
        self.jobs.shutdown()
        self.upload_verifier.close()
        self.engine.close()
        self.archive.requests.dispose()
        self.db.dispose()
