from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.archive.models import Document
from service.archive.schemas import document_brief
from service.cases.models import (
    CLOSURE_KINDS,
    DEFERRAL_BASES,
    STATUS_TITLES,
    WRITE_OFF_REASONS,
    Case,
    CaseClosure,
    CaseFile,
    CaseStatus,
)

if TYPE_CHECKING:
    from service.cases.service import Cases


class DueStep(Protocol):
    """A step the case is due for, as the deadline engine gives it (``ledgers.deadlines.DueItem``)."""

    def to_dict(self) -> dict[str, Any]: ...


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
    measures: str | None = Field(default=None, max_length=500, title="帮扶措施")
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


class ConfirmBody(BaseModel):
    on: dt.date | None = Field(default=None, title="核实确认为辍学的日期（默认今天）")


class ErasureBody(BaseModel):
    reason: str = Field(min_length=4, max_length=200, title="删除依据（如监护人的书面申请及其日期）")


class ReturnedBody(BaseModel):
    back_on: dt.date | None = Field(default=None, title="返校日期（默认今天）")
    note: str | None = Field(default=None, max_length=200, title="备注")


def case_view(
    session: Session, cases: Cases, case: Case, full: bool = True, due: Sequence[DueStep] = ()
) -> dict[str, Any]:
    """A case as the API returns it and the pages show it: the list line, or everything with the
    steps it is ``due`` for, which the face asks the deadline engine for (``Deadlines.case_items``)."""
    out: dict[str, Any] = {
        "id": case.id,
        "school_id": case.school_id,
        "school": case.school.name,
        "student_name": case.student_name,
        "sex": case.sex,
        "grade_class": case.grade_class,
        "status": case.status,
        "status_title": STATUS_TITLES[CaseStatus(case.status)],
        "dropout_date": case.dropout_date,
        "suspected_on": case.suspected_on,
        "dropped_on": case.dropped_on,
        "key_groups": case.key_groups,
        "attempts": len(case.attempts),
        "erased_at": case.erased_at,
    }
    if full:
        docs = session.scalars(select(Document).where(Document.case_id == case.id).order_by(Document.issued_at))
        files: dict[int, list[dict[str, Any]]] = {}
        for f in session.scalars(
            select(CaseFile).where(CaseFile.case_id == case.id, CaseFile.attempt_id.is_not(None)).order_by(CaseFile.id)
        ):
            files.setdefault(f.attempt_id or 0, []).append({"id": f.id, "filename": f.filename, "size": f.size})
        out.update(
            {
                "id_number": case.id_number,
                "student_number": case.student_number,
                "birth_date": case.birth_date,
                "home_address": case.home_address,
                "ethnicity": case.ethnicity,
                "measures": case.measures,
                "dropout_reason": case.dropout_reason,
                "reason_detail": case.reason_detail,
                "write_off_reason": WRITE_OFF_REASONS.get(case.write_off_reason or ""),
                "never_enrolled": case.never_enrolled,
                "closure": closure_view(case.closure) if case.closure else None,
                "files": [
                    {"id": f.id, "purpose": f.purpose, "filename": f.filename, "size": f.size}
                    for f in session.scalars(select(CaseFile).where(CaseFile.case_id == case.id).order_by(CaseFile.id))
                ],
                "guardians": [
                    {"name": g.name, "relation": g.relation, "phone": g.phone, "address": g.address}
                    for g in case.guardians
                ],
                "attempt_list": [
                    {
                        "id": a.id,
                        "date": a.date,
                        "staff": a.staff,
                        "method": a.method,
                        "result": a.result,
                        "succeeded": a.succeeded,
                        "note": a.note,
                        "files": files.get(a.id, []),
                    }
                    for a in case.attempts
                ],
                "home_visits": [
                    {
                        "id": v.id,
                        "date": v.date,
                        "teachers": v.teachers,
                        "content": v.content,
                        "evidence": {"filename": v.evidence_filename, "size": v.evidence_size},
                        "actor": v.actor,
                    }
                    for v in case.home_visits
                ],
                "documents": [
                    {**document_brief(d), "issued_date": d.issued_at.astimezone(cases.tz).date().isoformat()}
                    for d in docs
                ],
                "due": [d.to_dict() for d in due],
            }
        )
    return out


def closure_view(c: CaseClosure) -> dict[str, Any]:
    """The 销号 act, in words."""
    if c.kind == CaseStatus.WRITTEN_OFF:
        reason = WRITE_OFF_REASONS.get(c.reason or "", "")
    elif c.kind == CaseStatus.DEFERRED:
        reason = DEFERRAL_BASES.get(c.reason or "", "")
    else:
        reason = ""
    return {
        "kind": c.kind,
        "title": CLOSURE_KINDS[CaseStatus(c.kind)],
        "date": c.date,
        "reason": reason,
        "authority": c.authority,
        "note": c.note,
        "home_teaching": c.home_teaching,
        "actor": c.actor,
        "at": c.created_at,
    }


#: Attachments a browser may show in place (a photo of a 家访, a scanned approval): whatever else a
#: school uploads is offered as a download, and nothing is ever served as a page.
INLINE_TYPES = {
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
DOWNLOAD_TYPES = {
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".wps": "application/vnd.ms-works",
    ".heic": "image/heic",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".mp4": "video/mp4",
    ".zip": "application/zip",
    ".txt": "text/plain; charset=utf-8",
}


def case_file_name(case: Case) -> str:
    """The download name of a case's 案卷."""
    return f"案卷-{case.student_name}-{case.id}.pdf"


def attachment_type(filename: str) -> tuple[str, str]:
    """(media type, ``inline`` or ``attachment``) of a case's attachment, by its name."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in INLINE_TYPES:
        return INLINE_TYPES[suffix], "inline"
    return DOWNLOAD_TYPES.get(suffix, "application/octet-stream"), "attachment"
