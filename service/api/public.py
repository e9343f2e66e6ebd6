"""Public verification: what a parent sees after scanning a notice's QR code, and what a program gets.

``/v/{code}`` answers a browser with a page and a program (``Accept: application/json`` or
``?format=json``) with JSON. Every answer, for a real code or an unknown one, takes at least
``verify_min_seconds`` and costs one indexed lookup of the code's hash, so neither timing nor the
response tells a guesser anything. Each client is limited to ``verify_rate_per_minute`` lookups.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import zoneinfo
from pathlib import Path
from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from service.accounts.errors import TooManyRequests
from service.api.common import read_upload
from service.api.deps import SessionDep, StateDep, client_address
from service.archive.models import STATUS_TITLES, Document, DocumentStatus
from service.archive.service import find_by_code, find_version_by_hash
from service.audit.service import Actor, record
from service.campaigns.errors import UploadInvalid
from service.documents.codes import normalize_code
from service.errors import DocsignError

router = APIRouter(tags=["公开验证"])
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "web" / "templates"))

FIELD_LABELS = {"school_name": "学校", "report_by": "报到截止日期", "office_name": "街道教育办", "year": "年度"}


def _wants_json(request: Request) -> bool:
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _cn_date(value: Any) -> str:
    try:
        d = dt.date.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f"{d.year}年{d.month}月{d.day}日"


class Verification:
    """One answer, rendered as JSON or as the page."""

    def __init__(
        self,
        *,
        found: bool,
        genuine: bool,
        verdict: str,
        tone: str,
        summary: str,
        facts: list[tuple[str, str]] | None = None,
        sha256: str | None = None,
        problems: list[str] | None = None,
        data: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> None:
        self.found, self.genuine, self.verdict, self.tone, self.summary = found, genuine, verdict, tone, summary
        self.facts, self.sha256, self.problems = facts or [], sha256, problems or []
        self.data, self.status_code = data or {}, status_code
        self.can_confirm = False

    def as_json(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "genuine": self.genuine,
            "verdict": self.verdict,
            "summary": self.summary,
            "sha256": self.sha256,
            "problems": self.problems,
            **self.data,
        }


def _answer(request: Request, v: Verification, code_value: str = "", code_error: str = "") -> Response:
    if _wants_json(request):
        return JSONResponse(v.as_json(), status_code=v.status_code)
    return templates.TemplateResponse(
        request,
        "verify.html",
        {"page_title": v.verdict, "result": v, "code_value": code_value, "code_error": code_error},
        status_code=v.status_code,
    )


def _limit(request: Request, state: StateDep) -> None:
    wait = state.verify_limit.hit("verify:" + client_address(request, state))
    if wait:
        raise TooManyRequests(wait, f"查询过于频繁，请 {wait} 秒后再试。")


def _floor(started: float, state: StateDep) -> None:
    remaining = state.settings.verify_min_seconds - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)


NOT_FOUND = Verification(
    found=False,
    genuine=False,
    verdict="未找到",
    tone="bad",
    summary="没有与该验证码对应的文书。请核对验证码；如确认输入无误，这份文书可能不是真实的，请向发文单位核实。",
    status_code=404,
)


def describe(doc: Document, state: StateDep) -> Verification:
    tz = zoneinfo.ZoneInfo(state.settings.timezone)
    pub = doc.public
    facts = [
        ("文书", pub.get("title", "")),
        ("发文单位", pub.get("issuer", "")),
        ("发文日期", _cn_date(pub.get("date", ""))),
    ]
    for key, label in FIELD_LABELS.items():
        if key in pub:
            value = _cn_date(pub[key]) if key == "report_by" else str(pub[key])
            facts.append((label, value))
    if "subject" in pub:
        facts.append(("学生", pub["subject"]))
    if "guardian" in pub:
        facts.append(("监护人", pub["guardian"]))
    status = DocumentStatus(doc.status)
    facts.append(("状态", STATUS_TITLES[status]))
    problems = []
    if status == DocumentStatus.REVOKED:
        verdict, tone, genuine = "已撤回", "warn", False
        when = doc.revoked_at.astimezone(tz) if doc.revoked_at else None
        summary = (
            f"这份文书由发文单位签发，但已于 {when:%Y年%m月%d日} 撤回，不再有效。"
            if when
            else "这份文书已撤回，不再有效。"
        )
        # The reason is free text staff typed (it may name the child): it stays off the public page.
        problems.append("如有疑问，请联系发文单位。")
    elif status == DocumentStatus.SUPERSEDED:
        verdict, tone, genuine = "已被替代", "warn", False
        summary = "这份文书已由发文单位重新签发的新文书替代，请以新文书为准。"
    else:
        report = state.engine.verify(state.engine.archive.get(doc.current_sha256))
        genuine = report.genuine
        if genuine:
            verdict, tone = "真实有效", "ok"
            summary = f"这是{pub.get('issuer', '发文单位')}签发的真实文书，签章完整、未被改动。"
        else:
            verdict, tone = "异常", "bad"
            summary = "归档中的文书未通过签名验证，请联系发文单位。"
            problems = [p.message for p in report.all_problems]
    data = {
        "status": doc.status,
        "status_title": STATUS_TITLES[status],
        "title": pub.get("title"),
        "issuer": pub.get("issuer"),
        "date": pub.get("date"),
        "fields": {k: pub[k] for k in (*FIELD_LABELS, "subject", "guardian") if k in pub},
        "revoked_at": doc.revoked_at.isoformat() if doc.revoked_at else None,
    }
    return Verification(
        found=True,
        genuine=genuine,
        verdict=verdict,
        tone=tone,
        summary=summary,
        facts=facts,
        sha256=doc.current_sha256,
        problems=problems,
        data=data,
    )


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


GUARDIAN_NOTICES = ("enrollment_notice", "return_notice", "deadline_return_notice")


def _receipt(v: Verification, doc: Document, state: StateDep) -> Verification:
    """A guardian notice's page offers 已阅知 (and says when it was given)."""
    if doc.kind in GUARDIAN_NOTICES and doc.status == DocumentStatus.VALID:
        if doc.confirmed_at is not None:
            local = doc.confirmed_at.astimezone(zoneinfo.ZoneInfo(state.settings.timezone))
            v.facts.append(("监护人确认", f"已于 {local:%Y年%m月%d日 %H:%M} 确认阅知"))
        else:
            v.can_confirm = True
        v.data["confirmed"] = doc.confirmed_at is not None
    return v


