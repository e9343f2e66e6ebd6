from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select

from service.archive.schemas import document_brief
from service.cases.models import Case, Roster
from service.cases.schemas import AttemptBody, CaseBody, NoticeBody, ReturnedBody, case_view, roster_view
from service.cases.service import CaseIn, GuardianIn
from service.documents.registry import get_kind
from service.http.deps import CaseObj, RosterObj, ScopeDep, ServicesDep, SessionDep
from service.http.uploads import read_upload
from service.jobs.schemas import JobOut

router = APIRouter(prefix="/api", tags=["辍学个案与通知书"])


@router.get("/cases", summary="本人可见学校的辍学个案")
def list_cases(
    scope: ScopeDep, services: ServicesDep, session: SessionDep, status: str | None = None
) -> list[dict[str, Any]]:
    query = select(Case).where(Case.school_id.in_(scope.units)).order_by(Case.id.desc())
    if status:
        query = query.where(Case.status == status)
    return [case_view(session, services.cases, c, full=False) for c in session.scalars(query)]


@router.post("/cases", status_code=201, summary="登记辍学（或疑似辍学）学生")
def create_case(body: CaseBody, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> dict[str, Any]:
    data = CaseIn(
        **body.model_dump(exclude={"school_id", "guardians"}),
        guardians=[GuardianIn(**g.model_dump()) for g in body.guardians],
    )
    case = services.cases.create(session, scope, body.school_id, data)
    session.commit()
    return case_view(session, services.cases, case)


@router.get("/cases/{case_id}", summary="个案详情：学生、监护人、劝返记录、通知书与到期事项")
def get_case(case: CaseObj, services: ServicesDep, session: SessionDep) -> dict[str, Any]:
    return case_view(session, services.cases, case)


@router.post("/cases/{case_id}/confirm", summary="核实后确认为辍学")
def confirm_case(case: CaseObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> dict[str, Any]:
    services.cases.confirm(session, scope, case)
    session.commit()
    return case_view(session, services.cases, case)


@router.post("/cases/{case_id}/attempts", status_code=201, summary="记录一次劝返")
def add_attempt(
    case: CaseObj, body: AttemptBody, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    services.cases.add_attempt(
        session,
        scope,
        case,
        date=body.date,
        staff=body.staff,
        method=body.method,
        result=body.result,
        succeeded=body.succeeded,
        note=body.note,
    )
    session.commit()
    return case_view(session, services.cases, case)


@router.post("/cases/{case_id}/returned", summary="销号：学生已复学（填写返校日期）")
def mark_returned(
    case: CaseObj, scope: ScopeDep, services: ServicesDep, session: SessionDep, body: ReturnedBody | None = None
) -> dict[str, Any]:
    body = body or ReturnedBody()
    services.cases.returned(session, scope, case, body.back_on, body.note)
    session.commit()
    return case_view(session, services.cases, case)


@router.post(
    "/cases/{case_id}/defer", summary="销号：办理延缓入学或休学（联合劝返三次或司法判决后，经批准，附批准文件）"
)
async def defer(
    case: CaseObj,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    basis: Annotated[str, Form(description="joint_persuasion、court_ruling 或 disability_assessment")],
    authority: Annotated[str, Form(description="批准机关")],
    approved_on: Annotated[dt.date, Form(description="批准日期")],
    files: Annotated[list[UploadFile], File(description="批准文件扫描件")],
    note: Annotated[str | None, Form(description="备注")] = None,
    home_teaching: Annotated[bool, Form(description="是否安排送教上门（每周不少于1次）")] = False,
) -> dict[str, Any]:
    approval = [
        (f.filename or "批准文件", await read_upload(f, services.settings.max_pdf_bytes, "批准文件")) for f in files
    ]

    def run() -> dict[str, Any]:
        services.cases.defer(
            session,
            scope,
            case,
            basis=basis,
            authority=authority,
            approved_on=approved_on,
            approval=approval,
            note=note,
            home_teaching=home_teaching,
        )
        session.commit()
        return case_view(session, services.cases, case)

    return await run_in_threadpool(run)


@router.post(
    "/cases/{case_id}/home-visits",
    status_code=201,
    summary="记录一次送教上门（延缓入学/休学并送教上门的学生；附送教记录）",
)
async def add_home_visit(
    case: CaseObj,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    date: Annotated[dt.date, Form(description="送教日期")],
    teachers: Annotated[str, Form(description="送教人员")],
    content: Annotated[str, Form(description="送教内容")],
    file: Annotated[UploadFile, File(description="送教记录（照片或监护人签字的记录表）")],
) -> dict[str, Any]:
    evidence = [(file.filename or "送教记录", await read_upload(file, services.settings.max_pdf_bytes, "送教记录"))]

    def run() -> dict[str, Any]:
        services.cases.add_home_visit(
            session, scope, case, date=date, teachers=teachers, content=content, evidence=evidence
        )
        session.commit()
        return case_view(session, services.cases, case)

    return await run_in_threadpool(run)


@router.post("/cases/{case_id}/write-off", summary="销号：核销（附件一所列原因，并上传证明材料）")
async def write_off(
    case: CaseObj,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reason: Annotated[str, Form(description="核销原因代码")],
    files: Annotated[list[UploadFile], File(description="证明材料扫描件")],
    note: Annotated[str | None, Form(description="备注")] = None,
) -> dict[str, Any]:
    evidence = [
        (f.filename or "证明材料", await read_upload(f, services.settings.max_pdf_bytes, "证明材料")) for f in files
    ]

    def run() -> dict[str, Any]:
        services.cases.write_off(session, scope, case, reason, evidence, note)
        session.commit()
        return case_view(session, services.cases, case)

    return await run_in_threadpool(run)


@router.post("/cases/{case_id}/notices", status_code=201, summary="为个案发出复学通知书或限期复学通知书")
def case_notice(
    case: CaseObj, body: NoticeBody, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    doc = services.cases.issue_notice(session, scope, case, body.kind, body.report_by, body.issuer)
    session.commit()
    return document_brief(doc)


@router.post("/cases/{case_id}/register", status_code=201, summary="生成并签章《辍学学生登记表（一生一表）》的新版本")
def case_register(case: CaseObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> dict[str, Any]:
    doc = services.cases.register(session, scope, case)
    session.commit()
    return document_brief(doc)


@router.get(
    "/due",
    summary="到期事项：联合劝返、限期复学、法定期限（学校看到全部，教育办和教体局看到所辖学校逾期的期限事项）",
)
def due(scope: ScopeDep, services: ServicesDep, session: SessionDep) -> list[dict[str, Any]]:
    items = [d.to_dict() for d in services.ledgers.due(session, scope)]
    session.commit()  # the bureau's default rules, made the first time they are read
    return items


# --- rosters -----------------------------------------------------------------------------------


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
        roster, errors = services.cases.import_roster(
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
    rosters = session.scalars(select(Roster).where(Roster.issuer_id.in_(scope.units)).order_by(Roster.id.desc()))
    return [roster_view(session, r) for r in rosters]


@router.get("/rosters/{roster_id}", summary="名单：签发、查看与确认阅知的数量，打印文件")
def get_roster(roster: RosterObj, session: SessionDep) -> dict[str, Any]:
    return roster_view(session, roster)


@router.post(
    "/rosters/{roster_id}/issue",
    response_model=JobOut,
    status_code=202,
    summary="批量签发名单中的通知书（后台任务；中断后再次执行只补发未签发的）",
)
def issue(roster: RosterObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> JobOut:
    job, _ = services.cases.start_roster_issue(session, scope, roster, services.jobs)
    session.commit()
    return JobOut.of(job)


@router.get(
    "/rosters/{roster_id}/print/{school_id}.pdf",
    summary="某校的打印文件（按班级顺序合并）",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def print_pdf(roster: RosterObj, school_id: int, services: ServicesDep, session: SessionDep) -> Response:
    bundle = services.cases.print_bundle(session, roster, school_id)
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
def receipts(roster: RosterObj, services: ServicesDep, session: SessionDep) -> Response:
    data = services.cases.receipts_workbook(session, roster)
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote('回执台账.xlsx')}"},
    )
