from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from service.accounts.models import NO_PASSWORD, ROLE_TITLES, ApiToken, Delegation, Role, User


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64, title="用户名")
    password: str = Field(min_length=1, max_length=256, title="密码")
    otp: str | None = Field(default=None, max_length=32, title="动态口令（6 位数字）或恢复码；开通动态口令的账号必填")


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    role_title: str
    unit_id: int
    unit_name: str
    unit_type: str
    totp_enabled: bool = False
    must_change_password: bool = False
    #: Waiting for its holder to activate it (no usable password yet).
    activation_pending: bool = False
    #: Usable (not disabled); a temporary account's end; when it last signed in.
    active: bool = True
    disabled_reason: str | None = None
    expires_at: dt.datetime | None = None
    last_login_at: dt.datetime | None = None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            role_title=ROLE_TITLES.get(Role(user.role), user.role),
            unit_id=user.unit_id,
            unit_name=user.unit.name,
            unit_type=user.unit.type,
            totp_enabled=user.totp_enabled_at is not None,
            must_change_password=user.must_change_password,
            activation_pending=user.password_hash == NO_PASSWORD,
            active=user.active,
            disabled_reason=user.disabled_reason,
            expires_at=user.expires_at,
            last_login_at=user.last_login_at,
        )


class DisableIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200, description="停用原因（写入审计日志，本人登录时可见）")


class RoleIn(BaseModel):
    role: str = Field(description="bureau_staff 或 office_staff（不能改为签署人）")


class ExpiryIn(BaseModel):
    expires_at: dt.datetime | None = Field(description="临时账号的到期时间（带时区）；null 表示不到期")


class LoginOut(UserOut):
    #: What the holder should know: a reset of the account, failed logins since the last login.
    notes: list[str] = Field(default_factory=list, description="登录提醒：账号被重置、上次登录以来的失败次数")

    @classmethod
    def signed_in(cls, user: User, notes: list[str]) -> LoginOut:
        return cls(**UserOut.of(user).model_dump(), notes=notes)


class UserIn(BaseModel):
    username: str = Field(min_length=3, max_length=64, title="用户名")
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        title="初始密码（仅限工作人员账号，至少 10 位；不填则得到激活链接。签署人账号不能填写）",
    )
    display_name: str = Field(min_length=1, max_length=64, title="姓名")
    role: str = Field(title="角色：bureau_staff、office_staff 或 unit_signer")
    unit_id: int = Field(title="所属单位")


class ActivationLinkOut(BaseModel):
    activation_url: str
    expires_at: dt.datetime
    note: str = (
        "激活链接只显示这一次，只能使用一次：请当面或通过本人的手机交给账号本人，由本人设置密码并开通动态口令。"
        "请勿自己打开；链接过期或丢失时可重置账号以取得新的链接。"
    )


class NewUserOut(UserOut):
    activation: ActivationLinkOut | None = None


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, title="令牌用途，例如 学籍系统对接")
    days: int = Field(default=90, ge=1, le=365, title="有效天数（1 到 365）")
    access: Literal["read", "write"] = Field(default="write", title="权限：read（只读）或 write（读写）")
    domains: list[str] | None = Field(
        default=None,
        title='适用范围：不填为全部；例如 ["rosters", "ledgers"] 只能用于名单与台账接口',
        max_length=20,
    )


class TokenOut(BaseModel):
    id: int
    token: str
    name: str
    expires_at: dt.datetime
    access: str = "write"
    domains: list[str] | None = None
    note: str = "令牌只显示这一次，请妥善保存。调用接口时放在请求头 Authorization: Bearer <令牌>。"


class TokenInfo(BaseModel):
    id: int
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    #: The last request that changed something with the token (reading with it is not recorded).
    last_used_at: dt.datetime | None = Field(description="最近一次用该令牌提交修改的时间（只读请求不记录）")
    revoked_at: dt.datetime | None
    access: str = "write"
    domains: list[str] | None = None

    @classmethod
    def of(cls, t: ApiToken) -> TokenInfo:
        return cls(
            id=t.id,
            name=t.name,
            access=t.access,
            domains=t.domains,
            created_at=t.created_at,
            expires_at=t.expires_at,
            last_used_at=t.last_used_at,
            revoked_at=t.revoked_at,
        )


class PasswordIn(BaseModel):
    current_password: str = Field(min_length=1, max_length=256, title="当前密码（管理员重置后为一次性密码）")
    new_password: str = Field(min_length=1, max_length=256, title="新密码（至少 10 位，不能太常见）")


class TotpStartOut(BaseModel):
    otpauth_uri: str
    note: str = "用手机验证器（如腾讯身份验证器、Google Authenticator）扫描或输入此地址，再用显示的 6 位数字确认开通。"


class TotpConfirmIn(BaseModel):
    code: str = Field(min_length=6, max_length=8, title="手机验证器显示的 6 位数字")


class TotpConfirmOut(BaseModel):
    recovery_codes: list[str]
    note: str = "恢复码只显示这一次：每个可代替动态口令使用一次，请打印或抄写后妥善保管。"


class DelegationIn(BaseModel):
    user_id: int = Field(title="受托人账号（本单位或上级单位）")
    starts_on: dt.date = Field(title="开始日期")
    ends_on: dt.date = Field(title="结束日期（含）")
    reason: str = Field(min_length=1, max_length=200, title="委托原因，例如 校长外出学习")


class DelegationOut(BaseModel):
    id: int
    unit_id: int
    unit_name: str
    user_id: int
    username: str
    display_name: str
    starts_on: dt.date
    ends_on: dt.date
    reason: str
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, d: Delegation) -> DelegationOut:
        return cls(
            id=d.id,
            unit_id=d.unit_id,
            unit_name=d.unit.name,
            user_id=d.user_id,
            username=d.user.username,
            display_name=d.user.display_name,
            starts_on=d.starts_on,
            ends_on=d.ends_on,
            reason=d.reason,
            revoked_at=d.revoked_at,
        )


class ActivationInfo(BaseModel):
    username: str
    display_name: str
    unit_name: str
    role_title: str
    expires_at: dt.datetime
    #: ``create`` (a new account) or ``reset`` (an administrator reset it).
    reason: str
    totp_required: bool
    #: Step one done, the authenticator's address waiting for its first code.
    otpauth_uri: str | None = None


class ActivateIn(BaseModel):
    password: str = Field(min_length=1, max_length=256, title="新密码（至少 10 位，不能太常见，不能包含用户名）")


class ActivateOut(BaseModel):
    #: Whether the account is active now (otherwise confirm the second factor with its first code).
    active: bool
    otpauth_uri: str | None = None
    note: str


class ActivateConfirmIn(BaseModel):
    code: str = Field(min_length=6, max_length=8, title="手机验证器显示的 6 位数字")
