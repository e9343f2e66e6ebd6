"""The scale-out profile on real components: PostgreSQL, Redis (DB 6) as Celery's broker, real
Celery workers (``docsign worker``, prefork), SeaweedFS as the archive. No eager mode, no fake S3.

These runs take minutes; they carry the ``scaleout`` mark (``.venv/bin/pytest -m scaleout`` runs
only them). Under ``scripts/test`` they go to one worker first, with the other Redis files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from sqlalchemy import func, select

from devtools.scaleout import CeleryWorkers
from service.accounts.scope import Scope
from service.archive.models import Document, DocumentVersion
from service.campaigns.models import Assignment
from service.container import Services
from service.demo import load_demo
from service.jobs.celery_runner import STAGE_STORE_RETRY, CeleryRunner, celery_app
from service.jobs.models import Job, JobSlice
from service.pki.store import Pki
from service.rosters.models import PrintBundle, Roster, RosterEntry
from service.settings import Settings
from service.storage.base import RETRYING_MESSAGE
from service.units.models import Unit
from tests import checks
from tests.databases import postgres_database
from tests.rosters.roster_data import rows, xlsx

if TYPE_CHECKING:
    from celery import Celery

    from devtools.seaweedfs import SeaweedFS

pytestmark = pytest.mark.scaleout

BROKER = os.environ.get("DOCSIGN_TEST_BROKER_URL", "redis://127.0.0.1:6379/6")
SCHOOLS = ["WSR-SH", "WSR-XD", "WSR-ZX", "HJL-XX", "HJL-BX", "HJL-ZX", "SYXX", "DEZX"]
#: The roster of the killed-worker run (the issue asks for 1,000).
COUNT = int(os.environ.get("DOCSIGN_TEST_SCALEOUT_COUNT", "500"))


@dataclass
class Profile:
    services: Services
    workers: CeleryWorkers
    settings: Settings
    env: dict[str, str]

    def import_roster(self, count: int, seed: int) -> int:
        with self.services.db.session() as s:
            bureau = s.scalar(select(Unit).where(Unit.code == "LCJT"))
            assert bureau is not None
            scope = Scope.operator(s, bureau, "test")
            roster, errors = self.services.rosters.import_roster(
                s,
                scope,
                xlsx(rows(count, SCHOOLS, seed=seed)),
                "roster.xlsx",
                kind="enrollment_notice",
                report_by=dt.date(2099, 8, 31),
            )
            assert not errors
            s.commit()
            return roster.id

    def start_issue(self, roster_id: int) -> int:
        with self.services.db.session() as s:
            roster = s.get(Roster, roster_id)
            assert roster is not None
            scope = Scope.operator(s, roster.issuer, "test")
            job, new = self.services.rosters.start_issue(s, scope, roster, self.services.jobs)
            assert new
            s.commit()  # the task is sent now
            return job.id

    def issued(self, roster_id: int) -> int:
        with self.services.db.session() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(RosterEntry)
                    .where(RosterEntry.roster_id == roster_id, RosterEntry.document_id.is_not(None))
                )
                or 0
            )

    def job(self, job_id: int) -> Job:
        with self.services.db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            s.expunge(job)
            return job


@pytest.fixture(scope="module")
def profile(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS, settings: Settings, pki: Pki
) -> Iterator[Profile]:
    """One profile for the module's tests (starting workers costs their LibreOffice), in any order:
    the test that kills the whole worker leaves its replacement as the profile's workers."""
    tmp_path = tmp_path_factory.mktemp("scaleout")
    bucket = f"scaleout-{uuid.uuid4().hex[:12]}"
    seaweedfs.create_bucket(bucket)
    redis.Redis.from_url(BROKER).flushdb()  # no task left over from an earlier run
    with postgres_database() as url:
        env = {
            **os.environ,
            **seaweedfs.settings_env(bucket),
            "DOCSIGN_DATABASE_URL": url,
            "DOCSIGN_BROKER_URL": BROKER,
            "DOCSIGN_DATA_DIR": str(tmp_path / "var"),
            # every worker reads the signing keys from the configured PKI location
            "DOCSIGN_CERTS_DIR": str(settings.certs_dir),
            "DOCSIGN_PKI_PASSPHRASE": settings.pki_passphrase.get_secret_value(),
            "DOCSIGN_PUBLIC_BASE_URL": settings.public_base_url,
            "DOCSIGN_MERGE_CHUNK_SIZE": "50",
            "DOCSIGN_JOB_LEASE_SECONDS": "30",
            "DOCSIGN_CELERY_TICK_SECONDS": "5",
        }
        scale = Settings.model_validate(
            {
                **settings.model_dump(),
                **seaweedfs.settings_values(bucket),
                "database_url": url,
                "broker_url": BROKER,
                "data_dir": tmp_path / "var",
                "merge_chunk_size": 50,
                "job_lease_seconds": 30.0,
            }
        )
        services = Services.build(scale)
        assert isinstance(services.jobs, CeleryRunner)
        services.prepare()  # the schema, before the workers start
        with services.db.session() as s:
            load_demo(s)
            s.commit()
        workers = CeleryWorkers(env, tmp_path / "worker.log", concurrency=2, cwd=tmp_path)
        workers.start()
        profile = Profile(services, workers, scale, env)
        try:
            yield profile
        finally:
            profile.workers.stop()  # the replacement, if the whole-worker test ran
            services.close()


