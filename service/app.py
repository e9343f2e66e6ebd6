"""The ASGI application: the two HTTP faces side by side, error handling, start-up.

This is the composition root of the web server, the one module that mounts both faces (the JSON
API of ``service.api`` and the pages of ``service.web``); the faces never import each other.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import __version__, api, web
from service.accounts.errors import NotAuthenticated, PasswordChangeRequired, TooManyRequests
from service.clock import SYSTEM_CLOCK, Clock
from service.container import Services
from service.errors import DocsignError, InvalidInput, NotFoundForUser
from service.http import ops
from service.http.csrf import csrf_protect
from service.http.deps import UserDep
from service.settings import Settings, get_settings
from service.storage.base import REQUEST_PATIENCE
from service.web.common import LoginRequired, error_page, login_redirect

if TYPE_CHECKING:
    from service.documents.convert import Converter

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "web" / "static"

_FIELD_WORDS = {
    "missing": "必须填写",
    "int_parsing": "应为整数",
    "datetime_from_date_parsing": "日期时间格式不正确",
    "date_from_datetime_parsing": "日期格式不正确",
    "string_too_short": "不能为空或过短",
    "string_too_long": "过长",
    "bool_parsing": "应为 true 或 false",
    "json_invalid": "不是有效的 JSON",
    "greater_than_equal": "过小",
    "less_than_equal": "过大",
    "datetime_parsing": "日期时间格式不正确",
    "date_parsing": "日期格式不正确",
    "model_attributes_type": "格式不正确",
}


def _error(exc: DocsignError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


def create_app(
    settings: Settings | None = None,
    clock: Clock | None = None,
    *,
    warm: bool = True,
    converter: Converter | None = None,
) -> FastAPI:
    """The app. ``warm`` starts LibreOffice and the upload checkers in the background as it
    starts, so that the first issue and the first upload do not wait for them; without it (a
    test's short-lived app) each starts when first needed. ``converter`` shares a warm
    LibreOffice pool that outlives the app (tests)."""
    settings = settings or get_settings()
    settings.check_ready()
    clock = clock or SYSTEM_CLOCK

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.build(settings, clock, converter=converter)
        services.start()
        app.state.service = services
        if warm:
            threading.Thread(target=_warm, args=(services,), daemon=True).start()
        try:
            yield
        finally:
            try:
                services.write_checkpoint()  # the logs' heads as the server stops
            except Exception as exc:  # never keep a stopping server from closing
                log.warning("no audit checkpoint at shutdown: %s", type(exc).__name__)
            services.close()

    app = FastAPI(
        title="控辍保学文书服务 API",
        version=__version__,
        description="签发、在线签署、验真与归档控辍保学文书。错误以 JSON 返回：code（稳定的错误码）与 message（中文说明）。",
        lifespan=lifespan,
        # every route, including those added later: cookie-authenticated writes need the CSRF token
        dependencies=[Depends(csrf_protect)],
        # in production the API's description is for signed-in users only (below)
        docs_url=None if settings.production else "/docs",
        redoc_url=None if settings.production else "/redoc",
        openapi_url=None if settings.production else "/openapi.json",
    )
    if settings.production:

        @app.get("/openapi.json", include_in_schema=False)
        def private_openapi(user: UserDep) -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False)
        def private_docs(user: UserDep) -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - 接口文档")

    @app.exception_handler(DocsignError)
    async def docsign_error(request: Request, exc: DocsignError) -> Response:
        if _is_page(request):
            if isinstance(exc, NotAuthenticated):
                return login_redirect(LoginRequired(request.url.path))
            if isinstance(exc, PasswordChangeRequired):
                return RedirectResponse("/password", status_code=303)
            return error_page(request, exc)
        return _error(exc)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return login_redirect(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path")]
            errors.append({"field": ".".join(loc), "message": _FIELD_WORDS.get(e.get("type", ""), "格式不正确")})
        summary = "；".join(f"{e['field'] or '请求'}：{e['message']}" for e in errors[:5])
        return JSONResponse(
            {"code": "INVALID_INPUT", "message": f"请求有误：{summary}。", "details": {"errors": errors}},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {
            400: ("UPLOAD_INVALID", "请求内容无法解析：表单或上传的文件不完整、过大或格式不对，请重新提交。"),
            404: ("NOT_FOUND", "没有这个地址。"),
            405: ("METHOD_NOT_ALLOWED", "该地址不支持这种请求方法。"),
        }
        code, message = codes.get(exc.status_code, ("HTTP_ERROR", str(exc.detail)))
        if _is_page(request):
            return error_page(request, DocsignError(message), status_code=exc.status_code, code=code)
        return JSONResponse({"code": code, "message": message}, status_code=exc.status_code)

    @app.exception_handler(OverflowError)
    async def number_too_large(request: Request, exc: OverflowError) -> Response:
        """A number in the address or the body beyond what the database stores names nothing."""
        error = NotFoundForUser("没有这个编号的对象：编号超出范围。")
        return error_page(request, error) if _is_page(request) else _error(error)

    @app.exception_handler(DataError)
    async def database_refused(request: Request, exc: DataError) -> Response:
        """The database refused a value (a number out of its range, say): the request's fault."""
        error = InvalidInput("请求中的数值超出范围或格式不被接受。")
        return error_page(request, error) if _is_page(request) else _error(error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"code": "INTERNAL_ERROR", "message": "服务内部错误，请稍后重试；如果反复出现，请联系管理员。"},
            status_code=500,
        )

    for router in (*api.ROUTERS, *web.ROUTERS, ops.router):
        app.include_router(router)
    app.add_middleware(BodyLimit, limit=max(settings.max_pdf_bytes, settings.max_sheet_bytes) + 1024 * 1024)
    app.add_middleware(SecurityHeaders, hsts=settings.cookies_secure)
    app.add_middleware(StorePatience, seconds=settings.s3_request_retry_seconds)
    app.add_middleware(ops.RequestMetrics)  # every answer counted, refusals included
    app.add_middleware(ops.RequestIds)  # outermost: every log line of a request carries its id
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["运维"], summary="服务是否在运行")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


