"""Pages for rosters: importing a sheet of students and guardians, issuing its notices with live
progress, and each school's print file."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.cases.checks import parse_date
from service.errors import DocsignError, InvalidInput
from service.http.deps import JobObj, RosterObj, ScopeDep, ServicesDep, SessionDep
from service.http.reads import ReadsDep
from service.http.uploads import read_upload
from service.jobs import repository as jobs_repository
from service.rosters import repository as rosters_repository
from service.rosters.models import Roster
from service.rosters.schemas import roster_view
from service.rosters.sheet import schools_in
from service.web.common import PageUser, flash_redirect, form_errors, fragment, render

router = APIRouter(include_in_schema=False)


def _rosters(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    values: dict[str, Any] | None = None,
    import_errors: list[dict[str, Any]] | None = None,
    import_error: str = "",
) -> Response:
    rosters = [roster_view(session, r) for r in rosters_repository.rosters(session, scope)]
    defaults = {
        "kind": "enrollment_notice",
        "report_by": (services.rosters.today() + dt.timedelta(days=14)).isoformat(),
        "only_valid": False,
    }
    return render(
        request,
        "rosters.html",
        user,
        rosters=rosters,
        values={**defaults, **(values or {})},
        import_errors=import_errors or [],
        import_error=import_error,
        schools=sorted(schools_in(session, scope.units), key=lambda u: u.code),
    )


@router.get("/rosters")
def rosters_page(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    return _rosters(request, user, scope, services, session)


@router.post("/rosters")
async def rosters_import(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    file: Annotated[UploadFile | None, File()] = None,
    kind: Annotated[str, Form()] = "",
    report_by: Annotated[str, Form()] = "",
    only_valid: Annotated[str, Form()] = "",
) -> Response:
    values = {"kind": kind, "report_by": report_by, "only_valid": only_valid == "true"}
    try:
        if file is None or not file.filename:
            raise InvalidInput("请选择名单文件。")
        day = parse_date(report_by)
        if day is None:
            raise InvalidInput("请选择报到截止日期。")
        data = await read_upload(file, services.settings.max_sheet_bytes, "名单文件")
        filename = file.filename

        def run() -> Roster:
            roster, _ = services.rosters.import_roster(
                session, scope, data, filename, kind=kind, report_by=day, only_valid=only_valid == "true"
            )
            session.commit()
            return roster

        roster = await run_in_threadpool(run)
        return flash_redirect(f"/rosters/{roster.id}")
    except DocsignError as exc:
        session.rollback()
        return _rosters(request, user, scope, services, session, values, form_errors(exc), exc.message)


@router.get("/rosters/{roster_id}")
def roster_page(
    request: Request, roster: RosterObj, user: PageUser, scope: ScopeDep, session: SessionDep, reads: ReadsDep
) -> Response:
    job = jobs_repository.by_active_key(session, scope, f"roster.issue:{roster.id}")
    page = render(request, "roster.html", user, r=roster_view(session, roster), job=job)
    reads.roster(roster)
    return page


@router.post("/rosters/{roster_id}/issue")
def roster_issue(
    request: Request, roster: RosterObj, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    job, _ = services.rosters.start_issue(session, scope, roster, services.jobs)
    session.commit()
    return fragment(request, "_roster_job.html", job=job, refresh=True)


@router.get("/rosters/jobs/{job_id}")
def roster_job(request: Request, job: JobObj) -> Response:
    return fragment(request, "_roster_job.html", job=job, refresh=True)
