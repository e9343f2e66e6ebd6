from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from service.accounts.errors import Forbidden
from service.accounts.models import Role
from service.api.common import assignment_out, decode_image, read_upload
from service.api.deps import AssignmentObj, ScopeDep, SessionDep, StateDep, refresh_periods
from service.archive.models import Document
from service.campaigns.errors import UploadInvalid
from service.campaigns.models import Assignment
from service.campaigns.schemas import AssignmentOut, SignIn
from service.campaigns.service import DONE_STATES

router = APIRouter(prefix="/api", tags=["签署"])


@router.get("/assignments", response_model=list[AssignmentOut], summary="本人单位（及所辖学校）待签与已签的文书")
def my_assignments(scope: ScopeDep, state: StateDep, session: SessionDep, todo: bool = False) -> list[AssignmentOut]:
    refresh_periods(state, session)
    now = state.clock.now()
    out = []
    for a in session.scalars(
        select(Assignment).where(Assignment.unit_id.in_(scope.units)).order_by(Assignment.id.desc())
    ):
        if todo and a.state in DONE_STATES:
            continue
        doc = session.get(Document, a.document_id) if a.document_id else None
        out.append(assignment_out(a, doc, now))
    return out


@router.get("/assignments/{assignment_id}", response_model=AssignmentOut, summary="一份待签文书")
def get_assignment(assignment: AssignmentObj, state: StateDep, session: SessionDep) -> AssignmentOut:
    doc = session.get(Document, assignment.document_id) if assignment.document_id else None
    return assignment_out(assignment, doc, state.clock.now())


@router.post(
    "/assignments/{assignment_id}/sign",
    response_model=AssignmentOut,
    summary="在线签署：手写签名（PNG）与单位公章，用本单位证书签名",
)
def sign(
    assignment: AssignmentObj, body: SignIn, scope: ScopeDep, state: StateDep, session: SessionDep
) -> AssignmentOut:
    scope.require(Role.SIGNER)
    if assignment.unit_id != scope.user.unit_id:
        raise Forbidden("只能签署本单位的文书。")
    if not body.confirm:
        raise UploadInvalid("请确认签署（confirm 为 true）。签署后文书内容不可更改。")
    limit = state.settings.max_image_bytes
    signature = decode_image(body.signature_png, limit, "签名图片")
    seal = decode_image(body.seal_png, limit, "公章图片") if body.seal_png else None
    doc = state.campaigns.sign(session, assignment, scope.actor, signature, seal)
    session.commit()
    return assignment_out(assignment, doc, state.clock.now())


@router.post(
    "/assignments/{assignment_id}/report",
    response_model=AssignmentOut,
    summary="报送本期月报或周报（PDF 或 Excel 文件）",
)
async def file_report(
    assignment: AssignmentObj,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="文件")],
) -> AssignmentOut:
    scope.require(Role.SIGNER, Role.OFFICE)
    data = await read_upload(file, state.settings.max_pdf_bytes, "报表文件")
    await run_in_threadpool(file_report_upload, assignment, scope, state, session, data, file.filename or "report")
    return assignment_out(assignment, None, state.clock.now())


def file_report_upload(
    assignment: Assignment, scope: ScopeDep, state: StateDep, session: SessionDep, data: bytes, filename: str
) -> None:
    """A unit files this period's report (the API and the unit's page)."""
    scope.require(Role.SIGNER, Role.OFFICE)
    if assignment.unit_id != scope.user.unit_id:
        raise Forbidden("只能报送本单位的报表。")
    if not (data.startswith(b"%PDF-") or data[:2] == b"PK"):
        raise UploadInvalid("报表应为 PDF 或 Excel（.xlsx）文件。")
    state.campaigns.file_report(session, assignment, scope.actor, data, filename)
    session.commit()
