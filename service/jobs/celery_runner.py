"""The scale-out job runner: the same named jobs as Celery tasks over a broker (Redis).

Chosen by ``DOCSIGN_BROKER_URL``; the embedded runner stays the default. The web process only
creates the job row and, once its transaction commits, sends a task carrying the job's id
(``docsign.job``). A worker (``docsign worker``) runs it:

- a job with a :class:`~service.jobs.registry.Split` (a roster, a campaign) is cut into slices, each a
  ``job_slices`` row with the ids it covers and a task ``docsign.slice`` carrying the slice's id; the
  worker that completes the last slice sends ``docsign.finish`` (print files, the audit entry,
  clearing up what a killed slice stored without recording);
- any other job runs whole as one task.

Every claim is a lease in the database, as with the embedded runner, so a task delivered twice
does its work once; a slice whose worker died (SIGKILL, out of memory) is delivered again at once
(``task_reject_on_worker_lost`` with ``acks_late``) and taken over when its owner's process is gone,
or by any worker once its lease has run out. The slices are idempotent: rows already recorded are
skipped, codes and document rows are unique in the database, and the object store refuses a second
write of a key. Progress is the sum of the slices' counts, written to the job row, so every web
process shows the same bar. Recurring work (the runner's ``Schedule``s) is enqueued by Celery beat
(``docsign.tick``), which also re-sends work whose message or worker was lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import CursorResult, and_, false, func, or_, select, update
from sqlalchemy.orm import Session

from service import logs
from service.clock import wall_now
from service.db.session import Database
from service.errors import DocsignError
from service.jobs.models import ACTIVE, Job, JobSlice
from service.jobs.registry import KINDS, JobContext, JobStopped, kind_for, reporting_outages
from service.jobs.runner import STAGE_STORE_RETRY, RunnerBase, Schedule, create_job
from service.settings import Settings
from service.storage.base import RETRYING_MESSAGE, ArchiveUnavailable
from service.workdir import pid_alive

log = logging.getLogger(__name__)

#: The queue of the work people start (a roster's notices, a campaign, their slices).
QUEUE = "docsign"
#: The queue of upkeep: beat's tick and the scheduled jobs (verification, timestamps, the PKI,
#: notices). A worker takes from both in turn, so upkeep never waits behind a batch's thousands
#: of slices, and a batch loses only the moments upkeep takes; ``docsign worker --queues upkeep``
#: (or ``batch``) gives either its own workers.
UPKEEP_QUEUE = "docsign.upkeep"
#: What ``docsign worker --queues`` names.
QUEUES = {"batch": QUEUE, "upkeep": UPKEEP_QUEUE}
#: The Redis key where a worker notes when it last ran beat's tick (its heartbeat for /readyz).
TICK_KEY = "docsign:last-tick"
#: A queued job whose task has not started after this long is sent again (its message was lost).
RESEND_AFTER = dt.timedelta(minutes=2)
#: Retries of a slice that stopped because the object store stayed away, with growing pauses.
STORE_RETRIES = 8


_apps: dict[tuple[str, int, str], Celery] = {}


def celery_app(settings: Settings) -> Celery:
    """The Celery application of the scale-out profile, configured from the settings alone (one
    per process and configuration: the worker's command and its services share it)."""
    key = (
        settings.broker_url,
        settings.celery_visibility_timeout,
        f"{settings.work_dir}|{settings.celery_tick_seconds}",
    )
    if (app := _apps.get(key)) is None:
        app = _apps[key] = _make_app(settings)
    return app


def _make_app(settings: Settings) -> Celery:
    app = Celery("docsign", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        result_backend=None,
        # A task is acknowledged only when done, and given back when its worker process dies, so
        # a slice whose worker was killed runs again (it is idempotent).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Unacknowledged tasks of a worker that vanished whole go back after this; it must exceed
        # the longest slice, or a slow slice would be delivered twice (harmless, but wasted).
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=settings.celery_task_events,
        task_send_sent_event=settings.celery_task_events,
        beat_schedule={
            "docsign.tick": {
                "task": "docsign.tick",
                "schedule": settings.celery_tick_seconds,
                "options": {"queue": UPKEEP_QUEUE},
            }
        },
        beat_schedule_filename=str(settings.work_dir / "celerybeat-schedule"),
    )
    _register_tasks(app)
    return app


# --- the worker's services ---------------------------------------------------------------------


class WorkerServices(Protocol):
    """What a worker process needs of the services: its runner, and their start and end."""

    @property
    def jobs(self) -> Any: ...

    def prepare(self) -> None: ...

    def close(self) -> None: ...


#: Builds a worker process's services; set by the worker's entry point (the composition root).
_build_services: Callable[[], WorkerServices] | None = None
_worker_services: WorkerServices | None = None
_worker_pid = 0
_worker_lock = threading.Lock()


def serve_with(build: Callable[[], WorkerServices]) -> None:
    """How this worker's processes build their services (once each, after the fork)."""
    global _build_services
    _build_services = build


def worker_settings(settings: Settings) -> Settings:
    """A worker process signs in itself (its siblings are the parallelism), unless the settings
    ask for signing processes explicitly."""
    if "sign_workers" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"sign_workers": 0})


