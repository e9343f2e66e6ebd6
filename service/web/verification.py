"""Public verification: what a parent sees after scanning a notice's QR code, and what a program gets.

``/v/{code}`` answers a browser with a page and a program (``Accept: application/json`` or
``?format=json``) with JSON. A scan reads the stored verdict and the public fields of one document,
found by the code's hash (codes carry 140 random bits, so an unknown code costs the same lookup and
tells a guesser nothing); nothing is parsed or written per scan. A version the background check
(``archive.check_pending``) has not reached yet shows 核验中: the page refreshes itself and offers
立即核验 (``POST /v/{code}/verdict``), which checks it at once. The page's own script reports a
real view (``/v/{code}/opened``, counted in memory and written in batches), so a link previewer
that only fetches the URL is not counted. Each client is limited to ``verify_rate_per_minute``
lookups and, separately, ``upload_rate_per_minute`` uploads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from service.accounts.errors import TooManyRequests
from service.archive.schemas import Verification
from service.db.session import has_writes
from service.documents.codes import normalize_code
from service.documents.errors import VerifierBusy
from service.documents.registry import GUARDIAN_NOTICES
from service.errors import DocsignError, UploadInvalid
from service.http.deps import ServicesDep, SessionDep, client_address
from service.http.ops import UPLOADS, VERIFY, verify_outcome
from service.http.uploads import read_upload
from service.limits import RateLimiter
from service.rosters import repository as rosters_repository
from service.storage.base import sha256_hex
from service.web.common import templates, tz_of

router = APIRouter(tags=["公开验证"])


def _wants_json(request: Request) -> bool:
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _outcome(v: Verification) -> str:
    if v.status_code >= 400 and v.found is False and v.data.get("code"):
        return "refused"
    return verify_outcome(v.found, v.data.get("status"), v.genuine, v.pending)


def _answer(
    request: Request, v: Verification, code_value: str = "", code_error: str = "", retry_after: int | None = None
) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    if _wants_json(request):
        return JSONResponse(v.as_json(), status_code=v.status_code, headers=headers)
    return templates.TemplateResponse(
        request,
        "verify.html",
        {"page_title": v.verdict, "result": v, "code_value": code_value, "code_error": code_error},
        status_code=v.status_code,
        headers=headers,
    )


def _limit(request: Request, services: ServicesDep, limiter: RateLimiter, what: str) -> None:
    wait = limiter.hit(f"{what}:" + client_address(request, services.settings))
    if wait:
        raise TooManyRequests(wait, f"{'上传' if what == 'upload' else '查询'}过于频繁，请 {wait} 秒后再试。")


def _described(services: ServicesDep, session: SessionDep, code: str) -> tuple[Verification, int | None]:
    """The answer for a code, read from the record (核验中 if not checked yet); the document's id."""
    archive = services.archive
    doc = archive.find(session, code)
    if doc is None:
        return Verification.not_found(), None
    described = Verification.of_document(
        doc, lambda: archive.stored_verdict(session, doc), tz_of(services), services.clock.now()
    )
    return described, doc.id


@router.get("/v", summary="验真页面：输入验证码或上传 PDF", response_class=Response)
def verify_home(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "verify.html", {"page_title": "文书验真", "result": None, "code_value": "", "code_error": ""}
    )


@router.post("/v", summary="按输入的验证码查验（跳转到 /v/{验证码}）", response_class=Response)
def verify_form(request: Request, code: str = Form("")) -> Response:
    normalized = normalize_code(code)
    if normalized is None:
        return templates.TemplateResponse(
            request,
            "verify.html",
            {
                "page_title": "验证码格式不对",
                "result": None,
                "code_value": code[:64],
                "code_error": "验证码应为 28 位字母和数字（可带短横线），请对照文书右下角核对后重新输入。",
            },
        )
    return RedirectResponse(f"/v/{normalized}", status_code=303)


