from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Request, Response
from sqlalchemy.orm import Session

from service.accounts.errors import AuthFailed, TooManyRequests
from service.accounts.models import User
from service.accounts.schemas import LoginIn, TokenIn, TokenOut, UserOut
from service.accounts.service import authenticate, create_token, end_session, start_session
from service.api.common import user_out
from service.api.deps import SESSION_COOKIE, SessionDep, StateDep, UserDep, client_address
from service.api.state import ServiceState
from service.audit.service import Actor, record
from service.settings import Settings

router = APIRouter(prefix="/api/auth", tags=["登录"])


def sign_in(session: Session, state: ServiceState, client: str, username: str, password: str) -> tuple[User, str]:
    """Check a password login from ``client`` and open a session; returns the user and the session
    token. Every failure is recorded in the audit log before AuthFailed is raised; a client over
    the login rate limit gets TooManyRequests."""
    wait = state.login_limit.hit("login:" + client)
    if wait:
        raise TooManyRequests(wait, f"登录尝试过于频繁，请 {wait} 秒后再试。")
    now = state.clock.now()
    try:
        user = authenticate(session, username, password)
    except AuthFailed:
        session.rollback()
        record(session, Actor(None, username[:64], None, client), "auth.login_failed", "user", username[:64], now)
        session.commit()
        raise
    token = start_session(session, user, now, state.settings.session_hours)
    record(session, Actor(user.id, user.display_name, user.unit_id, client), "auth.login", "user", user.id, now)
    session.commit()
    return user, token


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        max_age=settings.session_hours * 3600,
        path="/",
    )


@router.post("/login", response_model=UserOut, summary="用户名密码登录（设置会话 Cookie）")
def login(body: LoginIn, request: Request, response: Response, state: StateDep, session: SessionDep) -> UserOut:
    user, token = sign_in(session, state, client_address(request, state), body.username, body.password)
    set_session_cookie(response, token, state.settings)
    return user_out(user)


@router.post("/logout", status_code=204, summary="退出登录")
def logout(
    response: Response, session: SessionDep, docsign_session: Annotated[str | None, Cookie()] = None
) -> Response:
    if docsign_session:
        end_session(session, docsign_session)
        session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response


@router.get("/me", response_model=UserOut, summary="当前登录的用户")
def me(user: UserDep) -> UserOut:
    return user_out(user)


@router.post("/tokens", response_model=TokenOut, summary="为程序对接创建 API 令牌")
def new_token(body: TokenIn, user: UserDep, state: StateDep, session: SessionDep) -> TokenOut:
    now = state.clock.now()
    token = create_token(session, user, body.name, now)
    record(
        session,
        Actor(user.id, user.display_name, user.unit_id),
        "auth.token_create",
        "user",
        user.id,
        now,
        name=body.name,
    )
    session.commit()
    return TokenOut(token=token, name=body.name)