#: Only the app's own scripts and styles (style attributes for bars and page overlays are allowed,
#: no <style> or <script> elements of anyone else's), no framing, no plug-ins.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Headers for a public site on every response: a strict Content-Security-Policy, no MIME
    sniffing, no framing, no referrer carrying a verification code elsewhere, HSTS when served over
    HTTPS, and ``Cache-Control: no-store`` on everything but the static files, since pages, API
    answers and document images carry personal data."""

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        headers = [
            (b"content-security-policy", CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
        ]
        if hsts:
            headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if static or k.lower() != b"cache-control"]
                extra = [] if static else [(b"cache-control", b"no-store")]
                message = {**message, "headers": [*kept, *self.headers, *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class StorePatience:
    """While a request is answered, an unreachable object store is retried for ``seconds`` only,
    then answered 503 ARCHIVE_UNAVAILABLE (a download fails fast with a message, not after a
    minute's wait); background work keeps the store's whole patience."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = REQUEST_PATIENCE.set(self.seconds)  # copied into the threads that serve the request
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_PATIENCE.reset(token)


class BodyLimit:
    """Refuses a request body larger than ``limit`` before it is spooled to disk or memory: by its
    Content-Length at once, or, for a chunked upload, as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if too_large:
                return  # the app's answer to a cut-off body is replaced by ours
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ClientDisconnect:
            if not too_large:
                raise
        if too_large and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        mb = self.limit // (1024 * 1024)
        body = json.dumps(
            {"code": "UPLOAD_TOO_LARGE", "message": f"上传的内容过大：最大约 {mb} MB。"}, ensure_ascii=False
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _is_page(request: Request) -> bool:
    """A browser asking for a page (not the JSON API, not a program)."""
    path = request.url.path
    if path.startswith(("/api/", "/static/", "/pki/")) or path in ("/openapi.json", "/healthz", "/readyz", "/metrics"):
        return False
    return "text/html" in request.headers.get("accept", "")


def _warm(services: Services) -> None:
    # Under the scale-out profile the workers convert the batches: a web process starts soffice
    # only if it converts something itself (a single document, a draft).
    if not services.settings.scale_out:
        try:
            services.engine.converter.warm_up()
        except DocsignError as exc:  # reported again, with the same message, when a conversion is attempted
            log.warning("LibreOffice did not start: %s", exc.message)
    try:
        services.upload_verifier.warm()
    except OSError as exc:  # likewise: tried again at the first upload
        log.warning("upload checkers did not start: %s", exc)
