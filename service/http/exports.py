"""Exports with a purpose (用途): every export that holds children's personal data asks why it is
made, masks 身份证号 and phones unless full values are asked for by a role allowed them, and its
access-log entry says the purpose, masked or full, and the row count.

``ExportDep`` reads ``purpose`` (one of :data:`PURPOSES`, or a short text of one's own),
``purpose_text`` (what 其他 means) and ``full`` from the query; it refuses before the route reads
anything, so a refused export produces no file and no access-log entry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends

from service.accounts.errors import Forbidden
from service.errors import InvalidInput
from service.http.deps import ScopeDep

#: The purposes offered in the pages' export forms; 其他 asks for a few words of one's own.
PURPOSES = ("上报上级", "家访核查", "存档", "其他")
OTHER = "其他"
#: A purpose is a few words, not a note: long enough for 其他：配合公安核查户籍.
PURPOSE_MAX = 40


class ExportPurposeRequired(InvalidInput):
    code = "EXPORT_PURPOSE_REQUIRED"
    default_message = "导出含学生个人信息的文件须说明用途：请选择用途（上报上级、家访核查、存档，或选“其他”并填写）。"


class ExportPurposeTooLong(InvalidInput):
    code = "EXPORT_PURPOSE_TOO_LONG"
    default_message = f"用途请写得简短些（不超过 {PURPOSE_MAX} 个字）。"


class FullExportForbidden(Forbidden):
    code = "EXPORT_FULL_FORBIDDEN"
    default_message = (
        "您的账号只能导出遮盖了身份证号和电话号码的文件；完整号码只有教体局工作人员和学校负责人（本校）可以导出。"
    )


@dataclass(frozen=True)
class Export:
    """Why an export is made, and whether it holds full 身份证号 and phone numbers."""

    purpose: str
    full: bool

    @property
    def masked(self) -> bool:
        return not self.full


def export_purpose(scope: ScopeDep, purpose: str = "", purpose_text: str = "", full: str = "") -> Export:
    """The export's purpose from the query, checked; full values only for a role allowed them."""
    chosen, text = purpose.strip(), purpose_text.strip()
    if chosen == OTHER:
        if not text:
            raise ExportPurposeRequired("选择“其他”用途时，请写明用途。")
        chosen = f"{OTHER}：{text}"
    if not chosen:
        raise ExportPurposeRequired()
    if len(chosen) > PURPOSE_MAX:
        raise ExportPurposeTooLong()
    wants_full = full in ("1", "true", "yes", "on")
    if wants_full and not scope.may_export_full:
        refusal = FullExportForbidden()
        scope.refusals.append(refusal.message)
        raise refusal
    return Export(chosen, wants_full)


def as_issued(export: Export) -> Export:
    """Signed documents (a print bundle, a zip of signed PDFs) are exported as issued: a signature
    covers the 身份证号 in them, so nothing can be masked, and the access log says so (full)."""
    return replace(export, full=True)


ExportDep = Annotated[Export, Depends(export_purpose)]
