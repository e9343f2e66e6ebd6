from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from service.accounts.models import Role, User
from service.accounts.schemas import LoginIn, TokenIn, TokenOut, UserIn, UserOut
from service.errors import NotFoundForUser
from service.http.deps import (
    ScopeDep,
    ServicesDep,
    SessionDep,
    UserDep,
    clear_session_cookie,
    client_address,
    session_token,
    set_session_cookie,
)
from service.units.models import Unit

router = APIRouter(prefix="/api", tags=["登录与账号"])


@router.post("/auth/login", response_model=UserOut, summary="用户名密码登录（设置会话 Cookie）")
def login(body: LoginIn, request: Request, response: Response, services: ServicesDep, session: SessionDep) -> UserOut:
    client = client_address(request, services.settings)
    user, token = services.accounts.sign_in(
        session, client, body.username, body.password, previous=session_token(request, services.settings)
    )
    session.commit()
    set_session_cookie(response, token, services.settings)
    return UserOut.of(user)


@router.post("/auth/logout", status_code=204, summary="退出登录")
def logout(request: Request, response: Response, services: ServicesDep, session: SessionDep) -> Response:
    token = session_token(request, services.settings)
    if token:
        services.accounts.sign_out(session, token)
        session.commit()
    clear_session_cookie(response, services.settings)
    response.status_code = 204
    return response


@router.get("/auth/me", response_model=UserOut, summary="当前登录的用户")
def me(user: UserDep) -> UserOut:
    return UserOut.of(user)


@router.post("/auth/tokens", response_model=TokenOut, summary="为程序对接创建 API 令牌")
def new_token(body: TokenIn, user: UserDep, services: ServicesDep, session: SessionDep) -> TokenOut:
    token = services.accounts.new_token(session, user, body.name)
    session.commit()
    return TokenOut(token=token, name=body.name)


@router.get("/users", response_model=list[UserOut], summary="本人可见单位的账号")
def list_users(scope: ScopeDep, session: SessionDep) -> list[UserOut]:
    scope.require(Role.BUREAU, Role.OFFICE)
    users = session.scalars(select(User).where(User.unit_id.in_(scope.units)).order_by(User.id))
    return [UserOut.of(u) for u in users]


@router.post("/users", response_model=UserOut, status_code=201, summary="为单位创建账号（教体局）")
def add_user(body: UserIn, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> UserOut:
    unit = session.get(Unit, body.unit_id)
    if unit is None:
        raise NotFoundForUser("未找到该单位。")
    user = services.accounts.add_user(
        session,
        scope,
        username=body.username,
        password=body.password,
        display_name=body.display_name,
        role=body.role,
        unit=unit,
    )
    session.commit()
    return UserOut.of(user)
