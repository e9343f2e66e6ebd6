"""Public verification: what a parent sees after scanning a notice's QR code, and what a program gets.

``/v/{code}`` answers a browser with a page and a program (``Accept: application/json`` or
``?format=json``) with JSON. Every answer, for a real code or an unknown one, takes at least
``verify_min_seconds`` and costs one indexed lookup of the code's hash, so neither timing nor the
response tells a guesser anything. Each client is limited to ``verify_rate_per_minute`` lookups.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from service.accounts.errors import TooManyRequests
from service.archive.schemas import Verification
from service.documents.codes import normalize_code
from service.documents.registry import GUARDIAN_NOTICES
from service.errors import DocsignError, UploadInvalid
from service.http.deps import ServicesDep, SessionDep, client_address
from service.http.uploads import read_upload
from service.web.common import templates, tz_of

router = APIRouter(tags=["公开验证"])


def _wants_json(request: Request) -> bool:
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _answer(request: Request, v: Verification, code_value: str = "", code_error: str = "") -> Response:
    if _wants_json(request):
        return JSONResponse(v.as_json(), status_code=v.status_code)
    return templates.TemplateResponse(
        request,
        "verify.html",
        {"page_title": v.verdict, "result": v, "code_value": code_value, "code_error": code_error},
        status_code=v.status_code,
    )


def _limit(request: Request, services: ServicesDep) -> None:
    wait = services.verify_limit.hit("verify:" + client_address(request, services.settings))
    if wait:
        raise TooManyRequests(wait, f"查询过于频繁，请 {wait} 秒后再试。")


def _floor(started: float, services: ServicesDep) -> None:
    remaining = services.settings.verify_min_seconds - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)


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
    started = time.monotonic()
    _limit(request, services)
    archive = services.archive
    try:
        doc = archive.find(session, code)
        if doc is None:
            v = Verification.not_found()
        else:
            v = Verification.of_document(doc, lambda: archive.verdict(doc), tz_of(services))
            archive.opened(session, doc)
            session.commit()
    finally:
        _floor(started, services)
    return _answer(request, v, code_value=code[:64])


@router.post("/v/{code}/confirm", summary="监护人确认已阅知通知书", response_class=Response)
def confirm_receipt(code: str, request: Request, services: ServicesDep, session: SessionDep) -> Response:
    started = time.monotonic()
    _limit(request, services)
    archive = services.archive
    try:
        doc = archive.find(session, code)
        if doc is None or doc.kind not in GUARDIAN_NOTICES:
            v = Verification.not_found()
        else:
            archive.confirm_receipt(session, doc, client_address(request, services.settings))
            session.commit()
            v = Verification.of_document(doc, lambda: archive.verdict(doc), tz_of(services))
            if doc.confirmed_at:
                v.summary += " 感谢您确认已阅知，学校已收到您的回执。"
    finally:
        _floor(started, services)
    if _wants_json(request):
        return _answer(request, v)
    return RedirectResponse(f"/v/{normalize_code(code)}", status_code=303) if v.found else _answer(request, v)


@router.post("/v/check", summary="上传 PDF 核对：与归档比对并验证签名，说明哪里不对", response_class=Response)
async def verify_upload(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="文件")],
) -> Response:
    _limit(request, services)
    try:
        data = await read_upload(file, services.settings.max_pdf_bytes, "PDF 文件")
        if not data.startswith(b"%PDF-"):
            raise UploadInvalid("上传的文件不是 PDF 文件。")
    except DocsignError as exc:
        return _answer(request, Verification.refused(exc.code, exc.message, exc.http_status))

    def check() -> Verification:
        result = services.archive.check_upload(session, data)
        doc = result.version.document if result.version else None
        return Verification.of_upload(
            result, (lambda: services.archive.verdict(doc)) if doc else (lambda: result.report), tz_of(services)
        )

    return _answer(request, await run_in_threadpool(check))
