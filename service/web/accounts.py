"""Signing in and out, and where each role lands."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from service.accounts.errors import AuthFailed, TooManyRequests, TotpNotEnrolled, TotpRequired
from service.accounts.models import Role, User
from service.documents.stamp import qr_matrix
from service.errors import DocsignError
from service.http.deps import (
    ServicesDep,
    SessionDep,
    clear_session_cookie,
    client_address,
    optional_user,
    session_token,
    set_session_cookie,
)
from service.web.common import PageUser, render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> Response:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.role == Role.BUREAU:
        return RedirectResponse("/dashboard", status_code=303)
    if user.role == Role.OFFICE:
        return RedirectResponse("/office", status_code=303)
    return RedirectResponse("/sign", status_code=303)


def _safe_next(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") else "/"


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", None, next=_safe_next(next), values={"username": ""}, errors={})


@router.post("/login")
def login(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    otp: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "请输入用户名。"
    if not password:
        errors["password"] = "请输入密码。"
    if not errors:
        client = client_address(request, services.settings)
        try:
            user, token = services.accounts.sign_in(
                session,
                client,
                username.strip(),
                password,
                previous=session_token(request, services.settings),
                otp=otp.strip() or None,
            )
            session.commit()
        except TooManyRequests as exc:
            errors["password"] = exc.message
        except AuthFailed as exc:
            errors["password"] = (
                "用户名或密码错误，请重新输入。" if exc.message == AuthFailed.default_message else exc.message
            )
        except (TotpRequired, TotpNotEnrolled) as exc:
            errors["otp"] = exc.message
        else:
            target = "/password" if user.must_change_password else _safe_next(next)
            response = RedirectResponse(target, status_code=303)
            set_session_cookie(response, token, services.settings)
            return response
    return render(request, "login.html", None, next=_safe_next(next), values={"username": username[:64]}, errors=errors)


@router.post("/logout")
def logout(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    token = session_token(request, services.settings)
    if token:
        services.accounts.sign_out(session, token)
        session.commit()
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, services.settings)
    return response


@router.get("/password")
def password_page(request: Request, user: PageUser) -> Response:
    return render(request, "password.html", user, errors={}, done=False)


@router.post("/password")
def change_password(
    request: Request,
    user: PageUser,
    services: ServicesDep,
    session: SessionDep,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
    new_password_again: Annotated[str, Form()] = "",
) -> Response:
    errors: dict[str, str] = {}
    if new_password != new_password_again:
        errors["new_password_again"] = "两次输入的新密码不一致。"
    else:
        try:
            token = services.accounts.change_password(session, user, current_password, new_password)
            session.commit()
        except AuthFailed as exc:
            session.rollback()
            errors["current_password"] = exc.message
        except DocsignError as exc:
            session.rollback()
            errors["new_password"] = exc.message
        else:
            response = render(request, "password.html", user, errors={}, done=True)
            set_session_cookie(response, token, services.settings)
            return response
    return render(request, "password.html", user, errors=errors, done=False, status_code=422)


def qr_svg(text: str) -> Markup:
    """``text`` as an inline SVG QR code (dark modules as one path), for a phone to scan off the screen."""
    rows = qr_matrix(text)
    n = len(rows)
    path = "".join(f"M{x} {y}h1v1h-1z" for y, row in enumerate(rows) for x, dark in enumerate(row) if dark)
    return Markup(
        f'<svg class="qr" role="img" aria-label="动态口令二维码" viewBox="-2 -2 {n + 4} {n + 4}" width="220" height="220" '
        f'shape-rendering="crispEdges"><rect x="-2" y="-2" width="{n + 4}" height="{n + 4}" fill="#fff"/>'
        f'<path d="{path}" fill="#000"/></svg>'
    )


@router.get("/account/totp")
def totp_page(request: Request, user: PageUser) -> Response:
    return render(request, "totp.html", user, uri=None, codes=None, errors={})


@router.post("/account/totp")
def totp_start(request: Request, user: PageUser, services: ServicesDep, session: SessionDep) -> Response:
    """Step one: a new secret, shown as the address a phone authenticator takes."""
    try:
        uri = services.accounts.start_totp(session, user)
        session.commit()
    except DocsignError as exc:
        session.rollback()
        return render(request, "totp.html", user, uri=None, codes=None, errors={"code": exc.message}, status_code=422)
    return render(request, "totp.html", user, uri=uri, qr=qr_svg(uri), codes=None, errors={})


@router.post("/account/totp/confirm")
def totp_confirm(
    request: Request, user: PageUser, services: ServicesDep, session: SessionDep, code: Annotated[str, Form()] = ""
) -> Response:
    """Step two: the first code turns it on; the recovery codes are shown once."""
    try:
        codes, token = services.accounts.confirm_totp(session, user, code)
        session.commit()
    except DocsignError as exc:
        session.rollback()
        uri = services.accounts.pending_totp_uri(user)
        qr = qr_svg(uri) if uri else None
        return render(
            request, "totp.html", user, uri=uri, qr=qr, codes=None, errors={"code": exc.message}, status_code=422
        )
    response = render(request, "totp.html", user, uri=None, codes=codes, errors={})
    set_session_cookie(response, token, services.settings)
    return response
