"""Signing in and out, and where each role lands."""

from __future__ import annotations

import zoneinfo
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from service.accounts.errors import (
    ActivationExpired,
    ActivationInvalid,
    ActivationSignedIn,
    AuthFailed,
    TooManyRequests,
    TotpNotEnrolled,
    TotpReplayed,
    TotpRequired,
)
from service.accounts.models import ROLE_TITLES, Role, User
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
    if user.role == Role.AUDIT_ADMIN:
        return RedirectResponse("/audit", status_code=303)
    if user.role == Role.SYSTEM_ADMIN:
        return RedirectResponse("/units", status_code=303)
    if user.role == Role.SECURITY_ADMIN:
        return RedirectResponse("/account/totp", status_code=303)
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
            signed = services.accounts.sign_in(
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
        except (TotpRequired, TotpNotEnrolled, TotpReplayed) as exc:
            errors["otp"] = exc.message
        else:
            target = "/password" if signed.user.must_change_password else _safe_next(next)
            response: Response = RedirectResponse(target, status_code=303)
            if signed.notes:  # the holder reads them before going on
                response = render(request, "login_notes.html", signed.user, notes=signed.notes, target=target)
            set_session_cookie(response, signed.token, services.settings)
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


# --- activation: the holder of a new or reset account, with the link handed to them -------------


def _activation_page(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    token: str,
    status_code: int = 200,
    **context: object,
) -> Response:
    try:
        row = services.accounts.activation(session, token)
    except DocsignError as exc:
        return render(request, "activate.html", None, problem=exc.message, status_code=exc.http_status)
    uri = context.pop("uri", None) or services.accounts.pending_activation_uri(row)
    info = {
        "username": row.user.username,
        "display_name": row.user.display_name,
        "unit_name": row.user.unit.name,
        "role_title": ROLE_TITLES.get(Role(row.user.role), row.user.role),
        "reason": row.reason,
        "totp_required": services.accounts.require_totp,
    }
    expires = row.expires_at.astimezone(zoneinfo.ZoneInfo(services.settings.timezone)).strftime("%Y年%m月%d日 %H:%M")
    context.setdefault("errors", {})
    return render(
        request,
        "activate.html",
        None,
        status_code=status_code,
        token=token,
        info=info,
        expires=expires,
        uri=uri,
        qr=qr_svg(str(uri)) if uri else None,
        codes=None,
        active=False,
        problem=None,
        **context,
    )


@router.get("/activate/{token}")
def activate_page(request: Request, services: ServicesDep, session: SessionDep, token: str) -> Response:
    return _activation_page(request, services, session, token)


@router.post("/activate/{token}")
def activate(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    token: str,
    password: Annotated[str, Form()] = "",
    password_again: Annotated[str, Form()] = "",
) -> Response:
    """Step one: the password (and, where a second factor is required, a new secret to enrol)."""
    if password != password_again:
        return _activation_page(
            request, services, session, token, 422, errors={"password_again": "两次输入的密码不一致。"}
        )
    signed_in = optional_user(request, services, session)
    try:
        step = services.accounts.activate(
            session, client_address(request, services.settings), token, password, signed_in
        )
        session.commit()
    except (ActivationInvalid, ActivationExpired, ActivationSignedIn) as exc:
        session.rollback()
        return render(request, "activate.html", None, problem=exc.message, status_code=exc.http_status)
    except DocsignError as exc:
        session.rollback()
        return _activation_page(request, services, session, token, 422, errors={"password": exc.message})
    if step.otpauth_uri is None:
        return render(request, "activate.html", None, active=True, codes=None, problem=None)
    return _activation_page(request, services, session, token, uri=step.otpauth_uri)


@router.post("/activate/{token}/confirm")
def activate_confirm(
    request: Request, services: ServicesDep, session: SessionDep, token: str, code: Annotated[str, Form()] = ""
) -> Response:
    """Step two: the first code turns the second factor on and the account is active; the recovery
    codes are shown once."""
    signed_in = optional_user(request, services, session)
    try:
        codes = services.accounts.confirm_activation(
            session, client_address(request, services.settings), token, code, signed_in
        )
        session.commit()
    except (ActivationInvalid, ActivationExpired, ActivationSignedIn) as exc:
        session.rollback()
        return render(request, "activate.html", None, problem=exc.message, status_code=exc.http_status)
    except DocsignError as exc:
        session.rollback()
        return _activation_page(request, services, session, token, 422, errors={"code": exc.message})
    return render(request, "activate.html", None, codes=codes, active=True, problem=None)