def _wait(profile: Profile, job_id: int, timeout: float, workers: CeleryWorkers | None = None) -> Job:
    if not profile.services.jobs.wait(job_id, timeout):
        job = profile.job(job_id)
        log = (workers or profile.workers).log_tail(80)
        pytest.fail(
            f"job {job_id} did not end in {timeout:.0f} s (status {job.status}, {job.done}/{job.total} done, "
            f"attempts {job.attempts}); worker log:\n{log}"
        )
    return profile.job(job_id)


def _check_roster(profile: Profile, roster_id: int, count: int, nss_db: str, samples: int) -> None:
    """Exactly ``count`` documents with distinct codes, sampled PDFs valid, each school's print
    PDF complete and in class order, and no object in the bucket that no row points to."""
    store = profile.services.archive.documents
    with profile.services.db.session() as s:
        entries = list(s.scalars(select(RosterEntry).where(RosterEntry.roster_id == roster_id)))
        docs = {
            d.id: d
            for d in s.scalars(
                select(Document).where(
                    Document.id.in_(select(RosterEntry.document_id).where(RosterEntry.roster_id == roster_id))
                )
            )
        }
        all_docs = s.scalar(select(func.count()).select_from(Document))
        recorded = s.scalar(select(func.count()).select_from(RosterEntry).where(RosterEntry.document_id.is_not(None)))
        campaign_docs = s.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.document_id.is_not(None))
        )
        all_bundles = set(s.scalars(select(PrintBundle.sha256)))
        bundles = list(s.scalars(select(PrintBundle).where(PrintBundle.roster_id == roster_id)))
        versions = set(s.scalars(select(DocumentVersion.sha256)))
    assert len(entries) == count and all(e.document_id for e in entries)
    assert len({e.document_id for e in entries}) == count
    assert len(docs) == count
    assert all_docs == recorded + campaign_docs  # nothing issued twice by a slice that ran again
    assert len({e.code for e in entries}) == count
    assert len({d.code_hash for d in docs.values()}) == count

    rnd = random.Random(roster_id)
    for e in rnd.sample(entries, samples) if samples else []:
        out = checks.pdfsig(store.get(docs[e.document_id].current_sha256), nss_db)  # type: ignore[index]
        assert "Signature is Valid." in out and "Certificate is Trusted." in out, out

    order: dict[int, list[str]] = {}
    for e in sorted(entries, key=lambda e: (e.school_id, e.class_order)):
        order.setdefault(e.school_id, []).append(e.fields["student_name"])
    assert {b.school_id for b in bundles} == set(order)
    for b in bundles:
        names = order[b.school_id]
        assert b.notices == b.pages == len(names)
        with store.local_path(b.sha256) as path:
            text = subprocess.run(
                ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, timeout=300, check=True
            ).stdout
        pages = text.split("\f")
        for i in sorted(rnd.sample(range(len(names)), min(8, len(names)))):
            assert f"{names[i]}已经达到" in re.sub(r"\s+", "", pages[i]), (b.school_id, i, names[i])

    stored = set(store.keys())
    expected = versions | all_bundles
    assert stored == expected, f"{len(stored - expected)} orphans, {len(expected - stored)} missing"


