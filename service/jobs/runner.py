"""Runs named jobs and keeps their progress and leases in the database.

:class:`JobRunner` is the interface the faces use (``enqueue``); :class:`EmbeddedRunner` runs jobs
in a thread pool inside the server process (the embedded profile). A job is claimed by taking its
lease (an atomic update of the job row); the runner renews the lease while the job works, so any
process sharing the database takes over a job only once its lease has expired: two servers on one
database never steal each other's work, and a job whose process was killed resumes by itself.

Leases run on the wall clock, not on the service's business clock: they measure whether a process
is alive, and tests that move business time forward must not expire them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, and_, event, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from service import logs
from service.clock import wall_now
from service.db.session import Database
from service.errors import DocsignError
from service.jobs.models import ACTIVE, Job
from service.jobs.registry import JobContext, JobParams, JobStopped, kind_for, reporting_outages, stored
from service.storage.base import RETRYING_MESSAGE
from service.workdir import pid_alive

log = logging.getLogger(__name__)

#: Stage shown on a running job while the object store does not answer (its message says so).
STAGE_STORE_RETRY = "store_retry"


class JobBusy(DocsignError):
    code = "JOB_BUSY"
    http_status = 409
    default_message = "这项工作正由另一个进程执行，请等它结束后再试。"


class JobFailed(DocsignError):
    code = "JOB_FAILED"
    http_status = 500
    default_message = "后台任务失败。"


@dataclass(frozen=True)
class Schedule:
    """A job every runner enqueues when the last of its kind is older than ``every`` (across every
    process sharing the database: the job's active key keeps it to one at a time)."""

    params: JobParams
    every: dt.timedelta

    @property
    def kind(self) -> str:
        return self.params.kind


class JobRunner(Protocol):
    def enqueue(
        self,
        session: Session,
        params: JobParams,
        *,
        unit_id: int | None = None,
        user_id: int | None = None,
        active_key: str | None = None,
    ) -> tuple[Job, bool]:
        """A new job of ``params.kind`` (started once the caller commits), or the one already doing
        the same work (same ``active_key``); True when new."""

    def start(self) -> None: ...

    def shutdown(self) -> None: ...


def create_job(
    session: Session,
    params: JobParams,
    *,
    unit_id: int | None,
    user_id: int | None,
    active_key: str | None,
    now: dt.datetime,
) -> tuple[Job, bool]:
    kind = kind_for(params.kind).name  # an unknown kind is refused here, not by the worker later
    if active_key is not None:
        running = session.scalar(select(Job).where(Job.active_key == active_key))
        if running is not None:
            return running, False
    job = Job(
        kind=kind, params=stored(params), unit_id=unit_id, created_by_id=user_id, created_at=now, active_key=active_key
    )
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:  # another request started the same work a moment ago
        running = session.scalar(select(Job).where(Job.active_key == active_key))
        assert running is not None
        return running, False
    return job, True


class RunnerBase:
    """What both runners share: how a job's context is built, and a job enqueued as a row that
    is announced (to this process's pool, or to the broker) once the caller commits."""

    _context: Callable[[Session, int], JobContext[Any]] | None = None

    def queue_depth(self) -> int | None:
        """Messages waiting in a broker's queue; None where there is no broker (the embedded runner
        takes jobs from the database)."""
        return None

    def upkeep_queue_depth(self) -> int | None:
        """Messages waiting in the broker's upkeep queue (beat's tick, scheduled jobs); None
        where there is no broker."""
        return None

    def last_tick_age(self) -> float | None:
        """Seconds since a worker last ran beat's tick; None where there are no workers apart."""
        return None

    _on_takeover: Callable[[Session, int], object] | None = None

    def bind(
        self,
        context: Callable[[Session, int], JobContext[Any]],
        on_takeover: Callable[[Session, int], object] | None = None,
    ) -> None:
        """How to build a job's context, and what to clear up before resuming a job whose previous
        run died (the service container calls this once)."""
        self._context = context
        self._on_takeover = on_takeover

    def enqueue(
        self,
        session: Session,
        params: JobParams,
        *,
        unit_id: int | None = None,
        user_id: int | None = None,
        active_key: str | None = None,
    ) -> tuple[Job, bool]:
        job, new = create_job(session, params, unit_id=unit_id, user_id=user_id, active_key=active_key, now=wall_now())
        if new:
            job_id = job.id
            event.listen(session, "after_commit", lambda _s: self._announce(job_id), once=True)
        return job, new

    def _announce(self, job_id: int) -> None:
        raise NotImplementedError


class EmbeddedRunner(RunnerBase):
    """Jobs in a thread pool of this process, claimed from the database by lease."""

    def __init__(
        self,
        db: Database,
        *,
        workers: int,
        lease: dt.timedelta,
        poll: dt.timedelta,
        schedules: Sequence[Schedule] = (),
    ) -> None:
        self.db = db
        self.workers = workers
        self.lease = lease
        self.poll = poll
        self.schedules = list(schedules)
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._local_owners: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docsign-job")
        self._running: dict[int, Future[None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._finished: dict[int, threading.Event] = {}
        self._listeners: dict[int, Callable[[int, int, str | None], None]] = {}

    def _announce(self, job_id: int) -> None:
        # Look for work as soon as the caller's transaction makes the job visible.
        self._wake.set()

    def start(self) -> None:
        if self._poller is None:
            self._poller = threading.Thread(target=self._loop, name="docsign-job-poller", daemon=True)
            self._poller.start()

    def shutdown(self) -> None:
        """Stop taking work; running jobs stop at their next checkpoint and go back to the queue."""
        self._stopping.set()
        self._wake.set()
        if self._poller is not None:
            self._poller.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run_here(self, job_id: int, listener: Callable[[int, int, str | None], None] | None = None) -> Job:
        """Claim a queued job and run it in this thread (the command line), renewing its lease
        meanwhile; returns the job as it ended."""
        with self.db.session() as s:
            self._refresh_local_owners(s)
            taken = self._take(s, job_id, wall_now())
            s.commit()
        if not taken:
            raise JobBusy()
        if listener is not None:
            self._listeners[job_id] = listener
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                try:
                    self._renew([job_id])
                except OperationalError as exc:
                    log.warning("lease renewal: %s", exc)

        renewer = threading.Thread(target=renew, name="docsign-job-lease", daemon=True)
        renewer.start()
        try:
            self._run(job_id)
        finally:
            stop.set()
            renewer.join()
            self._listeners.pop(job_id, None)
        with self.db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            s.expunge(job)
            return job

    def wait(self, job_id: int, timeout: float | None = None) -> bool:
        """Until this runner has finished ``job_id`` (tests and the command line); False on timeout."""
        with self._lock:
            done = self._finished.setdefault(job_id, threading.Event())
        self._wake.set()
        return done.wait(timeout)

    # --- claiming -------------------------------------------------------------------------------

    def _claimable(self, now: dt.datetime) -> Any:
        expired = or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now)
        dead = self._dead_owners_here()
        dead_here = Job.lease_owner.in_(dead) if dead else false()
        return or_(Job.status == "queued", and_(Job.status == "running", or_(expired, dead_here)))

    def _dead_owners_here(self) -> list[str]:
        """Lease owners on this machine whose process has died: their leases need not run out."""
        return [owner for owner in self._local_owners if not pid_alive(int(owner.split(":")[1]))]

    def _refresh_local_owners(self, s: Session) -> None:
        prefix = self.owner.rsplit(":", 2)[0] + ":"
        self._local_owners = [
            o
            for o in s.scalars(
                select(Job.lease_owner).where(Job.status == "running", Job.lease_owner.startswith(prefix)).distinct()
            )
            if o is not None and o != self.owner and o.split(":")[1].isdigit()
        ]

    def claim(self) -> list[int]:
        """Take the lease of as many claimable jobs as this runner has free workers."""
        with self._lock:
            free = self.workers - len(self._running)
        if free <= 0 or self._stopping.is_set():
            return []
        now = wall_now()
        with self.db.session() as s:
            self._refresh_local_owners(s)
            ids = s.scalars(select(Job.id).where(self._claimable(now)).order_by(Job.id).limit(free)).all()
            claimed = [job_id for job_id in ids if self._take(s, job_id, now)]
            s.commit()
        for job_id in claimed:
            with self._lock:
                self._running[job_id] = self._pool.submit(self._run, job_id)
        return claimed

    def _take(self, s: Session, job_id: int, now: dt.datetime) -> bool:
        """Take the lease of one claimable job (an atomic update: one process wins)."""
        taken = cast(
            CursorResult[Any],
            s.execute(
                update(Job)
                .where(Job.id == job_id, self._claimable(now))
                .values(
                    status="running",
                    lease_owner=self.owner,
                    lease_expires_at=now + self.lease,
                    attempts=Job.attempts + 1,
                    started_at=func.coalesce(Job.started_at, now),
                )
            ),
        ).rowcount
        return bool(taken)

    def _renew(self, job_ids: Sequence[int]) -> set[int]:
        """Extend the leases this runner holds; returns the jobs whose lease it still holds."""
        if not job_ids:
            return set()
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(Job.id.in_(job_ids), Job.lease_owner == self.owner, Job.status == "running")
                .values(lease_expires_at=wall_now() + self.lease)
            )
            held = set(s.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.lease_owner == self.owner)))
            s.commit()
        return held

    def _heartbeat(self, job_id: int) -> None:
        if self._stopping.is_set():
            raise JobStopped()
        if job_id not in self._renew([job_id]):
            log.warning("job %s: lease lost to another process; stopping here", job_id)
            raise JobStopped()

    def _report(self, job_id: int, done: int, total: int, stage: str | None) -> None:
        if (listener := self._listeners.get(job_id)) is not None:
            listener(done, total, stage)
        with self.db.session() as s:
            values: dict[str, Any] = {
                "done": done,
                "total": total,
                "lease_expires_at": wall_now() + self.lease,
                "error_message": None,  # an outage reported meanwhile is over
            }
            if stage:
                values["stage"] = stage[:32]
            s.execute(update(Job).where(Job.id == job_id, Job.lease_owner == self.owner).values(**values))
            s.commit()

    def _outage(self, job_id: int, attempt: int, error: Exception) -> None:
        """The object store does not answer: the job says so until its next progress report."""
        log.warning("job %s: object store unavailable (attempt %s): %s", job_id, attempt, error)
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == self.owner)
                .values(stage=STAGE_STORE_RETRY, error_message=RETRYING_MESSAGE)
            )
            s.commit()

    # --- running ----------------------------------------------------------------------------------

    def _run(self, job_id: int) -> None:
        assert self._context is not None, "runner not bound to the services"
        outcome: tuple[str, str | None, str | None] = ("done", None, None)
        logged = logs.job_id.set(job_id)  # this thread's log lines name the job while it runs
        try:
            with self.db.session() as s:
                job = s.get(Job, job_id)
                assert job is not None
                kind, params = job.kind, dict(job.params)
                if job.attempts > 1 and self._on_takeover is not None:
                    self._on_takeover(s, job_id)  # what the run that died had half done
                s.commit()
                ctx = self._context(s, job_id)
                ctx.report = lambda done, total, stage: self._report(job_id, done, total, stage)
                ctx.heartbeat = lambda: self._heartbeat(job_id)
                with reporting_outages(lambda attempt, error: self._outage(job_id, attempt, error)):
                    kind_for(kind).execute(ctx, params)
                s.commit()
        except JobStopped:
            outcome = ("queued", None, None)
        except DocsignError as exc:
            outcome = ("failed", exc.code, exc.message)
        except Exception as exc:  # a job always ends in a recorded state; the cause goes to the log
            log.exception("job %s failed", job_id)
            outcome = ("failed", "INTERNAL_ERROR", f"任务意外失败（{type(exc).__name__}），请联系管理员查看日志。")
        finally:
            try:
                self._finish(job_id, *outcome)
            finally:
                with self._lock:
                    self._running.pop(job_id, None)
                    done = self._finished.setdefault(job_id, threading.Event())
                done.set()
                self._wake.set()
                logs.job_id.reset(logged)

    def _finish(self, job_id: int, status: str, code: str | None, message: str | None) -> None:
        values: dict[str, Any] = {"status": status, "lease_owner": None, "lease_expires_at": None}
        if status == "queued":  # handed back: another runner (or this one after a restart) resumes it
            values["stage"] = "queued"
        else:
            values.update(finished_at=wall_now(), active_key=None, error_code=code, error_message=message)
            if status == "done":
                values["done"] = Job.total
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id, Job.lease_owner == self.owner).values(**values))
            s.commit()

    # --- the poller -------------------------------------------------------------------------------

    def _loop(self) -> None:
        renew_every = self.lease.total_seconds() / 3
        last_renew = 0.0

        while not self._stopping.is_set():
            try:
                self.enqueue_due()
                self.claim()
                if time.monotonic() - last_renew >= renew_every:
                    with self._lock:
                        mine = list(self._running)
                    self._renew(mine)
                    last_renew = time.monotonic()
            except OperationalError as exc:  # a busy or restarting database: try again next round
                log.warning("job poller: %s", exc)
            except Exception:
                log.exception("job poller")
            self._wake.wait(self.poll.total_seconds())
            self._wake.clear()

    def enqueue_due(self) -> list[int]:
        """Enqueue every scheduled kind whose last run is older than its interval."""
        started: list[int] = []
        if not self.schedules:
            return started
        now = wall_now()
        with self.db.session() as s:
            for sched in self.schedules:
                last = s.scalar(select(func.max(Job.created_at)).where(Job.kind == sched.kind))
                if last is not None and now - last < sched.every:
                    continue
                job, new = create_job(
                    s,
                    sched.params,
                    unit_id=None,
                    user_id=None,
                    active_key=f"schedule:{sched.kind}",
                    now=now,
                )
                if new:
                    started.append(job.id)
            s.commit()
        return started


def active_jobs(session: Session) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.status.in_(ACTIVE)).order_by(Job.id)))
