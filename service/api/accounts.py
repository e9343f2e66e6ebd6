from __future__ import annotations

import zoneinfo

from fastapi import APIRouter, Request, Response

from service.accounts import repository as accounts_repository
from service.accounts.models import Role
from service.accounts.schemas import (
    ActivateConfirmIn,
    ActivateIn,
    ActivateOut,
    ActivationInfo,
    ActivationLinkOut,
    DelegationIn,
    DelegationOut,
    DisableIn,
    ExpiryIn,
    LoginIn,
    LoginOut,
    NewUserOut,
    PasswordIn,
    RoleIn,
    TokenIn,
    TokenInfo,
    TokenOut,
    TotpConfirmIn,
    TotpConfirmOut,
    TotpStartOut,
    UserIn,
    UserOut,
)
from service.errors import NotFoundForUser
from service.http.deps import (
    DelegationObj,
    ScopeDep,
    ServicesDep,
    SessionDep,
    TokenObj,
    UnitObj,
    UserDep,
    UserObj,
    clear_session_cookie,
    client_address,
    optional_user,
    session_token,
    set_session_cookie,
)

router = APIRouter(prefix="/api", tags=["登录与账号"])


@router.post(
    "/auth/login",
    response_model=LoginOut,
    summary="用户名密码（和动态口令）登录，设置会话 Cookie；notes 为登录提醒（账号被重置、登录失败次数）",
)
def login(body: LoginIn, request: Request, response: Response, services: ServicesDep, session: SessionDep) -> LoginOut:
    client = client_address(request, services.settings)
    signed = services.accounts.sign_in(
        session, client, body.username, body.password, previous=session_token(request, services.settings), otp=body.otp
    )
    session.commit()
    set_session_cookie(response, signed.token, services.settings)
    return LoginOut.signed_in(signed.user, signed.notes)


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


@router.post("/auth/password", response_model=UserOut, summary="修改本人密码（其他会话随之失效）")
def change_password(
    body: PasswordIn, request: Request, response: Response, user: UserDep, services: ServicesDep, session: SessionDep
) -> UserOut:
    token = services.accounts.change_password(session, user, body.current_password, body.new_password)
    session.commit()
    if session_token(request, services.settings):
        set_session_cookie(response, token, services.settings)
    return UserOut.of(user)


@router.post("/auth/totp", response_model=TotpStartOut, summary="开通动态口令（第一步：取得验证器地址）")
def start_totp(user: UserDep, services: ServicesDep, session: SessionDep) -> TotpStartOut:
    uri = services.accounts.start_totp(session, user)
    session.commit()
    return TotpStartOut(otpauth_uri=uri)


@router.post("/auth/totp/confirm", response_model=TotpConfirmOut, summary="开通动态口令（第二步：输入 6 位数字确认）")
def confirm_totp(
    body: TotpConfirmIn, request: Request, response: Response, user: UserDep, services: ServicesDep, session: SessionDep
) -> TotpConfirmOut:
    codes, token = services.accounts.confirm_totp(session, user, body.code)
    session.commit()
    if session_token(request, services.settings):
        set_session_cookie(response, token, services.settings)
    return TotpConfirmOut(recovery_codes=codes)


@router.post("/auth/tokens", response_model=TokenOut, summary="为程序对接创建 API 令牌（有效期 1 到 365 天）")
def new_token(body: TokenIn, user: UserDep, services: ServicesDep, session: SessionDep) -> TokenOut:
    row, token = services.accounts.new_token(session, user, body.name, body.days, body.access, body.domains)
    session.commit()
    assert row.expires_at is not None
    return TokenOut(
        id=row.id, token=token, name=body.name, expires_at=row.expires_at, access=row.access, domains=row.domains
    )


@router.get("/auth/tokens", response_model=list[TokenInfo], summary="本人的 API 令牌")
def list_tokens(scope: ScopeDep, session: SessionDep) -> list[TokenInfo]:
    return [TokenInfo.of(t) for t in accounts_repository.own_tokens(session, scope)]


