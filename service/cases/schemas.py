from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class GuardianBody(BaseModel):
    name: str = Field(min_length=1, max_length=30, title="监护人姓名")
    relation: str = Field(default="其他监护人", max_length=10, title="与学生关系")
    phone: str = Field(min_length=1, max_length=20, title="联系电话")
    address: str | None = Field(default=None, max_length=100, title="工作单位或务工地")


class CaseBody(BaseModel):
    school_id: int = Field(title="学籍学校")
    student_name: str = Field(min_length=1, max_length=30, title="学生姓名")
    id_number: str = Field(min_length=15, max_length=18, title="身份证号")
    sex: str = Field(title="性别：男 或 女")
    birth_date: dt.date = Field(title="出生日期")
    grade: str = Field(min_length=1, max_length=16, title="年级")
    class_name: str | None = Field(default=None, max_length=16, title="班级")
    student_number: str | None = Field(default=None, max_length=24, title="全国学籍号")
    ethnicity: str | None = Field(default=None, max_length=10, title="民族")
    home_address: str | None = Field(default=None, max_length=100, title="家庭住址")
    key_groups: list[str] = Field(default=[], title="重点群体")
    dropout_date: dt.date | None = Field(default=None, title="辍学日期")
    dropout_reason: str | None = Field(default=None, title="辍学原因")
    reason_detail: str | None = Field(default=None, max_length=500, title="原因分析")
    confirmed: bool = Field(default=False, title="已核实为辍学（否则登记为疑似辍学）")
    guardians: list[GuardianBody] = Field(min_length=1, max_length=4, title="监护人")


class AttemptBody(BaseModel):
    date: dt.date = Field(title="劝返日期")
    staff: str = Field(min_length=1, max_length=60, title="劝返人员")
    method: str = Field(title="劝返方式：家访、电话、约谈、联合劝返、送教上门、司法督促、其他")
    result: str = Field(min_length=1, max_length=200, title="劝返结果")
    succeeded: bool = Field(default=False, title="学生因此复学")
    note: str | None = Field(default=None, max_length=200, title="备注")


class NoticeBody(BaseModel):
    kind: str = Field(title="return_notice（复学通知书）或 deadline_return_notice（限期复学通知书）")
    report_by: dt.date = Field(title="报到截止日期")
    issuer: str = Field(default="school", title="发文单位：school（学校）或 bureau（教体局）")


class ReasonBody(BaseModel):
    reason: str = Field(min_length=1, max_length=200, title="原因")