@router.get("/v/{code}", summary="扫码验真：文书是否真实有效（页面，或 JSON）", response_class=Response)
def verify_code(code: str, request: Request, state: StateDep, session: SessionDep) -> Response:
    started = time.monotonic()
    _limit(request, state)
    try:
        doc = find_by_code(session, code)
        if doc is None:
            v = NOT_FOUND
        else:
            v = _receipt(describe(doc, state), doc, state)
            if doc.kind in GUARDIAN_NOTICES:  # the school sees that the notice was opened
                doc.opened_count += 1
                if doc.opened_at is None:
                    doc.opened_at = state.clock.now()
                session.commit()
    finally:
        _floor(started, state)
    return _answer(request, v, code_value=code[:64])


@router.post("/v/{code}/confirm", summary="监护人确认已阅知通知书", response_class=Response)
def confirm_receipt(code: str, request: Request, state: StateDep, session: SessionDep) -> Response:
    started = time.monotonic()
    _limit(request, state)
    try:
        doc = find_by_code(session, code)
        if doc is None or doc.kind not in GUARDIAN_NOTICES:
            v = NOT_FOUND
        else:
            if doc.confirmed_at is None and doc.status == DocumentStatus.VALID:
                doc.confirmed_at = state.clock.now()
                record(
                    session,
                    Actor(None, "监护人（验真页面）", None, client_address(request, state)),
                    "notice.confirm",
                    "document",
                    doc.id,
                    doc.confirmed_at,
                )
                session.commit()
            v = _receipt(describe(doc, state), doc, state)
            v.summary += " 感谢您确认已阅知，学校已收到您的回执。" if doc.confirmed_at else ""
    finally:
        _floor(started, state)
    if _wants_json(request):
        return _answer(request, v)
    return RedirectResponse(f"/v/{normalize_code(code)}", status_code=303) if v.found else _answer(request, v)


