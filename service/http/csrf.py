"""CSRF defence for every cookie-authenticated write, pages and JSON API alike.

Installed once as an application-wide dependency (``service.app``), so a route added later is
covered without knowing about it. A write (any method but GET, HEAD, OPTIONS) that carries a
session cookie must

- come from this site: an ``Origin`` (or, failing that, ``Referer``) naming another host is refused
  (for every write, with a session or not: a login posted from another site is refused too);
- carry the session's CSRF token (``csrf_token_for``) in the ``X-CSRF-Token`` header or the
  ``csrf_token`` form field. The pages' script (``static/app.js``) adds it to every same-origin
  form, htmx request and ``fetch`` by itself, from the ``docsign_csrf`` cookie.

Requests authenticated by ``Authorization: Bearer`` are programs, not browsers: exempt. So are the
public verification pages under ``/v``, which never act with a session.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import Request

from service.errors import DocsignError
from service.http.deps import CSRF_FIELD, CSRF_HEADER, csrf_token_for, session_token
from service.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CrossSiteRequest(DocsignError):
    code = "CROSS_SITE_REQUEST"
    http_status = 403
    default_message = "请求来自其他网站，已拒绝。请在本系统页面中操作。"


class CsrfTokenInvalid(DocsignError):
    code = "CSRF_TOKEN_INVALID"
    http_status = 403
    default_message = "页面已过期或请求缺少表单令牌，已拒绝。请刷新页面后重新提交。"


def _public(path: str) -> bool:
    return path == "/v" or path.startswith("/v/")


async def csrf_protect(request: Request) -> None:
    if request.method in SAFE_METHODS or _public(request.url.path):
        return
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    # Another site's page never posts here, with a session or without one: a login or an
    # activation posted from elsewhere would sign the browser in to an account of its choosing.
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is not None:
        host = urlsplit(origin).netloc
        if origin == "null" or host != request.headers.get("host"):
            raise CrossSiteRequest()
    settings: Settings = request.app.state.service.settings
    session = session_token(request, settings)
    if not session:
        return  # nothing to ride on: the route answers NOT_AUTHENTICATED itself if it needs a user
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()  # cached on the request: the route reads the same form
        field = form.get(CSRF_FIELD)
        token = field if isinstance(field, str) else None
    if not token or not hmac.compare_digest(token, csrf_token_for(settings, session)):
        raise CsrfTokenInvalid()
