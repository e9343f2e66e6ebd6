"""A unit's pages: what it has to sign or file, the signing page, the document's pages and download."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from service.accounts.models import User
from service.archive.schemas import download_name
from service.archive.service import stored_pdf
from service.campaigns import repository as campaigns_repository
from service.campaigns.models import Assignment
from service.campaigns.schemas import assignment_row, local_time, report_row, signing_view
from service.errors import DocsignError, NotFoundForUser, UploadInvalid
from service.http.deps import AssignmentObj, DocumentObj, ScopeDep, ServicesDep, SessionDep
from service.http.reads import ReadsDep
from service.http.uploads import decode_image, read_upload
from service.web.common import PageUser, flash_redirect, render, tz_of
from service.web.views import page_png

router = APIRouter(include_in_schema=False)


@router.get("/sign")
def sign_list(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    filed: int | None = None,
) -> Response:
    flash = {"tone": "ok", "text": "已报送本期报表。"} if filed is not None else None
    return _sign_list(request, user, scope, services, session, flash=flash)


@router.post("/reports/{assignment_id}")
async def report_upload(
    request: Request,
    assignment: AssignmentObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        if file is None or not file.filename:
            raise UploadInvalid("请选择要上传的报表文件（PDF 或 Excel）。")
        data = await read_upload(file, services.settings.max_pdf_bytes, "报表文件")
        filename = file.filename

        def run() -> None:
            services.campaigns.file_report(session, scope, assignment, data, filename)
            session.commit()

        await run_in_threadpool(run)
    except DocsignError as exc:
        session.rollback()
        return _sign_list(request, user, scope, services, session, report_errors={assignment.id: exc.message})
    return flash_redirect(f"/sign?filed={assignment.id}")


def _sign_list(
    request: Request,
    user: User,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    report_errors: dict[int, str] | None = None,
    flash: dict[str, str] | None = None,
) -> Response:
    tz, now = tz_of(services), services.clock.now()
    reports = [
        report_row(a, now, tz, (report_errors or {}).get(a.id, ""))
        for a in campaigns_repository.own_reports(session, scope)
    ]
    items = []
    for a in campaigns_repository.own_documents(session, scope):
        row = assignment_row(a, campaigns_repository.document(session, scope, a), now, tz)
        items.append(
            {
                "id": a.id,
                "kind_title": row["kind_title"],
                "label": row["label"],
                "tone": row["tone"],
                "campaign_name": a.campaign.name,
                "deadline_local": local_time(a.deadline, tz),
            }
        )
    return render(request, "sign_list.html", user, items=items, reports=reports, unit_name=user.unit.name, flash=flash)


def _signing(a: Assignment, user: User, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> dict[str, Any]:
    doc = campaigns_repository.document(session, scope, a)
    assert doc is not None
    pdf = services.archive.documents.get(doc.current_sha256)
    return signing_view(a, doc, pdf, user, services.clock.now(), tz_of(services))


#: The strokes of a signature as the pad keeps them (JSON points): a long signature is ~30 KB.
MAX_STROKES_CHARS = 400_000


@router.get("/sign/{assignment_id}")
def sign_page(
    request: Request,
    a: AssignmentObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    zoom: bool = False,
) -> Response:
    if a.document_id is None:
        raise NotFoundForUser("这项任务是上传报表，不需要在线签署。")
    return render(request, "sign.html", user, zoom=zoom, **_signing(a, user, scope, services, session))


@router.post("/sign/{assignment_id}/viewed")
def sign_viewed(
    a: AssignmentObj, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    """The signing page, once shown in a browser, says so (a GET only reads): the unit's own
    assignment counts as viewed."""
    if a.document_id is None:
        raise NotFoundForUser("这项任务是上传报表，不需要在线签署。")
    if a.unit_id == user.unit_id:
        services.campaigns.viewed(session, scope, a)
        session.commit()
    return Response(status_code=204)


@router.post("/sign/{assignment_id}")
def sign_submit(
    request: Request,
    a: AssignmentObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    signature_png: Annotated[str, Form()] = "",
    signature_strokes: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    errors: dict[str, str] = {}
    if not signature_png:
        errors["signature"] = "请先在签名框中写下您的签名。"
    if confirm != "yes":
        errors["confirm"] = "请勾选确认后再签署。"
    if not errors:
        try:
            image = decode_image(signature_png, services.settings.max_image_bytes, "签名图片")
            services.campaigns.sign(session, scope, a, image)
            session.commit()
            return flash_redirect(f"/sign/{a.id}")
        except DocsignError as exc:
            session.rollback()
            if exc.code in ("ALREADY_SIGNED", "DOCUMENT_REVOKED"):
                return flash_redirect(f"/sign/{a.id}")
            if exc.code == "FORBIDDEN":
                raise
            errors["signature"] = exc.message
    session.refresh(a)
    context = _signing(a, user, scope, services, session)
    context["errors"] = errors
    # what was drawn and ticked comes back: a forgotten box does not cost the signature
    if "signature" not in errors and len(signature_strokes) <= MAX_STROKES_CHARS:
        context["strokes"] = signature_strokes
    context["confirmed"] = confirm == "yes"
    return render(request, "sign.html", user, **context)


@router.get("/documents/{document_id}/pages/{number}.png")
def document_page(doc: DocumentObj, number: int, services: ServicesDep, reads: ReadsDep) -> Response:
    if not 1 <= number <= doc.pages + 4:  # signatures never add pages; a little slack for old rows
        raise NotFoundForUser("没有这一页。")
    key = stored_pdf(doc)
    name = f"{key}-{number}.png"
    png = services.page_images.get(name)
    if png is None:
        with services.archive.documents.local_path(key) as source:
            png = page_png(source, number, services.settings.temp_dir)
        services.page_images.put(name, png)
    reads.document(doc, page=number)
    return Response(png, media_type="image/png")


def _pdf(doc: DocumentObj, services: ServicesDep, disposition: str) -> Response:
    name = download_name(doc)
    return StreamingResponse(
        services.archive.documents.stream(stored_pdf(doc)),
        media_type="application/pdf",
        headers={"Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}"},
    )


@router.get("/documents/{document_id}/download")
def document_download(doc: DocumentObj, services: ServicesDep, reads: ReadsDep) -> Response:
    reads.document(doc)
    return _pdf(doc, services, "attachment")


@router.get("/documents/{document_id}/pdf")
def document_pdf(doc: DocumentObj, services: ServicesDep, reads: ReadsDep) -> Response:
    """The document to read in the browser's (or the phone's) own PDF viewer, where it zooms."""
    reads.document(doc)
    return _pdf(doc, services, "inline")