def services_here() -> WorkerServices:
    """This worker process's services (built on its first task, after the fork)."""
    global _worker_services, _worker_pid
    with _worker_lock:
        if _worker_services is None or _worker_pid != os.getpid():
            if _build_services is None:
                raise RuntimeError("the worker's entry point did not say how to build its services (serve_with)")
            _worker_services = _build_services()
            _worker_services.prepare()
            _worker_pid = os.getpid()
        return _worker_services


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _forget_parent_services(**_: Any) -> None:
    global _worker_services
    _worker_services = None  # a forked child builds its own (database connections, soffice)
    # Pool processes are daemonic, and a daemonic process may not start children; ours do (the
    # upload sandbox, signing processes when configured) and stop them on shutdown themselves.
    # The standard library pickles the parent's authentication key into a spawned child, and
    # billiard refuses to pickle its own: give this process a standard one.
    config = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    config["daemon"] = False
    config["authkey"] = multiprocessing.process.AuthenticationString(os.urandom(32))  # type: ignore[attr-defined]


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _close_services(**_: Any) -> None:
    global _worker_services
    if _worker_services is not None and _worker_pid == os.getpid():
        _worker_services.close()
        _worker_services = None


def _runner() -> CeleryRunner:
    runner = services_here().jobs
    assert isinstance(runner, CeleryRunner)
    return runner


def _register_tasks(app: Celery) -> None:
    @app.task(name="docsign.job")  # type: ignore[untyped-decorator]
    def run_job(job_id: int) -> None:
        _runner().run_job(job_id)

    @app.task(name="docsign.slice", bind=True, max_retries=STORE_RETRIES)  # type: ignore[untyped-decorator]
    def run_slice(self: Task[Any, Any], slice_id: int) -> None:
        try:
            _runner().run_slice(slice_id)
        except ArchiveUnavailable as exc:
            # The store stayed away longer than one call's patience: the slice waits in the queue.
            countdown = min(120, 5 * 2**self.request.retries)
            log.warning("slice %s: object store unavailable, again in %ss", slice_id, countdown)
            raise self.retry(exc=exc, countdown=countdown) from exc

    @app.task(name="docsign.finish", bind=True, max_retries=STORE_RETRIES)  # type: ignore[untyped-decorator]
    def finish_job(self: Task[Any, Any], job_id: int) -> None:
        try:
            _runner().run_finish(job_id)
        except ArchiveUnavailable as exc:
            raise self.retry(exc=exc, countdown=min(120, 5 * 2**self.request.retries)) from exc

    @app.task(name="docsign.tick")  # type: ignore[untyped-decorator]
    def tick() -> None:
        runner = _runner()
        runner.mark_tick()
        runner.enqueue_due()
        runner.resend_lost()


# --- the runner ----------------------------------------------------------------------------------


