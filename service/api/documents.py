from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from service.accounts.models import Role
from service.archive import repository as archive_repository
from service.archive.schemas import DocumentOut, RevokeIn, download_name
from service.archive.service import stored_pdf
from service.errors import NotFoundForUser
from service.http.deps import DocumentObj, JobObj, ScopeDep, ServicesDep, SessionDep
from service.http.reads import ReadsDep
from service.jobs.schemas import JobOut

router = APIRouter(prefix="/api", tags=["文书"])


@router.get("/documents/{document_id}", response_model=DocumentOut, summary="文书详情与各版本哈希")
def get_document(doc: DocumentObj, session: SessionDep, reads: ReadsDep) -> DocumentOut:
    out = DocumentOut.of(session, doc)
    reads.document(doc)
    return out


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
def document_pdf(doc: DocumentObj, services: ServicesDep, reads: ReadsDep) -> Response:
    """Reading writes nothing while answering: a unit says it has read its document with
    ``POST /api/assignments/{assignment_id}/viewed`` (a child's document is noted for the access log)."""
    reads.document(doc)
    return _pdf(services, stored_pdf(doc), download_name(doc))


@router.get(
    "/documents/{document_id}/versions/{number}/pdf",
    summary="文书的某一版本（PDF）",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def version_pdf(
    doc: DocumentObj, number: int, scope: ScopeDep, services: ServicesDep, session: SessionDep, reads: ReadsDep
) -> Response:
    version = archive_repository.version(session, scope, doc, number)
    if version is None:
        raise NotFoundForUser("该文书没有这个版本。")
    reads.document(doc, version=number)
    return _pdf(services, stored_pdf(doc, version.sha256), download_name(doc, number))


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
