"""The FastAPI application: routers, error handling, start-up (migrations, warm LibreOffice)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import __version__
from service.accounts.errors import TooManyRequests
from service.api import assignments, auth, campaigns, documents, public, units
from service.api.state import ServiceState
from service.clock import SYSTEM_CLOCK, Clock
from service.errors import DocsignError
from service.settings import Settings, get_settings

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"

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


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    clock = clock or SYSTEM_CLOCK

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState.build(settings, clock)
        state.db.migrate()
        state.engine.pki.init()
        app.state.service = state
        # Start soffice now, in the background, so the first issue does not wait for it.
        threading.Thread(target=_warm, args=(state,), daemon=True).start()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="控辍保学文书服务 API",
        version=__version__,
        description="签发、在线签署、验真与归档控辍保学文书。错误以 JSON 返回：code（稳定的错误码）与 message（中文说明）。",
        lifespan=lifespan,
    )

    @app.exception_handler(DocsignError)
    async def docsign_error(request: Request, exc: DocsignError) -> JSONResponse:
        return _error(exc)

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
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: ("NOT_FOUND", "没有这个地址。"), 405: ("METHOD_NOT_ALLOWED", "该地址不支持这种请求方法。")}
        code, message = codes.get(exc.status_code, ("HTTP_ERROR", str(exc.detail)))
        return JSONResponse({"code": code, "message": message}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"code": "INTERNAL_ERROR", "message": "服务内部错误，请稍后重试；如果反复出现，请联系管理员。"},
            status_code=500,
        )

    for module in (auth, units, campaigns, assignments, documents, public):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["运维"], summary="服务是否在运行")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


def _warm(state: ServiceState) -> None:
    try:
        state.engine.converter.warm_up()
    except DocsignError as exc:  # reported again, with the same message, when a conversion is attempted
        log.warning("LibreOffice did not start: %s", exc.message)
