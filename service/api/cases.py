from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.archive.schemas import document_brief
from service.cases import repository as cases_repository
from service.cases.models import Case
from service.cases.schemas import (
    AttemptBody,
    CaseBody,
    ConfirmBody,
    ErasureBody,
    NoticeBody,
    ReturnedBody,
    case_file_name,
    case_view,
)
from service.cases.service import CaseIn, GuardianIn
from service.http.deps import CaseObj, ScopeDep, ServicesDep, SessionDep
from service.http.reads import ReadsDep
from service.http.uploads import read_upload

router = APIRouter(prefix="/api", tags=["辍学个案与通知书"])


def _view(session: SessionDep, services: ServicesDep, case: Case) -> dict[str, Any]:
    """A case with the steps it is due for under its bureau's deadline rules."""
    return case_view(session, services.cases, case, due=services.ledgers.deadlines.case_items(session, case))


@router.get("/cases", summary="本人可见学校的辍学个案")
def list_cases(
    scope: ScopeDep, services: ServicesDep, session: SessionDep, reads: ReadsDep, status: str | None = None
) -> list[dict[str, Any]]:
    cases = [case_view(session, services.cases, c, full=False) for c in cases_repository.cases(session, scope, status)]
    reads.record("case_list", rows=len(cases), status=status)
    return cases


@router.post("/cases", status_code=201, summary="登记辍学（或疑似辍学）学生")
def create_case(body: CaseBody, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> dict[str, Any]:
    data = CaseIn(
        **body.model_dump(exclude={"school_id", "guardians"}),
        guardians=[GuardianIn(**g.model_dump()) for g in body.guardians],
    )
    case = services.cases.create(session, scope, body.school_id, data)
    session.commit()
    return _view(session, services, case)


@router.get("/cases/{case_id}", summary="个案详情：学生、监护人、劝返记录、通知书与到期事项")
def get_case(case: CaseObj, services: ServicesDep, session: SessionDep, reads: ReadsDep) -> dict[str, Any]:
    view = _view(session, services, case)
    reads.case(case)
    return view


@router.post("/cases/{case_id}/confirm", summary="核实后确认为辍学")
def confirm_case(
    case: CaseObj, scope: ScopeDep, services: ServicesDep, session: SessionDep, body: ConfirmBody | None = None
) -> dict[str, Any]:
    services.cases.confirm(session, scope, case, body.on if body is not None else None)
    session.commit()
    return _view(session, services, case)


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
    return _view(session, services, case)


@router.post("/cases/{case_id}/returned", summary="销号：学生已复学（填写返校日期）")
def mark_returned(
    case: CaseObj, scope: ScopeDep, services: ServicesDep, session: SessionDep, body: ReturnedBody | None = None
) -> dict[str, Any]:
    body = body or ReturnedBody()
    services.cases.returned(session, scope, case, body.back_on, body.note)
    session.commit()
    return _view(session, services, case)


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
        return _view(session, services, case)

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
        return _view(session, services, case)

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
        return _view(session, services, case)

    return await run_in_threadpool(run)


@router.post(
    "/cases/{case_id}/erasure",
    summary="依监护人申请删除已结案个案的个人信息（教体局办理，写明依据；不能恢复，个案仍计入当时的统计）",
)
def erase_case(
    case: CaseObj, body: ErasureBody, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    entry = services.retention.erase_case_on_request(session, scope, case, body.reason)
    session.commit()
    return {"case": _view(session, services, case), "removed": entry.removed, "reason": entry.reason}


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


@router.post(
    "/cases/{case_id}/file",
    summary="生成案卷（交法院、检察院）：封面、目录、一生一表、劝返记录及附件、文书原件及核验记录、回执、办理经过，由教体局签章",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "案卷 PDF，原件作为 PDF 附件嵌入"}},
)
def case_file(case: CaseObj, scope: ScopeDep, services: ServicesDep, session: SessionDep, reads: ReadsDep) -> Response:
    doc, issued = services.cases.case_file(session, scope, case)
    session.commit()
    reads.case(case, case_file=doc.id)  # the file shows the child in full
    return Response(
        issued.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(case_file_name(case))}",
            "X-Document-Id": str(doc.id),
            "X-Verification-Code": issued.code,
            "X-Content-SHA256": issued.sha256,
        },
    )


@router.get(
    "/due",
    summary="到期事项：联合劝返、限期复学、法定期限（学校看到全部，教育办和教体局看到所辖学校逾期的期限事项）",
)
def due(scope: ScopeDep, services: ServicesDep, session: SessionDep, reads: ReadsDep) -> list[dict[str, Any]]:
    items = [d.to_dict() for d in services.ledgers.due(session, scope)]
    reads.record("due_list", rows=len(items))  # due items name the children of their cases
    return items
