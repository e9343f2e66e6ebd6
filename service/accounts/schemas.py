from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from service.accounts.models import ROLE_TITLES, ApiToken, Delegation, Role, User


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
        )


class UserIn(BaseModel):
    username: str = Field(min_length=3, max_length=64, title="用户名")
    password: str = Field(min_length=1, max_length=256, title="初始密码（至少 10 位，不能太常见）")
    display_name: str = Field(min_length=1, max_length=64, title="姓名")
    role: str = Field(title="角色：bureau_staff、office_staff 或 unit_signer")
    unit_id: int = Field(title="所属单位")


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, title="令牌用途，例如 学籍系统对接")
    days: int = Field(default=90, ge=1, le=365, title="有效天数（1 到 365）")


class TokenOut(BaseModel):
    id: int
    token: str
    name: str
    expires_at: dt.datetime
    note: str = "令牌只显示这一次，请妥善保存。调用接口时放在请求头 Authorization: Bearer <令牌>。"


class TokenInfo(BaseModel):
    id: int
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    #: The last request that changed something with the token (reading with it is not recorded).
    last_used_at: dt.datetime | None = Field(description="最近一次用该令牌提交修改的时间（只读请求不记录）")
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenInfo:
        return cls(
            id=t.id,
            name=t.name,
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


class ResetOut(BaseModel):
    temporary_password: str
    note: str = "一次性密码只显示这一次；对方用它登录后必须立即修改密码。"