@router.get("/v/{code}", summary="扫码验真：文书是否真实有效（页面，或 JSON）", response_class=Response)
def verify_code(code: str, request: Request, services: ServicesDep, session: SessionDep) -> Response:
    _limit(request, services, services.verify_limit, "verify")
    v, _ = _described(services, session, code)
    VERIFY.labels(_outcome(v)).inc()
    return _answer(request, v, code_value=code[:64])


@router.post(
    "/v/{code}/verdict", summary="立即核验：签章尚未核验（核验中）的文书现在核验并保存结论", response_class=Response
)
def check_now(code: str, request: Request, services: ServicesDep, session: SessionDep) -> Response:
    _limit(request, services, services.verify_limit, "verify")
    archive = services.archive
    doc = archive.find(session, code)
    if doc is None:
        return _answer(request, Verification.not_found())

    def check() -> None:
        archive.verdict_now(session, doc)
        if has_writes(session):
            session.commit()

    try:
        check()
    except VerifierBusy as exc:
        return _answer(request, Verification.refused(exc.code, exc.message, exc.http_status))
    if _wants_json(request):
        v, _ = _described(services, session, code)
        return _answer(request, v, code_value=code[:64])
    return RedirectResponse(f"/v/{normalize_code(code) or code}", status_code=303)


@router.post("/v/{code}/opened", status_code=204, summary="验真页面已在浏览器中打开（页面脚本发出，用于回执台账）")
def page_opened(code: str, request: Request, services: ServicesDep, session: SessionDep) -> Response:
    _limit(request, services, services.verify_limit, "verify")
    prefetch = request.headers.get("sec-purpose", "") + request.headers.get("purpose", "")
    if "prefetch" not in prefetch.lower():
        doc = services.archive.find(session, code)
        if doc is not None:
            services.archive.opened(doc)
    return Response(status_code=204)


@router.post("/v/{code}/confirm", summary="监护人确认已阅知通知书（需输入监护人电话后四位）", response_class=Response)
def confirm_receipt(
    code: str,
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    digits: Annotated[str, Form(description="学校登记的监护人电话号码后四位")] = "",
) -> Response:
    _limit(request, services, services.verify_limit, "verify")
    archive = services.archive
    doc = archive.find(session, code)
    if doc is None or doc.kind not in GUARDIAN_NOTICES:
        return _answer(request, Verification.not_found())
    outcome = archive.confirm_receipt(session, doc, digits, client_address(request, services.settings))
    session.commit()
    v, _ = _described(services, session, code)
    return _answer(request, v.receipt_answer(outcome), code_value=code[:64])


@router.post("/v/check", summary="上传 PDF 核对：与归档比对并验证签名，说明哪里不对", response_class=Response)
async def verify_upload(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="文件")],
) -> Response:
    _limit(request, services, services.upload_limit, "upload")
    try:
        data = await read_upload(file, services.settings.max_pdf_bytes, "PDF 文件")
        if not data.startswith(b"%PDF-"):
            raise UploadInvalid("上传的文件不是 PDF 文件。")
    except DocsignError as exc:
        return _answer(request, Verification.refused(exc.code, exc.message, exc.http_status))

    def check() -> Verification:
        archive = services.archive
        digest = sha256_hex(data)
        bundle = rosters_repository.print_bundle_by_hash(session, digest)
        if bundle is not None:
            return Verification.print_bundle(digest, bundle.notices)
        result = archive.check_upload(session, data, services.upload_verifier)
        doc = result.version.document if result.version else None
        v = Verification.of_upload(
            result, (lambda: archive.verdict_now(session, doc)) if doc else (lambda: result.verdict), tz_of(services)
        )
        if has_writes(session):
            session.commit()
        return v

    try:
        v = await run_in_threadpool(check)
    except VerifierBusy as exc:
        v = Verification.refused(exc.code, exc.message, exc.http_status)
        UPLOADS.labels("busy").inc()
        return _answer(request, v, retry_after=getattr(exc, "retry_after", None))
    UPLOADS.labels(_outcome(v)).inc()
    return _answer(request, v)