class CeleryRunner(RunnerBase):
    """Jobs as Celery tasks; the same interface as the embedded runner for the faces."""

    def __init__(
        self,
        db: Database,
        app: Celery,
        *,
        lease: dt.timedelta,
        poll: dt.timedelta,
        schedules: Sequence[Schedule] = (),
    ) -> None:
        self.db = db
        self.app = app
        self.lease = lease
        self.poll = poll
        self.schedules = list(schedules)
        #: Jobs of these kinds are upkeep, sent to UPKEEP_QUEUE.
        self.upkeep_kinds = frozenset(sched.kind for sched in self.schedules)
        self.host = socket.gethostname()[:40]
        self._token = secrets.token_hex(4)
        self._stopping = threading.Event()

    @property
    def owner(self) -> str:
        # per process: a forked worker child is a different owner from its parent
        return f"{self.host}:{os.getpid()}:{self._token}"

    # --- the faces' side ----------------------------------------------------------------------

    def _announce(self, job_id: int) -> None:
        # The task is sent once the job row is visible to the workers.
        with self.db.session() as s:
            kind = s.scalar(select(Job.kind).where(Job.id == job_id))
        self.send_job(job_id, kind)

    def send_job(self, job_id: int, kind: str | None) -> None:
        """A whole job's task: upkeep to its own queue, the rest with the batches."""
        self.send("docsign.job", job_id, UPKEEP_QUEUE if kind in self.upkeep_kinds else QUEUE)

    def send(self, task: str, ident: int, queue: str = QUEUE) -> None:
        try:
            self.app.send_task(task, args=[ident], queue=queue)
        except Exception:  # the broker is away: beat's tick sends it again (RESEND_AFTER)
            log.exception("sending %s(%s)", task, ident)

    def start(self) -> None:
        """Nothing runs in a web process: the workers do the work."""

    def shutdown(self) -> None:
        self._stopping.set()

    def wait(self, job_id: int, timeout: float | None = None) -> bool:
        """Until the job has ended (tests and the command line); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.db.session() as s:
                status = s.scalar(select(Job.status).where(Job.id == job_id))
            if status not in ACTIVE:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(min(0.5, self.poll.total_seconds()))

    def run_here(self, job_id: int, listener: Callable[[int, int, str | None], None] | None = None) -> Job:
        """The command line's ``run_here``: in this profile the workers run the job; this follows
        it to its end, telling ``listener`` the progress read from the database."""
        while True:
            with self.db.session() as s:
                job = s.get(Job, job_id)
                assert job is not None
                if listener is not None:
                    listener(job.done, job.total, job.stage)
                if job.status not in ACTIVE:
                    s.expunge(job)
                    return job
            time.sleep(0.5)

    # --- leases -------------------------------------------------------------------------------

    def _dead_here(self, owner_column: Any, s: Session) -> Any:
        """Lease owners on this machine whose process is gone: they need not wait for the lease."""
        prefix = f"{self.host}:"
        owners = {
            o
            for o in s.scalars(select(owner_column).where(owner_column.startswith(prefix)).distinct())
            if o is not None and o.split(":")[1].isdigit()
        }
        dead = [o for o in owners if not pid_alive(int(o.split(":")[1]))]
        return owner_column.in_(dead) if dead else false()

    def _take_job(self, s: Session, job_id: int, *, whole: bool) -> bool:
        """The job's lease: a queued job, or a running one whose holder is gone (``whole``: run as one
        task; otherwise to plan or finish a split job, whose slices hold no job lease)."""
        now = wall_now()
        free = or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now, self._dead_here(Job.lease_owner, s))
        if not whole:
            free = or_(free, Job.lease_owner.is_(None))
        taken = cast(
            CursorResult[Any],
            s.execute(
                update(Job)
                .where(Job.id == job_id, or_(Job.status == "queued", and_(Job.status == "running", free)))
                .values(
                    status="running",
                    lease_owner=self.owner,
                    lease_expires_at=now + self.lease,
                    attempts=Job.attempts + 1,
                    started_at=func.coalesce(Job.started_at, now),
                )
                .execution_options(synchronize_session=False)
            ),
        ).rowcount
        s.commit()
        return bool(taken)

    def _renew_job(self, job_id: int) -> None:
        if self._stopping.is_set():
            raise JobStopped()
        with self.db.session() as s:
            held = cast(
                CursorResult[Any],
                s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.lease_owner == self.owner, Job.status == "running")
                    .values(lease_expires_at=wall_now() + self.lease)
                ),
            ).rowcount
            s.commit()
        if not held:
            log.warning("job %s: lease lost to another process; stopping here", job_id)
            raise JobStopped()

    @contextmanager
    def _renewing(self, renew: Callable[[], None]) -> Iterator[None]:
        """Renew a lease in the background while a long step runs without checkpoints."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                try:
                    renew()
                except JobStopped:
                    return
                except Exception as exc:
                    log.warning("lease renewal: %s", exc)

        t = threading.Thread(target=loop, name="docsign-lease", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()

    def _end_job(self, job_id: int, status: str, code: str | None = None, message: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "lease_owner": None, "lease_expires_at": None}
        if status == "queued":
            values["stage"] = "queued"
        else:
            values.update(finished_at=wall_now(), active_key=None, error_code=code, error_message=message)
            if status == "done":
                values["done"] = Job.total
                values["stage"] = "done"
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE)).values(**values))
            s.commit()

    def _outage_reporter(self, job_id: int) -> Callable[[int, Exception], None]:
        def report(attempt: int, error: Exception) -> None:
            log.warning("job %s: object store unavailable (attempt %s): %s", job_id, attempt, error)
            with self.db.session() as s:
                s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "running")
                    .values(stage=STAGE_STORE_RETRY, error_message=RETRYING_MESSAGE)
                )
                s.commit()

        return report

    def _context_for(self, s: Session, job_id: int) -> JobContext[Any]:
        assert self._context is not None, "runner not bound to the services"
        logs.job_id.set(job_id)  # this task's log lines name the job
        return self._context(s, job_id)

    # --- the worker's side --------------------------------------------------------------------

    def run_job(self, job_id: int) -> None:
        """``docsign.job``: cut a split job into slices and send them, or run a job whole."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.status not in ACTIVE:
                return
            kind, params = job.kind, dict(job.params)
            spec = KINDS.get(kind)  # an unknown kind fails when it runs whole, and is recorded so
            split = spec.split if spec is not None else None
            planned = split is not None and bool(
                s.scalar(select(func.count()).select_from(JobSlice).where(JobSlice.job_id == job_id))
            )
            if not self._take_job(s, job_id, whole=split is None or not planned):
                return  # another worker has it (a duplicate delivery)
            if split is not None and not planned:
                ctx = self._context_for(s, job_id)
                try:
                    assert spec is not None
                    parts = split.plan(ctx, spec.parse(params))
                except DocsignError as exc:
                    s.rollback()
                    self._end_job(job_id, "failed", exc.code, exc.message)
                    return
                except Exception as exc:
                    log.exception("job %s: planning its slices failed", job_id)
                    s.rollback()
                    self._end_job(
                        job_id,
                        "failed",
                        "INTERNAL_ERROR",
                        f"任务意外失败（{type(exc).__name__}），请联系管理员查看日志。",
                    )
                    return
                if parts:
                    for n, part in enumerate(parts):
                        s.add(JobSlice(job_id=job_id, number=n, params=part, total=_size(part)))
                    s.execute(
                        update(Job)
                        .where(Job.id == job_id)
                        .values(total=sum(_size(p) for p in parts), done=0, stage="issue", lease_owner=None)
                    )
                    s.commit()
                    planned = True
            if planned:
                s.execute(update(Job).where(Job.id == job_id, Job.lease_owner == self.owner).values(lease_owner=None))
                s.commit()
                pending = s.scalars(
                    select(JobSlice.id)
                    .where(JobSlice.job_id == job_id, JobSlice.status != "done")
                    .order_by(JobSlice.number)
                ).all()
                for slice_id in pending:
                    self.send("docsign.slice", slice_id)
                if not pending:
                    self.send("docsign.finish", job_id)
                return
        self._run_whole(job_id, kind, params)

    def _run_whole(self, job_id: int, kind: str, params: dict[str, Any]) -> None:
        outcome: tuple[str, str | None, str | None] = ("done", None, None)
        try:
            with self.db.session() as s, self._renewing(lambda: self._renew_job(job_id)):
                job = s.get(Job, job_id)
                assert job is not None
                if job.attempts > 1 and self._on_takeover is not None:
                    self._on_takeover(s, job_id)
                s.commit()
                ctx = self._context_for(s, job_id)
                ctx.report = lambda done, total, stage: self._report_job(job_id, done, total, stage)
                ctx.heartbeat = lambda: self._renew_job(job_id)
                with reporting_outages(self._outage_reporter(job_id)):
                    kind_for(kind).execute(ctx, params)
                s.commit()
        except JobStopped:
            outcome = ("queued", None, None)
        except DocsignError as exc:
            outcome = ("failed", exc.code, exc.message)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            outcome = ("failed", "INTERNAL_ERROR", f"任务意外失败（{type(exc).__name__}），请联系管理员查看日志。")
        self._end_job(job_id, *outcome)
        if outcome[0] == "queued":
            self.send_job(job_id, kind)

    def _report_job(self, job_id: int, done: int, total: int, stage: str | None) -> None:
        with self.db.session() as s:
            values: dict[str, Any] = {"done": done, "total": total, "error_message": None}
            if stage:
                values["stage"] = stage[:32]
            s.execute(update(Job).where(Job.id == job_id, Job.lease_owner == self.owner).values(**values))
            s.commit()

    def _take_slice(self, s: Session, slice_id: int) -> bool:
        now = wall_now()
        live_job = select(Job.id).where(Job.status == "running")
        free = or_(JobSlice.lease_expires_at < now, self._dead_here(JobSlice.lease_owner, s))
        taken = cast(
            CursorResult[Any],
            s.execute(
                update(JobSlice)
                .where(
                    JobSlice.id == slice_id,
                    JobSlice.job_id.in_(live_job),
                    or_(JobSlice.status == "queued", and_(JobSlice.status == "running", free)),
                )
                .values(
                    status="running",
                    lease_owner=self.owner,
                    lease_expires_at=now + self.lease,
                    attempts=JobSlice.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            ),
        ).rowcount
        s.commit()
        return bool(taken)

    def _slice_heartbeat(self, slice_id: int, job_id: int) -> None:
        """Renew the slice's lease (and the job's, so recovery sees it alive); stop when the job
        ended elsewhere (a slice failed) or this worker shuts down."""
        if self._stopping.is_set():
            raise JobStopped()
        now = wall_now()
        with self.db.session() as s:
            held = cast(
                CursorResult[Any],
                s.execute(
                    update(JobSlice)
                    .where(JobSlice.id == slice_id, JobSlice.lease_owner == self.owner, JobSlice.status == "running")
                    .values(lease_expires_at=now + self.lease)
                ),
            ).rowcount
            s.execute(
                update(Job).where(Job.id == job_id, Job.status == "running").values(lease_expires_at=now + self.lease)
            )
            running = s.scalar(select(Job.status).where(Job.id == job_id)) == "running"
            s.commit()
        if not held or not running:
            raise JobStopped()

    def _report_slice(self, slice_id: int, job_id: int, done: int, total: int) -> None:
        now = wall_now()
        with self.db.session() as s:
            s.execute(
                update(JobSlice)
                .where(JobSlice.id == slice_id, JobSlice.lease_owner == self.owner)
                .values(done=done, total=total, lease_expires_at=now + self.lease)
            )
            self._sum_progress(s, job_id, now)
            s.commit()

    def _sum_progress(self, s: Session, job_id: int, now: dt.datetime) -> None:
        summed = select(func.coalesce(func.sum(JobSlice.done), 0)).where(JobSlice.job_id == job_id).scalar_subquery()
        s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running")
            .values(done=summed, stage="issue", error_message=None, lease_expires_at=now + self.lease)
        )

    def run_slice(self, slice_id: int) -> None:
        """``docsign.slice``: one slice of a split job, then the job's finish if it was the last."""
        with self.db.session() as s:
            part = s.get(JobSlice, slice_id)
            if part is None or part.status in ("done", "failed"):
                return
            if not self._take_slice(s, slice_id):
                return  # done, or held by a live worker (a duplicate delivery)
            s.refresh(part)
            job = s.get(Job, part.job_id)
            assert job is not None
            job_id, kind, params, slice_params = job.id, job.kind, dict(job.params), dict(part.params)
        spec = kind_for(kind)
        split = spec.split
        assert split is not None
        try:
            with self.db.session() as s:
                ctx = self._context_for(s, job_id)
                ctx.report = lambda done, total, stage: self._report_slice(slice_id, job_id, done, total)
                ctx.heartbeat = lambda: self._slice_heartbeat(slice_id, job_id)
                with reporting_outages(self._outage_reporter(job_id)):
                    split.run(ctx, spec.parse(params), slice_params)
                s.commit()
        except JobStopped:
            self._end_slice(slice_id, "queued")
            with self.db.session() as s:
                if s.scalar(select(Job.status).where(Job.id == job_id)) == "running":
                    self.send("docsign.slice", slice_id)  # this worker is stopping: another one goes on
            return
        except ArchiveUnavailable:
            self._end_slice(slice_id, "queued")
            raise
        except DocsignError as exc:
            self._end_slice(slice_id, "failed")
            self._end_job(job_id, "failed", exc.code, exc.message)
            return
        except Exception as exc:
            log.exception("job %s slice %s failed", job_id, slice_id)
            self._end_slice(slice_id, "failed")
            self._end_job(
                job_id, "failed", "INTERNAL_ERROR", f"任务意外失败（{type(exc).__name__}），请联系管理员查看日志。"
            )
            return
        with self.db.session() as s:
            s.execute(update(JobSlice).where(JobSlice.id == slice_id).values(done=JobSlice.total))
            s.commit()
        self._end_slice(slice_id, "done")
        with self.db.session() as s:
            self._sum_progress(s, job_id, wall_now())
            left = s.scalar(
                select(func.count()).select_from(JobSlice).where(JobSlice.job_id == job_id, JobSlice.status != "done")
            )
            s.commit()
        if not left:
            self.send("docsign.finish", job_id)

    def _end_slice(self, slice_id: int, status: str) -> None:
        values: dict[str, Any] = {"status": status, "lease_owner": None, "lease_expires_at": None}
        if status != "queued":
            values["finished_at"] = wall_now()
        with self.db.session() as s:
            s.execute(
                update(JobSlice)
                .where(JobSlice.id == slice_id, JobSlice.lease_owner == self.owner, JobSlice.status == "running")
                .values(**values)
            )
            s.commit()

    def run_finish(self, job_id: int) -> None:
        """``docsign.finish``: after the last slice; clears up what killed slices stored without
        recording it, then the job's own last step (print files)."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.status != "running":
                return
            left = s.scalar(
                select(func.count()).select_from(JobSlice).where(JobSlice.job_id == job_id, JobSlice.status != "done")
            )
            if left or not self._take_job(s, job_id, whole=False):
                return
            kind, params = job.kind, dict(job.params)
        spec = kind_for(kind)
        split = spec.split
        assert split is not None
        outcome: tuple[str, str | None, str | None] = ("done", None, None)
        try:
            with self.db.session() as s, self._renewing(lambda: self._renew_job(job_id)):
                if self._on_takeover is not None:
                    self._on_takeover(s, job_id)  # no slice runs now: every journaled write not recorded is an orphan
                s.commit()
                ctx = self._context_for(s, job_id)
                ctx.report = lambda done, total, stage: None
                ctx.heartbeat = lambda: self._renew_job(job_id)
                with reporting_outages(self._outage_reporter(job_id)):
                    s.execute(update(Job).where(Job.id == job_id).values(stage="print"))
                    split.finish(ctx, spec.parse(params))
                s.commit()
        except JobStopped:
            outcome = ("running", None, None)
        except ArchiveUnavailable:
            self._release(job_id)
            raise
        except DocsignError as exc:
            outcome = ("failed", exc.code, exc.message)
        except Exception as exc:
            log.exception("job %s finish failed", job_id)
            outcome = ("failed", "INTERNAL_ERROR", f"任务意外失败（{type(exc).__name__}），请联系管理员查看日志。")
        if outcome[0] == "running":
            self._release(job_id)
            self.send("docsign.finish", job_id)
            return
        self._end_job(job_id, *outcome)

    def _release(self, job_id: int) -> None:
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
            s.commit()

    # --- beat ---------------------------------------------------------------------------------

    def enqueue_due(self) -> list[int]:
        """Enqueue (and send) every scheduled kind whose last run is older than its interval."""
        started: list[int] = []
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
        for job_id in started:
            self.send("docsign.job", job_id, UPKEEP_QUEUE)
        return started

    def resend_lost(self) -> int:
        """Send again what no worker holds: queued jobs whose message was lost, jobs and slices
        whose worker vanished (their lease ran out), split jobs whose slices are all done but
        whose finish was lost. Duplicates are harmless: every task claims its lease first."""
        now = wall_now()
        sent = 0
        with self.db.session() as s:
            for job_id, kind in s.execute(
                select(Job.id, Job.kind).where(Job.status == "queued", Job.created_at < now - RESEND_AFTER)
            ):
                self.send_job(job_id, kind)
                sent += 1
            for job_id, kind in s.execute(
                select(Job.id, Job.kind).where(
                    Job.status == "running", Job.lease_expires_at < now, Job.lease_owner.is_not(None)
                )
            ):
                self.send_job(job_id, kind)
                sent += 1
            for slice_id in s.scalars(
                select(JobSlice.id).where(
                    JobSlice.status == "running",
                    or_(JobSlice.lease_expires_at < now, self._dead_here(JobSlice.lease_owner, s)),
                )
            ):
                self.send("docsign.slice", slice_id)
                sent += 1
            if self._queue_empty():
                # Nothing waits in the broker, yet slices are queued: their messages went with a
                # worker that vanished whole (or the broker lost them). Send them again.
                for slice_id in s.scalars(
                    select(JobSlice.id)
                    .join(Job, Job.id == JobSlice.job_id)
                    .where(JobSlice.status == "queued", Job.status == "running")
                ):
                    self.send("docsign.slice", slice_id)
                    sent += 1
            unfinished = select(JobSlice.job_id).where(JobSlice.status != "done")
            for job_id in s.scalars(
                select(Job.id).where(
                    Job.status == "running",
                    Job.lease_owner.is_(None),
                    Job.id.in_(select(JobSlice.job_id)),
                    Job.id.not_in(unfinished),
                    or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now),
                )
            ):
                self.send("docsign.finish", job_id)
                sent += 1
        return sent

    # --- what /readyz and /metrics ask -----------------------------------------------------------

    def _redis(self) -> Any:
        """The broker's Redis (the one broker this profile runs on)."""
        import redis

        return redis.Redis.from_url(self.app.conf.broker_url, socket_timeout=2, socket_connect_timeout=2)

    def mark_tick(self) -> None:
        """A worker ran beat's tick now: what readiness reads as "a worker is alive"."""
        self._redis().set(TICK_KEY, str(time.time()))

    def broker_problem(self) -> str | None:
        try:
            self._redis().ping()
        except Exception as exc:
            return f"无法连接消息队列（{type(exc).__name__}）：请检查 Redis 是否在运行、DOCSIGN_BROKER_URL 是否正确。"
        return None

    def last_tick_age(self) -> float | None:
        """Seconds since a worker last ran beat's tick (infinite if never); None if unreadable."""
        try:
            last = self._redis().get(TICK_KEY)
        except Exception:
            return None
        return time.time() - float(last) if last else float("inf")

    def worker_problem(self) -> str | None:
        """None if a worker ran beat's tick lately (the tick comes every ``celery_tick_seconds``)."""
        age = self.last_tick_age()
        if age is None:
            return "无法读取后台工作进程的状态（消息队列不可用）。"
        if age == float("inf"):
            age = None
        limit = max(3 * float(self.app.conf.beat_schedule["docsign.tick"]["schedule"]), 60.0)
        if age is None or age > limit:
            when = f"最近一次在 {age:.0f} 秒前" if age is not None else "从未运行"
            return f"没有后台工作进程在运行（定时任务{when}）：请启动 docsign worker（集群中一个进程带 --beat）。"
        return None

    def queue_depth(self) -> int | None:
        """Messages waiting in the broker's batch queue (None if it cannot be read)."""
        return self._length(QUEUE)

    def upkeep_queue_depth(self) -> int | None:
        return self._length(UPKEEP_QUEUE)

    def _length(self, queue: str) -> int | None:
        try:
            return int(self._redis().llen(queue))
        except Exception:
            return None

    def _queue_empty(self) -> bool:
        """Whether no message waits in the broker's queue. A queue the broker does not know is
        empty: Redis deletes a list once its last item is taken (and a restart without persistence
        loses it), which kombu answers with NOT_FOUND."""
        try:
            with self.app.connection_or_acquire() as conn:
                declared = conn.default_channel.queue_declare(QUEUE, passive=True)
                return int(declared.message_count) == 0
        except Exception as exc:
            if _not_found(exc):
                return True
            log.warning("reading the queue's length: %s", exc)  # not known: send nothing twice
            return False


def _not_found(exc: BaseException) -> bool:
    """A passive declare of a queue that does not exist: kombu's virtual transports (Redis) raise
    ``ChannelError('NOT_FOUND - no queue …', …, '404')`` (reply code '404'), AMQP a ``NotFound``
    with reply code 404."""
    return str(getattr(exc, "reply_code", "")) == "404"


def _size(part: dict[str, Any]) -> int:
    """Documents in a slice: the length of its one list of ids."""
    return sum(len(v) for v in part.values() if isinstance(v, list))
