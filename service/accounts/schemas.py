from __future__ import annotations

from pydantic import BaseModel, Field

from service.accounts.models import ROLE_TITLES, Role, User


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64, title="用户名")
    password: str = Field(min_length=1, max_length=256, title="密码")


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    role_title: str
    unit_id: int
    unit_name: str
    unit_type: str

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
        )


class UserIn(BaseModel):
    username: str = Field(min_length=3, max_length=64, title="用户名")
    password: str = Field(min_length=8, max_length=256, title="初始密码")
    display_name: str = Field(min_length=1, max_length=64, title="姓名")
    role: str = Field(title="角色：bureau_staff、office_staff 或 unit_signer")
    unit_id: int = Field(title="所属单位")


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, title="令牌用途，例如 学籍系统对接")


class TokenOut(BaseModel):
    token: str
    name: str
    note: str = "令牌只显示这一次，请妥善保存。调用接口时放在请求头 Authorization: Bearer <令牌>。"
