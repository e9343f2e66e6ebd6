from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from service.archive.models import Document
from service.campaigns.models import Assignment
from service.campaigns.schemas import AssignmentOut, SignIn
from service.campaigns.service import DONE_STATES
from service.errors import UploadInvalid
from service.http.deps import AssignmentObj, ScopeDep, ServicesDep, SessionDep, refresh_periods
from service.http.uploads import decode_image, read_upload

router = APIRouter(prefix="/api", tags=["签署"])


@router.get("/assignments", response_model=list[AssignmentOut], summary="本人单位（及所辖学校）待签与已签的文书")
def my_assignments(
    scope: ScopeDep, services: ServicesDep, session: SessionDep, todo: bool = False
) -> list[AssignmentOut]:
    refresh_periods(services, session)
    now = services.clock.now()
    return [
        AssignmentOut.of(a, session.get(Document, a.document_id) if a.document_id else None, now)
        for a in session.scalars(
            select(Assignment).where(Assignment.unit_id.in_(scope.units)).order_by(Assignment.id.desc())
        )
        if not (todo and a.state in DONE_STATES)
    ]


@router.get("/assignments/{assignment_id}", response_model=AssignmentOut, summary="一份待签文书")
def get_assignment(assignment: AssignmentObj, services: ServicesDep, session: SessionDep) -> AssignmentOut:
    doc = session.get(Document, assignment.document_id) if assignment.document_id else None
    return AssignmentOut.of(assignment, doc, services.clock.now())


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
