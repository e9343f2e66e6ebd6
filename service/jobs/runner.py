"""Runs jobs in the background and keeps their progress in the database.

The embedded profile runs them in a thread pool inside the server; the interface (submit a job id
and a function of a database session) is what a Celery worker would implement for scale-out.
A job's function gets its own session and reports progress through :class:`JobProgress`, which
writes in a separate short transaction so a page polling the job sees it move.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.session import Database
from service.errors import DocsignError
from service.jobs.models import Job

log = logging.getLogger(__name__)

JobFunction = Callable[[Session, "JobProgress"], None]


class JobProgress:
    def __init__(self, db: Database, job_id: int) -> None:
        self.db = db
        self.job_id = job_id

    def __call__(self, done: int, total: int, stage: str | None = None) -> None:
        with self.db.session() as s:
            job = s.get(Job, self.job_id)
            if job is not None:
                job.done, job.total = done, total
                if stage:
                    job.stage = stage
                s.commit()


class JobRunner:
    def __init__(self, db: Database, workers: int, now: Callable[[], dt.datetime]) -> None:
        self.db = db
        self.now = now
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docsign-job")
        self.futures: dict[int, Future[None]] = {}

    def create(
        self,
        session: Session,
        kind: str,
        params: dict[str, Any],
        unit_id: int | None,
        user_id: int | None,
        active_key: str | None = None,
    ) -> tuple[Job, bool]:
        """A new job, or the one already doing the same work (same ``active_key``); True when new."""
        if active_key is not None:
            running = session.scalar(select(Job).where(Job.active_key == active_key))
            if running is not None:
                return running, False
        job = Job(
            kind=kind,
            params=params,
            unit_id=unit_id,
            created_by_id=user_id,
            created_at=self.now(),
            active_key=active_key,
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

    def recover(self, session: Session) -> int:
        """Jobs a stopped server left queued or running end as failed, so they can be started again."""
        stale = list(session.scalars(select(Job).where(Job.status.in_(["queued", "running"]))))
        for job in stale:
            job.status, job.finished_at, job.active_key = "failed", self.now(), None
            job.error_code = "JOB_INTERRUPTED"
            job.error_message = "服务重启，任务被中断。请重新执行：已完成的部分不会重复。"
        return len(stale)

    def submit(self, job_id: int, fn: JobFunction) -> None:
        self.futures[job_id] = self._pool.submit(self._run, job_id, fn)

    def _run(self, job_id: int, fn: JobFunction) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.status, job.started_at = "running", self.now()
            s.commit()
        try:
            with self.db.session() as s:
                fn(s, JobProgress(self.db, job_id))
                s.commit()
        except DocsignError as exc:
            self._finish(job_id, "failed", exc.code, exc.message)
        except Exception as exc:  # a job must always end in a recorded state; the cause goes to the log
            log.exception("job %s failed", job_id)
            self._finish(
                job_id, "failed", "INTERNAL_ERROR", f"任务意外失败（{type(exc).__name__}），请联系管理员查看日志。"
            )
        else:
            self._finish(job_id, "done", None, None)

    def _finish(self, job_id: int, status: str, code: str | None, message: str | None) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.status, job.finished_at, job.active_key = status, self.now(), None
            job.error_code, job.error_message = code, message
            if status == "done":
                job.done = job.total
            s.commit()

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        future = self.futures.get(job_id)
        if future is not None:
            future.result(timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