def test_a_roster_issued_by_two_workers_survives_one_killed(profile: Profile, nss_db: str) -> None:
    roster_id = profile.import_roster(COUNT, seed=11)
    t0 = time.monotonic()
    job_id = profile.start_issue(roster_id)

    # Kill the pool process that runs a slice, once a fifth of the roster is recorded.
    deadline = time.monotonic() + 240
    victim = None
    while victim is None and time.monotonic() < deadline:
        assert profile.job(job_id).status in ("queued", "running"), profile.workers.log_tail(60)
        if profile.issued(roster_id) >= COUNT // 5:
            with profile.services.db.session() as s:
                # a slice less than half done: its worker is surely in the middle of it
                owners = s.scalars(
                    select(JobSlice.lease_owner).where(
                        JobSlice.job_id == job_id, JobSlice.status == "running", JobSlice.done * 2 < JobSlice.total
                    )
                ).all()
            pool = set(profile.workers.pool())
            running = [int(o.split(":")[1]) for o in owners if o and int(o.split(":")[1]) in pool]
            if running:
                victim = running[0]
                os.kill(victim, signal.SIGKILL)
                break
        time.sleep(0.1)
    assert victim is not None, "no slice was running"
    killed_at = profile.issued(roster_id)
    assert killed_at < COUNT, "the batch finished before a worker could be killed"

    job = _wait(profile, job_id, 420)
    seconds = time.monotonic() - t0
    assert job.status == "done", (job.error_code, job.error_message, profile.workers.log_tail(60))
    assert job.done == job.total == COUNT
    assert "WorkerLostError" in profile.workers.log_path.read_text(encoding="utf-8", errors="replace")
    with profile.services.db.session() as s:
        retried = s.scalar(
            select(func.count()).select_from(JobSlice).where(JobSlice.job_id == job_id, JobSlice.attempts > 1)
        )
    assert retried and retried >= 1  # the killed slice ran again
    _check_roster(profile, roster_id, COUNT, nss_db, samples=30)
    print(f"\n{COUNT} notices on 2 Celery workers, one killed at {killed_at}: {seconds:.1f} s")


def test_an_object_store_outage_mid_batch_is_reported_and_loses_nothing(
    profile: Profile, seaweedfs: SeaweedFS, nss_db: str
) -> None:
    count = 200
    roster_id = profile.import_roster(count, seed=12)
    job_id = profile.start_issue(roster_id)
    deadline = time.monotonic() + 180
    while profile.issued(roster_id) < 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert profile.issued(roster_id) < count
    seaweedfs.stop()
    seen: set[tuple[str | None, str | None]] = set()
    try:
        # A few seconds at least, and until a worker has met the outage (one converting a chunk
        # meanwhile does not touch the store).
        stopped = time.monotonic()
        while time.monotonic() - stopped < 5 or (
            (STAGE_STORE_RETRY, RETRYING_MESSAGE) not in seen and time.monotonic() - stopped < 40
        ):
            job = profile.job(job_id)
            seen.add((job.stage, job.error_message))
            time.sleep(0.2)
    finally:
        seaweedfs.start()
    assert (STAGE_STORE_RETRY, RETRYING_MESSAGE) in seen, seen  # every web process shows the outage
    job = _wait(profile, job_id, 240)
    assert job.status == "done", (job.error_code, job.error_message, profile.workers.log_tail(60))
    assert job.error_message is None and job.done == count
    _check_roster(profile, roster_id, count, nss_db, samples=10)


