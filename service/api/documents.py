from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select

from service.accounts.models import Role
from service.archive.models import DocumentVersion
from service.archive.schemas import DocumentOut, RevokeIn
from service.campaigns.models import Assignment
from service.documents.registry import get_kind
from service.errors import NotFoundForUser
from service.http.deps import DocumentObj, JobObj, ScopeDep, ServicesDep, SessionDep
from service.jobs.schemas import JobOut

router = APIRouter(prefix="/api", tags=["文书"])


@router.get("/documents/{document_id}", response_model=DocumentOut, summary="文书详情与各版本哈希")
def get_document(doc: DocumentObj, session: SessionDep) -> DocumentOut:
    return DocumentOut.of(session, doc)


def _pdf(services: ServicesDep, sha256: str, name: str) -> StreamingResponse:
    blocks: Iterator[bytes] = services.archive.documents.stream(sha256)
    return StreamingResponse(
        blocks,
        media_type="application/pdf",
        headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}", "X-Content-SHA256": sha256},
    )


@router.get(
    "/documents/{document_id}/pdf",
    summary="文书的最新版本（PDF）",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def document_pdf(doc: DocumentObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> Response:
    for a in session.scalars(select(Assignment).where(Assignment.document_id == doc.id)):
        if a.unit_id == scope.unit.id:
            services.campaigns.viewed(session, scope, a)
    session.commit()
    return _pdf(services, doc.current_sha256, f"{get_kind(doc.kind).title}.pdf")


@router.get(
    "/documents/{document_id}/versions/{number}/pdf",
    summary="文书的某一版本（PDF）",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def version_pdf(doc: DocumentObj, number: int, services: ServicesDep, session: SessionDep) -> Response:
    version = session.scalar(
        select(DocumentVersion).where(DocumentVersion.document_id == doc.id, DocumentVersion.number == number)
    )
    if version is None:
        raise NotFoundForUser("该文书没有这个版本。")
    return _pdf(services, version.sha256, f"{get_kind(doc.kind).title}-第{number}版.pdf")


@router.post("/documents/{document_id}/revoke", response_model=DocumentOut, summary="撤回文书（验证页面将显示已撤回）")
def revoke(
    doc: DocumentObj, body: RevokeIn, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> DocumentOut:
    scope.require(Role.BUREAU)
    services.archive.revoke(session, scope, doc, body.reason)
    session.commit()
    return DocumentOut.of(session, doc)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="后台任务的进度")
def get_job(job: JobObj) -> JobOut:
    return JobOut.of(job)


@router.get("/escalations", summary="逾期未签、需要本单位督促的下级单位")
def escalations(scope: ScopeDep, services: ServicesDep, session: SessionDep) -> list[dict[str, object]]:
    return services.campaigns.escalations(session, scope)
