from __future__ import annotations

from pydantic import BaseModel

from service.jobs.models import Job


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    total: int
    done: int
    stage: str | None
    error_code: str | None
    error_message: str | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            total=job.total,
            done=job.done,
            stage=job.stage,
            error_code=job.error_code,
            error_message=job.error_message,
        )