def test_slices_whose_messages_the_broker_lost_are_sent_again_when_the_queue_is_gone(tmp_path: Path) -> None:
    """Redis deletes a queue's list once its last message is taken, and a restart without
    persistence loses it: the tick must take "no such queue" for an empty queue and send the queued
    slices of a running job again (it took it for an error and sent nothing, for ever). A runner of
    its own, on its own Redis DB, with no worker to take the messages."""
    from service.db.session import Database
    from service.jobs.celery_runner import QUEUE, celery_app

    url = BROKER.rsplit("/", 1)[0] + "/8"
    broker = redis.Redis.from_url(url)
    broker.flushdb()
    settings = Settings(data_dir=tmp_path / "var", broker_url=url, environment="development")
    db = Database(settings)
    try:
        db.migrate()
        runner = CeleryRunner(db, celery_app(settings), lease=dt.timedelta(seconds=30), poll=dt.timedelta(seconds=1))
        assert broker.exists(QUEUE) == 0 and runner._queue_empty()  # no list at all: empty, not unknown
        with db.session() as s:
            job = Job(kind="roster.issue", params={"roster_id": 1}, status="running")
            s.add(job)
            s.flush()
            s.add_all(JobSlice(job_id=job.id, number=n, params={"entries": [n]}, total=1) for n in (1, 2))
            s.commit()
        assert runner.resend_lost() == 2
        assert broker.llen(QUEUE) == 2 and not runner._queue_empty()  # two messages wait now
        assert runner.resend_lost() == 0  # and are not sent twice while they wait
    finally:
        db.dispose()
        broker.flushdb()


def _task_events(app: Celery) -> list[str]:
    """The types of the Celery task events published from now on (a listener thread)."""
    seen: list[str] = []
    ready = threading.Event()

    def heard(event: dict[str, Any]) -> None:
        seen.append(event["type"])
        ready.set()  # the first: the workers' heartbeats the wake-up asked for

    def listen() -> None:
        with contextlib.suppress(Exception), app.connection_for_read() as conn:
            app.events.Receiver(conn, handlers={"*": heard}).capture(limit=None, timeout=None, wakeup=True)

    threading.Thread(target=listen, daemon=True).start()
    assert ready.wait(30), "no worker answered the events receiver's wake-up"
    return seen


def test_a_campaign_is_issued_in_slices_by_the_workers(profile: Profile) -> None:
    """The Licheng campaign's 12 documents as slices of the Celery runner, marked issued once."""
    from service.audit.models import AuditEvent
    from service.campaigns.models import Campaign
    from service.campaigns.service import CampaignSpec
    from tests.district import scope_of

    services = profile.services
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        deadline = (services.clock.now() + dt.timedelta(days=3)).replace(tzinfo=None)
        campaign = services.campaigns.create(
            s, bureau, CampaignSpec(name="2024年控辍保学责任书", year=2024, deadline=deadline, issue_date=None)
        )
        events = _task_events(celery_app(services.settings))  # what Flower or `celery events` would see
        job, _ = services.campaigns.start_issue(s, bureau, campaign, services.jobs)
        s.commit()
        campaign_id, job_id = campaign.id, job.id
    ended = _wait(profile, job_id, 180)
    assert (ended.status, ended.done, ended.total) == ("done", 12, 12), (ended.error_code, ended.error_message)
    until = time.monotonic() + 20
    while time.monotonic() < until and not {"task-sent", "task-started", "task-succeeded"} <= set(events):
        time.sleep(0.2)
    assert {"task-sent", "task-received", "task-started", "task-succeeded"} <= set(events), events
    with services.db.session() as s:
        slices = s.scalars(select(JobSlice).where(JobSlice.job_id == job_id)).all()
        assert sum(p.total for p in slices) == 12 and all(p.status == "done" for p in slices)
        assignments = s.scalars(select(Assignment).where(Assignment.campaign_id == campaign_id)).all()
        assert len(assignments) == 12 and all(a.document_id for a in assignments)
        done = s.get(Campaign, campaign_id)
        assert done is not None and done.status == "issued"
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "campaign.issue")) == 1
    stored = set(services.archive.documents.keys())
    with services.db.session() as s:
        assert stored == set(s.scalars(select(DocumentVersion.sha256))) | set(s.scalars(select(PrintBundle.sha256)))


