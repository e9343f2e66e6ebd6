"""What the running service holds: settings, database, document engine, rules, job runner, limits."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from service.archive.store import LocalArchive
from service.campaigns.service import Campaigns
from service.cases.service import Cases
from service.clock import Clock
from service.db.session import Database
from service.documents.pipeline import DocumentEngine
from service.jobs.runner import JobRunner
from service.settings import Settings


class RateLimiter:
    """At most ``limit`` events per client in any 60-second window (in memory: the embedded profile;
    a shared store such as Redis takes its place when several servers answer)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._pruned = 0.0

    def hit(self, key: str) -> int:
        """0 when allowed; otherwise the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, int(self.window - (now - hits[0])) + 1)
            hits.append(now)
            if len(self._hits) > 10_000 and now - self._pruned > self.window:  # forget idle clients
                self._pruned = now
                for k in [k for k, v in self._hits.items() if not v or now - v[-1] > self.window]:
                    del self._hits[k]
            return 0


@dataclass
class ServiceState:
    settings: Settings
    clock: Clock
    db: Database
    engine: DocumentEngine
    campaigns: Campaigns
    cases: Cases
    jobs: JobRunner
    verify_limit: RateLimiter
    login_limit: RateLimiter

    @classmethod
    def build(cls, settings: Settings, clock: Clock) -> ServiceState:
        db = Database(settings)
        engine = DocumentEngine(settings, now=clock.now)
        reports = LocalArchive(settings.archive_dir / "reports", suffix="")
        campaigns = Campaigns(engine, engine.archive, reports, settings.timezone, clock.now)
        cases = Cases(engine, LocalArchive(settings.archive_dir / "files", suffix=""), settings.timezone, clock.now)
        return cls(
            settings=settings,
            clock=clock,
            db=db,
            engine=engine,
            campaigns=campaigns,
            cases=cases,
            jobs=JobRunner(db, settings.job_workers, clock.now),
            verify_limit=RateLimiter(settings.verify_rate_per_minute),
            login_limit=RateLimiter(settings.login_rate_per_minute),
        )

    def recover(self) -> None:
        """After a restart: interrupted jobs end as failed, signatures claimed but not made are released."""
        from sqlalchemy import update

        from service.campaigns.models import Assignment, AssignmentState

        with self.db.session() as session:
            self.jobs.recover(session)
            session.execute(
                update(Assignment)
                .where(Assignment.state == AssignmentState.SIGNING)
                .values(state=AssignmentState.VIEWED)
            )
            session.commit()

    def close(self) -> None:
        self.jobs.shutdown()
        self.engine.close()
        self.db.dispose()
