from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from service.accounts.models import Role
from service.api.campaigns import job_out
from service.api.common import status_title
from service.api.deps import DocumentObj, JobObj, ScopeDep, SessionDep, StateDep
from service.archive.models import Document, DocumentVersion
from service.archive.service import versions
from service.campaigns.errors import NotFoundForUser
from service.campaigns.models import Assignment
from service.campaigns.schemas import DocumentOut, JobOut, RevokeIn
from service.documents.registry import get_kind

router = APIRouter(prefix="/api", tags=["文书"])


def document_out(session: SessionDep, doc: Document) -> DocumentOut:
    return DocumentOut(
        id=doc.id,
        kind=doc.kind,
        title=get_kind(doc.kind).title,
        status=doc.status,
        status_title=status_title(doc),
        issuer=doc.issuer.name if doc.issuer else str(doc.public.get("issuer", "")),
        subject=doc.subject.name if doc.subject else None,
        issued_at=doc.issued_at,
        sha256=doc.current_sha256,
        pages=doc.pages,
        revoked_at=doc.revoked_at,
        revoke_reason=doc.revoke_reason,
        versions=[
            {
                "number": v.number,
                "sha256": v.sha256,
                "event": v.event,
                "created_at": v.created_at.isoformat(),
                "bytes": v.size,
            }
            for v in versions(session, doc)
        ],
    )


@router.get("/documents/{document_id}", response_model=DocumentOut, summary="文书详情与各版本哈希")
def get_document(doc: DocumentObj, session: SessionDep) -> DocumentOut:
    return document_out(session, doc)


def _pdf(state: StateDep, sha256: str, name: str) -> Response:
    data = state.engine.archive.get(sha256)
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}", "X-Content-SHA256": sha256},
    )


@router.get(
    "/documents/{document_id}/pdf",
    summary="文书的最新版本（PDF）",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def document_pdf(doc: DocumentObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> Response:
    for a in session.scalars(select(Assignment).where(Assignment.document_id == doc.id)):
        if a.unit_id == scope.user.unit_id:
            state.campaigns.viewed(session, a, scope.actor)
    session.commit()
    return _pdf(state, doc.current_sha256, f"{get_kind(doc.kind).title}.pdf")


@router.get(
    "/documents/{document_id}/versions/{number}/pdf",
    summary="文书的某一版本（PDF）",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def version_pdf(doc: DocumentObj, number: int, state: StateDep, session: SessionDep) -> Response:
    version = session.scalar(
        select(DocumentVersion).where(DocumentVersion.document_id == doc.id, DocumentVersion.number == number)
    )
    if version is None:
        raise NotFoundForUser("该文书没有这个版本。")
    return _pdf(state, version.sha256, f"{get_kind(doc.kind).title}-第{number}版.pdf")


@router.post("/documents/{document_id}/revoke", response_model=DocumentOut, summary="撤回文书（验证页面将显示已撤回）")
def revoke(doc: DocumentObj, body: RevokeIn, scope: ScopeDep, state: StateDep, session: SessionDep) -> DocumentOut:
    scope.require(Role.BUREAU)
    state.campaigns.revoke(session, doc, scope.actor, body.reason)
    session.commit()
    return document_out(session, doc)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="后台任务的进度")
def get_job(job: JobObj) -> JobOut:
    return job_out(job)


@router.get("/escalations", summary="逾期未签、需要本单位督促的下级单位")
def escalations(scope: ScopeDep, state: StateDep, session: SessionDep) -> list[dict[str, object]]:
    now = state.clock.now()
    out: list[dict[str, object]] = []
    below = scope.units - {scope.unit.id}
    for a in session.scalars(
        select(Assignment).where(
            Assignment.unit_id.in_(below), Assignment.deadline < now, Assignment.state.in_(["issued", "viewed"])
        )
    ):
        if a.unit.parent_id == scope.unit.id:
            out.append(
                {
                    "assignment_id": a.id,
                    "campaign": a.campaign.name,
                    "unit_id": a.unit_id,
                    "unit": a.unit.name,
                    "kind": a.kind,
                    "period": a.period,
                    "deadline": a.deadline.isoformat(),
                }
            )
    return out