def test_a_worker_killed_whole_is_replaced_and_beat_sends_its_work_again(profile: Profile, tmp_path: Path) -> None:
    """The whole worker (main process and pool) dies with the messages it held: a new worker with
    beat finds the slices nobody holds and finishes the batch, issuing nothing twice."""
    count = 150
    roster_id = profile.import_roster(count, seed=13)
    job_id = profile.start_issue(roster_id)
    deadline = time.monotonic() + 180
    while profile.issued(roster_id) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc = profile.workers.proc
    assert proc is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert profile.issued(roster_id) < count, "the batch finished before the worker could be killed"
    # Today's maintenance has run (else beat's first tick starts the daily recheck of every
    # document in this database, which would hold both pool processes for minutes).
    from service.clock import wall_now
    from service.container import SCHEDULES

    with profile.services.db.session() as s:
        for sched in SCHEDULES:
            s.add(Job(kind=sched.kind, params={}, status="done", created_at=wall_now(), finished_at=wall_now()))
        s.commit()
    replacement = CeleryWorkers(profile.env, tmp_path / "worker-2.log", concurrency=2, beat=True, cwd=tmp_path)
    replacement.start()
    profile.workers = replacement  # the module's later tests run on it (the fixture stops it)
    job = _wait(profile, job_id, 240)
    assert job.status == "done", (job.error_code, job.error_message, replacement.log_tail(60))
    _check_roster(profile, roster_id, count, nss_db="", samples=0)


def test_upkeep_does_not_wait_behind_a_batchs_slices(profile: Profile) -> None:
    """Scheduled upkeep goes to its own queue: a job enqueued while a roster's slices fill the
    batch queue runs as soon as a worker finishes the slice in hand, not after the whole batch."""
    from service.campaigns.tasks import OpenPeriods
    from service.jobs.celery_runner import UPKEEP_QUEUE

    services = profile.services
    assert isinstance(services.jobs, CeleryRunner) and OpenPeriods.kind in services.jobs.upkeep_kinds
    roster_id = profile.import_roster(400, seed=23)
    batch = profile.start_issue(roster_id)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (services.jobs.queue_depth() or 0) < 3:
        time.sleep(0.2)  # the batch is cut into slices of 50, two of them running
    assert (services.jobs.queue_depth() or 0) >= 3
    with services.db.session() as s:
        upkeep, _ = services.jobs.enqueue(s, OpenPeriods())
        s.commit()  # sent to the upkeep queue now
        upkeep_id = upkeep.id
    assert _wait(profile, upkeep_id, 120).status == "done"
    with services.db.session() as s:
        waiting = s.scalar(
            select(func.count()).select_from(JobSlice).where(JobSlice.job_id == batch, JobSlice.status == "queued")
        )
    assert profile.job(batch).status == "running" and (waiting or 0) >= 1, waiting
    assert services.jobs.upkeep_queue_depth() == 0 and UPKEEP_QUEUE == "docsign.upkeep"
    ended = _wait(profile, batch, 420)
    assert (ended.status, ended.done) == ("done", 400)
