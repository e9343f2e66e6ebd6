"""Archive jobs: recovery of writes that a crash left behind."""

from __future__ import annotations

import datetime as dt
from typing import Any

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
