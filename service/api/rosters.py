"""Rosters as JSON: import a sheet of students and guardians, issue its notices in the background,
each school's print file and the 回执台账."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from service.documents.registry import get_kind
from service.http.deps import RosterObj, ScopeDep, ServicesDep, SessionDep
from service.http.exports import ExportDep, as_issued
from service.http.reads import ReadsDep
from service.http.uploads import read_upload
from service.jobs.schemas import JobOut
from service.rosters import repository as rosters_repository
from service.rosters.schemas import roster_view

router = APIRouter(prefix="/api", tags=["名单与批量通知书"])


@router.post(
    "/rosters", status_code=201, summary="导入名单（Excel 或 CSV）：有错误时逐行列出，一行也不导入，除非只导入无误的行"
)
async def import_roster(
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="名单表格")],
    kind: Annotated[str, Form(description="enrollment_notice 或 return_notice")],
    report_by: Annotated[dt.date, Form(description="报到截止日期")],
    only_valid: Annotated[bool, Form(description="只导入无误的行")] = False,
    issue_date: Annotated[dt.date | None, Form(description="发文日期，默认今天")] = None,
) -> dict[str, Any]:
    data = await read_upload(file, services.settings.max_sheet_bytes, "名单文件")

    def run() -> dict[str, Any]:
        roster, errors = services.rosters.import_roster(
            session,
            scope,
            data,
            file.filename or "名单",
            kind=kind,
            report_by=report_by,
            only_valid=only_valid,
            issue_date=issue_date,
        )
        session.commit()
        return {**roster_view(session, roster), "errors": errors}

    return await run_in_threadpool(run)


@router.get("/rosters", summary="名单列表")
def list_rosters(scope: ScopeDep, session: SessionDep) -> list[dict[str, Any]]:
    rosters = rosters_repository.rosters(session, scope)
    return [roster_view(session, r) for r in rosters]


@router.get("/rosters/{roster_id}", summary="名单：签发、查看与确认阅知的数量，打印文件")
def get_roster(roster: RosterObj, session: SessionDep, reads: ReadsDep) -> dict[str, Any]:
    view = roster_view(session, roster)
    reads.roster(roster)
    return view


@router.post(
    "/rosters/{roster_id}/issue",
    response_model=JobOut,
    status_code=202,
    summary="批量签发名单中的通知书（后台任务；中断后再次执行只补发未签发的）",
)
def issue(roster: RosterObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> JobOut:
    job, _ = services.rosters.start_issue(session, scope, roster, services.jobs)
    session.commit()
    return JobOut.of(job)


@router.get(
    "/rosters/{roster_id}/print/{school_id}.pdf",
    summary="某校的打印文件（按班级顺序合并）",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def print_pdf(
    roster: RosterObj, school_id: int, services: ServicesDep, session: SessionDep, reads: ReadsDep, export: ExportDep
) -> Response:
    bundle = services.rosters.print_bundle(session, roster, school_id)
    reads.record("print_bundle", roster.id, rows=bundle.notices, exported=as_issued(export), school_id=school_id)
    name = f"{bundle.school.name}-{get_kind(roster.kind).title}-打印.pdf"
    # A school's print file holds hundreds of notices (about 100 KB each): streamed, never held whole.
    return StreamingResponse(
        services.archive.documents.stream(bundle.sha256),
        media_type="application/pdf",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


@router.get(
    "/rosters/{roster_id}/receipts.xlsx",
    summary="回执台账：每份通知书是否被查看、监护人是否确认阅知",
    response_class=Response,
)
def receipts(
    roster: RosterObj, services: ServicesDep, session: SessionDep, reads: ReadsDep, export: ExportDep
) -> Response:
    # names children and guardians, no 身份证号 or phones: nothing to mask, but a purpose is asked
    data = services.rosters.receipts_workbook(session, roster)
    reads.roster(roster, export, export="receipts")
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote('回执台账.xlsx')}"},
    )