@router.post("/v/check", summary="上传 PDF 核对：与归档比对并验证签名，说明哪里不对", response_class=Response)
async def verify_upload(
    request: Request, state: StateDep, session: SessionDep, file: Annotated[UploadFile, File(description="文件")]
) -> Response:
    _limit(request, state)
    try:
        data = await read_upload(file, state.settings.max_pdf_bytes, "PDF 文件")
        if not data.startswith(b"%PDF-"):
            raise UploadInvalid("上传的文件不是 PDF 文件。")
    except DocsignError as exc:
        v = Verification(
            found=False,
            genuine=False,
            verdict="无法核对",
            tone="bad",
            summary=exc.message,
            problems=[],
            data={"code": exc.code},
            status_code=exc.http_status,
        )
        return _answer(request, v)
    return await run_in_threadpool(_check_upload, request, state, session, data)


def _check_upload(request: Request, state: StateDep, session: SessionDep, data: bytes) -> Response:
    sha256 = hashlib.sha256(data).hexdigest()
    report = state.engine.verify(data)
    version = find_version_by_hash(session, sha256)
    problems = [p.message for p in report.all_problems]
    if version is None:
        if report.genuine:
            problems.append("签名有效，但本系统的档案中没有这个文件，无法确认是本系统签发的文书。")
        v = Verification(
            found=False,
            genuine=False,
            verdict="不是真实有效的文书",
            tone="bad",
            summary="这个文件与档案中的任何文书都不一致：可能被改动过，或不是本系统签发的。",
            sha256=sha256,
            problems=problems,
            data={
                "signatures": [s.to_dict() for s in report.signatures],
                "codes": [p.code for p in report.all_problems] + (["UNKNOWN_FILE"] if report.genuine else []),
            },
        )
        return _answer(request, v)
    doc = version.document
    described = describe(doc, state)
    latest = version.sha256 == doc.current_sha256
    if not report.genuine:
        described = Verification(
            found=True,
            genuine=False,
            verdict="不是真实有效的文书",
            tone="bad",
            summary="文件签名未通过验证。",
            facts=described.facts,
            sha256=sha256,
            problems=problems,
        )
    elif not latest and described.genuine:
        described = Verification(
            found=True,
            genuine=True,
            verdict="真实，但不是最新版本",
            tone="warn",
            summary="这是该文书较早的版本；此后还有单位签署，请以最新版本为准。",
            facts=described.facts,
            sha256=sha256,
            data=described.data,
        )
    else:
        described.sha256 = sha256
    return _answer(request, described)


@router.get("/pki/root.crt", summary="本地根证书（导入后 Adobe 等软件可验证签名）", response_class=Response)
def root_certificate(state: StateDep) -> Response:
    pem = state.engine.pki.root_certificate().public_bytes(serialization.Encoding.PEM)
    return Response(
        pem,
        media_type="application/x-pem-file",
        headers={"Content-Disposition": "attachment; filename=docsign-root.crt"},
    )


@router.get("/pki/{which}.crl", summary="证书吊销列表", response_class=Response)
def crl(which: str, state: StateDep) -> Response:
    crls = {c.issuer: c for c in state.engine.pki.crls()}
    issuer = {
        "root": state.engine.pki.root_certificate().subject,
        "issuing": state.engine.pki.issuing_certificate().subject,
    }.get(which)
    if issuer is None or issuer not in crls:
        return JSONResponse({"code": "NOT_FOUND", "message": "没有这个吊销列表。"}, status_code=404)
    return Response(crls[issuer].public_bytes(serialization.Encoding.DER), media_type="application/pkix-crl")
