from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool

from service.campaigns import repository as campaigns_repository
from service.campaigns.schemas import AssignmentOut, SignIn
from service.campaigns.service import DONE_STATES
from service.errors import NotFoundForUser, UploadInvalid
from service.http.deps import AssignmentObj, ScopeDep, ServicesDep, SessionDep
from service.http.uploads import decode_image, read_upload

router = APIRouter(prefix="/api", tags=["签署"])


@router.get("/assignments", response_model=list[AssignmentOut], summary="本人单位（及所辖学校）待签与已签的文书")
def my_assignments(
    scope: ScopeDep, services: ServicesDep, session: SessionDep, todo: bool = False
) -> list[AssignmentOut]:
    now = services.clock.now()
    return [
        AssignmentOut.of(a, campaigns_repository.document(session, scope, a), now)
        for a in campaigns_repository.assignments(session, scope)
        if not (todo and a.state in DONE_STATES)
    ]


@router.get("/assignments/{assignment_id}", response_model=AssignmentOut, summary="一份待签文书")
def get_assignment(
    assignment: AssignmentObj, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> AssignmentOut:
    doc = campaigns_repository.document(session, scope, assignment)
    return AssignmentOut.of(assignment, doc, services.clock.now())


@router.post(
    "/assignments/{assignment_id}/viewed",
    response_model=AssignmentOut,
    summary="本单位已阅读该文书（状态由「已下发」变为「已查看」；读取 PDF 本身不改变状态）",
)
def mark_viewed(
    assignment: AssignmentObj, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> AssignmentOut:
    if assignment.document_id is None:
        raise NotFoundForUser("这项任务是上传报表，没有要阅读的文书。")
    services.campaigns.viewed(session, scope, assignment)
    session.commit()
    return AssignmentOut.of(assignment, campaigns_repository.document(session, scope, assignment), services.clock.now())


@router.post(
    "/assignments/{assignment_id}/sign",
    response_model=AssignmentOut,
    summary="在线签署：手写签名（PNG）与单位公章，用本单位证书签名",
)
def sign(
    assignment: AssignmentObj, body: SignIn, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> AssignmentOut:
    if not body.confirm:
        raise UploadInvalid("请确认签署（confirm 为 true）。签署后文书内容不可更改。")
    limit = services.settings.max_image_bytes
    signature = decode_image(body.signature_png, limit, "签名图片")
    seal = decode_image(body.seal_png, limit, "公章图片") if body.seal_png else None
    doc = services.campaigns.sign(session, scope, assignment, signature, seal)
    session.commit()
    return AssignmentOut.of(assignment, doc, services.clock.now())


@router.post(
    "/assignments/{assignment_id}/report",
    response_model=AssignmentOut,
    summary="报送本期月报或周报（PDF 或 Excel 文件）",
)
async def file_report(
    assignment: AssignmentObj,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="文件")],
) -> AssignmentOut:
    data = await read_upload(file, services.settings.max_pdf_bytes, "报表文件")

    def run() -> AssignmentOut:
        services.campaigns.file_report(session, scope, assignment, data, file.filename or "report")
        session.commit()
        return AssignmentOut.of(assignment, None, services.clock.now())

    return await run_in_threadpool(run)
