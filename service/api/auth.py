from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Request, Response

from service.accounts.errors import AuthFailed, TooManyRequests
from service.accounts.schemas import LoginIn, TokenIn, TokenOut, UserOut
from service.accounts.service import authenticate, create_token, end_session, start_session
from service.api.common import user_out
from service.api.deps import SESSION_COOKIE, SessionDep, StateDep, UserDep, client_address
from service.audit.service import Actor, record

router = APIRouter(prefix="/api/auth", tags=["登录"])


@router.post("/login", response_model=UserOut, summary="用户名密码登录（设置会话 Cookie）")
def login(body: LoginIn, request: Request, response: Response, state: StateDep, session: SessionDep) -> UserOut:
    client = client_address(request, state)
    wait = state.login_limit.hit("login:" + client)
    if wait:
        raise TooManyRequests(wait, f"登录尝试过于频繁，请 {wait} 秒后再试。")
    now = state.clock.now()
    try:
        user = authenticate(session, body.username, body.password)
    except AuthFailed:
        session.rollback()
        record(
            session, Actor(None, body.username[:64], None, client), "auth.login_failed", "user", body.username[:64], now
        )
        session.commit()
        raise
    token = start_session(session, user, now, state.settings.session_hours)
    record(session, Actor(user.id, user.display_name, user.unit_id, client), "auth.login", "user", user.id, now)
    session.commit()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=state.settings.secure_cookies,
        max_age=state.settings.session_hours * 3600,
        path="/",
    )
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
