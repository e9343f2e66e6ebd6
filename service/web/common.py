"""What every page module shares: the templates, the signed-in user of a page, redirects, errors."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from service.accounts.errors import PasswordChangeRequired
from service.accounts.models import User
from service.accounts.scope import may_export_full
from service.errors import DocsignError
from service.http.deps import PASSWORD_CHANGE_PATHS, ServicesDep, optional_user
from service.http.exports import PURPOSES

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
# the export forms (_export.html): the purposes offered, and whether to offer full numbers
templates.env.globals["export_purposes"] = PURPOSES
templates.env.globals["may_export_full"] = may_export_full


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def page_user(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise LoginRequired(request.url.path)
    if user.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise PasswordChangeRequired()  # the app sends a page to /password
    return user


PageUser = Annotated[User, Depends(page_user)]


def tz_of(services: ServicesDep) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(services.settings.timezone)


def render(request: Request, name: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("page_url", form_page_url(request))
    return templates.TemplateResponse(request, name, {"user": user, "flash": None, **context}, status_code=status_code)


def form_page_url(request: Request) -> str | None:
    """For a page rendered in answer to a POST (a refused form: a success redirects), the page the
    form was on, which the page's script puts in the address bar: the form comes back as typed, and
    the address is the form's own (not ``/cases/7/attempts``), so a reload or a shared link opens it
    instead of resending the form. The form's page is the Referer, which the app sends same-origin."""
    if request.method != "POST":
        return None
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or not referer.path.startswith("/") or referer.path == request.url.path:
        return None
    return referer.path + (f"?{referer.query}" if referer.query else "")


def fragment(request: Request, name: str, **context: Any) -> HTMLResponse:
    """A piece of a page that htmx swaps in (a job's progress bar)."""
    return templates.TemplateResponse(request, name, context)


def flash_redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def form_errors(exc: DocsignError) -> list[dict[str, Any]]:
    """The row or field errors a domain error carries, for a page to list."""
    return list(exc.details.get("errors", [])) if isinstance(exc.details, dict) else []


def error_page(
    request: Request, exc: DocsignError, status_code: int | None = None, code: str | None = None
) -> Response:
    heading = {404: "未找到", 403: "没有权限", 401: "请先登录", 429: "请求过于频繁"}.get(
        status_code or exc.http_status, "出错了"
    )
    return render(
        request,
        "error.html",
        None,
        status_code=status_code or exc.http_status,
        heading=heading,
        message=exc.message,
        code=code or exc.code,
    )


def login_redirect(exc: LoginRequired) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)