@router.post("/auth/tokens/{token_id}/revoke", response_model=TokenInfo, summary="吊销 API 令牌（立即失效）")
def revoke_token(token: TokenObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> TokenInfo:
    services.accounts.revoke_token(session, scope, token)
    session.commit()
    return TokenInfo.of(token)


@router.post(
    "/users/{user_id}/reset-password",
    response_model=ActivationLinkOut,
    summary="重置账号（安全管理员）：清除密码和动态口令、吊销令牌，返回交给本人的一次性激活链接",
)
def reset_password(user: UserObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> ActivationLinkOut:
    link = services.accounts.reset_password(session, scope, user)
    session.commit()
    return ActivationLinkOut(activation_url=link.url, expires_at=link.expires_at)


@router.post(
    "/users/{user_id}/disable", response_model=UserOut, summary="停用账号（系统管理员）：会话立即结束、令牌吊销"
)
def disable_user(
    body: DisableIn, user: UserObj, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> UserOut:
    services.accounts.disable(session, scope, user, body.reason)
    session.commit()
    return UserOut.of(user)


@router.post("/users/{user_id}/enable", response_model=UserOut, summary="重新启用停用的账号（系统管理员）")
def enable_user(user: UserObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> UserOut:
    services.accounts.enable(session, scope, user)
    session.commit()
    return UserOut.of(user)


@router.post(
    "/users/{user_id}/role",
    response_model=UserOut,
    summary="修改账号的角色（安全管理员；不能改为签署人或管理员）：会话结束、令牌吊销",
)
def change_role(body: RoleIn, user: UserObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> UserOut:
    services.accounts.change_role(session, scope, user, body.role)
    session.commit()
    return UserOut.of(user)


@router.put(
    "/users/{user_id}/expiry", response_model=UserOut, summary="设置临时账号的到期时间（系统管理员）；null 取消"
)
def set_expiry(body: ExpiryIn, user: UserObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> UserOut:
    services.accounts.set_expiry(session, scope, user, body.expires_at)
    session.commit()
    return UserOut.of(user)


@router.get("/users", response_model=list[UserOut], summary="本人可见单位的账号")
def list_users(scope: ScopeDep, session: SessionDep) -> list[UserOut]:
    scope.require(Role.BUREAU, Role.OFFICE, Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN)
    return [UserOut.of(u) for u in accounts_repository.users(session, scope)]


@router.post(
    "/users",
    response_model=NewUserOut,
    status_code=201,
    summary="为单位创建账号（系统管理员）；签署人账号（及不设初始密码的账号）返回交给本人的一次性激活链接",
)
def add_user(body: UserIn, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> NewUserOut:
    scope.require(Role.SYSTEM_ADMIN, message="只有系统管理员可以创建账号。")
    unit = accounts_repository.managed_unit(session, scope, body.unit_id)
    if unit is None:
        raise NotFoundForUser("未找到该单位。")
    user, link = services.accounts.add_user(
        session,
        scope,
        username=body.username,
        password=body.password,
        display_name=body.display_name,
        role=body.role,
        unit=unit,
    )
    session.commit()
    activation = None if link is None else ActivationLinkOut(activation_url=link.url, expires_at=link.expires_at)
    return NewUserOut(**UserOut.of(user).model_dump(), activation=activation)


# --- activation: the holder of a new or reset account, with the link handed to them -------------


def _activation_info(services: ServicesDep, session: SessionDep, token: str) -> ActivationInfo:
    row = services.accounts.activation(session, token)
    return ActivationInfo(
        username=row.user.username,
        display_name=row.user.display_name,
        unit_name=row.user.unit.name,
        role_title=UserOut.of(row.user).role_title,
        expires_at=row.expires_at,
        reason=row.reason,
        totp_required=services.accounts.require_totp,
        otpauth_uri=services.accounts.pending_activation_uri(row),
    )


@router.get("/activation/{token}", response_model=ActivationInfo, summary="激活链接对应的账号（不需登录）")
def activation_info(token: str, services: ServicesDep, session: SessionDep) -> ActivationInfo:
    return _activation_info(services, session, token)


@router.post(
    "/activation/{token}",
    response_model=ActivateOut,
    summary="激活账号第一步：本人设置密码；须用动态口令时返回验证器地址",
)
def activate(token: str, body: ActivateIn, request: Request, services: ServicesDep, session: SessionDep) -> ActivateOut:
    signed_in = optional_user(request, services, session)
    step = services.accounts.activate(
        session, client_address(request, services.settings), token, body.password, signed_in
    )
    session.commit()
    if step.otpauth_uri is None:
        return ActivateOut(active=True, note="账号已激活，请用新密码登录。")
    return ActivateOut(
        active=False,
        otpauth_uri=step.otpauth_uri,
        note="用手机验证器扫描或输入此地址，再把显示的 6 位数字提交到 POST /api/activation/{token}/confirm。",
    )


@router.post(
    "/activation/{token}/confirm",
    response_model=TotpConfirmOut,
    summary="激活账号第二步：输入验证器的 6 位数字，开通动态口令；返回恢复码（只显示一次）",
)
def confirm_activation(
    token: str, body: ActivateConfirmIn, request: Request, services: ServicesDep, session: SessionDep
) -> TotpConfirmOut:
    signed_in = optional_user(request, services, session)
    codes = services.accounts.confirm_activation(
        session, client_address(request, services.settings), token, body.code, signed_in
    )
    session.commit()
    return TotpConfirmOut(recovery_codes=codes)


@router.get("/units/{unit_id}/delegations", response_model=list[DelegationOut], summary="单位的签署委托")
def list_delegations(unit: UnitObj, scope: ScopeDep, session: SessionDep) -> list[DelegationOut]:
    return [DelegationOut.of(d) for d in accounts_repository.delegations_of(session, scope, unit)]


@router.post(
    "/units/{unit_id}/delegations",
    response_model=DelegationOut,
    status_code=201,
    summary="委托他人在一段时间内以本单位名义签署（单位负责人）",
)
def delegate(
    unit: UnitObj, body: DelegationIn, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> DelegationOut:
    user = accounts_repository.delegate_candidate(session, scope, unit, body.user_id)
    if user is None:
        raise NotFoundForUser("未找到该账号。")
    today = services.clock.now().astimezone(zoneinfo.ZoneInfo(services.settings.timezone)).date()
    row = services.accounts.delegate(
        session, scope, unit, user, starts_on=body.starts_on, ends_on=body.ends_on, reason=body.reason, today=today
    )
    session.commit()
    return DelegationOut.of(row)


@router.post("/delegations/{delegation_id}/revoke", response_model=DelegationOut, summary="撤销签署委托（立即失效）")
def revoke_delegation(
    delegation: DelegationObj, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> DelegationOut:
    services.accounts.revoke_delegation(session, scope, delegation)
    session.commit()
    return DelegationOut.of(delegation)
