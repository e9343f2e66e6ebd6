from __future__ import annotations

from pydantic import BaseModel, Field


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
