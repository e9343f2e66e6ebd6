"""The seven official documents: template, schema, and who signs where.

``KINDS`` is the document table of DESIGN.md in code. Each kind names its .docx template in
``templates/``, its JSON Schema in ``schemas/``, and its signer slots: the issuer, who certifies
the document when it is issued, and any later signer (a principal, an office director), each with
the bookmark in the template that marks where the seal lands.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from service.documents.errors import UnknownDocumentKind

#: How a slot's appearance is laid out relative to its bookmark.
#: ``dated_seal``: the bookmark starts the issuing unit's name, centered over the date below it;
#: the seal sits on both (骑年盖月). ``party``: the bookmark starts a party block
#: (甲方（盖章）/ unit name / 负责人（签字）/ date); the seal covers the unit name and the
#: handwritten signature follows 负责人（签字）.
SlotLayout = Literal["dated_seal", "party"]


@dataclass(frozen=True)
class SignerSlot:
    #: PDF signature field name (ASCII; pyHanko and pdfsig show it).
    field_name: str
    #: Who signs here, in the document's words.
    title: str
    #: Bookmark in the template; None makes the signature invisible.
    anchor: str | None
    layout: SlotLayout = "dated_seal"
    #: The field whose text is the unit name printed at the anchor (to center the seal on it).
    name_field: str = "issuer_name"


@dataclass(frozen=True)
class DocumentKind:
    key: str
    title: str
    #: The issuer certifies the document (DocMDP: only form filling and signing after it).
    issuer: SignerSlot
    #: Slots signed later by another unit, in order; fields are created up front for each.
    later_signers: tuple[SignerSlot, ...] = ()
    #: Paper copies the notices ask for (一式两份).
    copies: int = 1
    #: The field naming the unit that issues the document (its key signs).
    issuer_field: str = "issuer_name"
    #: The date printed as the document's date.
    date_field: str = "issue_date"
    #: Fields a guardian sees on the public verify page (school, report-by date).
    public_fields: tuple[str, ...] = ()
    #: The field holding the person the document is about, masked on public pages.
    subject_field: str | None = None
    #: The document shows children's data (a notice, a 一生一表, the 信息报告): each read of it is
    #: recorded in the access log.
    names_children: bool = False

    def template_path(self, templates_dir: Path) -> Path:
        return templates_dir / f"{self.key}.docx"

    def schema_path(self, schemas_dir: Path) -> Path:
        return schemas_dir / f"{self.key}.schema.json"

    @property
    def slots(self) -> tuple[SignerSlot, ...]:
        return (self.issuer, *self.later_signers)

    def slot(self, field_name: str) -> SignerSlot:
        for slot in self.slots:
            if slot.field_name == field_name:
                return slot
        raise KeyError(field_name)


_NOTICE_ISSUER = SignerSlot("Issuer", "发文单位", "sigissuer")

KINDS: dict[str, DocumentKind] = {
    kind.key: kind
    for kind in (
        DocumentKind(
            key="responsibility_office",
            title="控辍目标责任书（街道教育办版）",
            issuer=SignerSlot("Bureau", "甲方（区教体局）", "sigbureau", "party", "bureau_name"),
            later_signers=(SignerSlot("Unit", "乙方（街道教育办）", "sigunit", "party", "office_name"),),
            copies=2,
            issuer_field="bureau_name",
            public_fields=("office_name", "year"),
        ),
        DocumentKind(
            key="responsibility_direct",
            title="控辍目标责任书（区直学校版）",
            issuer=SignerSlot("Bureau", "甲方（区教体局）", "sigbureau", "party", "bureau_name"),
            later_signers=(SignerSlot("Unit", "乙方（区直学校）", "sigunit", "party", "school_name"),),
            copies=2,
            issuer_field="bureau_name",
            public_fields=("school_name", "year"),
        ),
        DocumentKind(
            key="pledge",
            title="控辍保学承诺书",
            # The bureau issues and certifies the pre-filled pledge without a seal of its own:
            # it is not a party to the school's promise.
            issuer=SignerSlot("Bureau", "发放单位（区教体局）", None, name_field="bureau_name"),
            later_signers=(SignerSlot("Unit", "承诺学校", "sigschool", "party", "school_name"),),
            copies=2,
            issuer_field="bureau_name",
            public_fields=("school_name", "year"),
        ),
        DocumentKind(
            key="enrollment_notice",
            title="义务教育入学通知书",
            issuer=_NOTICE_ISSUER,
            public_fields=("school_name", "report_by"),
            subject_field="student_name",
            names_children=True,
        ),
        DocumentKind(
            key="return_notice",
            title="义务教育复学通知书",
            issuer=_NOTICE_ISSUER,
            public_fields=("school_name", "report_by"),
            subject_field="student_name",
            names_children=True,
        ),
        DocumentKind(
            key="deadline_return_notice",
            title="限期复学通知书",
            issuer=_NOTICE_ISSUER,
            public_fields=("school_name", "report_by"),
            subject_field="student_name",
            names_children=True,
        ),
        DocumentKind(
            key="dropout_register",
            title="辍学学生登记表（一生一表）",
            issuer=SignerSlot("School", "填报学校", "sigissuer", name_field="school_name"),
            issuer_field="school_name",
            date_field="fill_date",
            public_fields=("school_name",),
            subject_field="student_name",
            names_children=True,
        ),
        DocumentKind(
            key="monthly_report",
            title="控辍保学动态管理月报表",
            issuer=SignerSlot("Unit", "填报单位", "sigissuer", name_field="unit_name"),
            issuer_field="unit_name",
            date_field="fill_date",
            public_fields=("unit_name", "period_label"),
        ),
        DocumentKind(
            key="weekly_report",
            title="辍学周报告",
            issuer=SignerSlot("Unit", "填报单位", "sigissuer", name_field="unit_name"),
            issuer_field="unit_name",
            date_field="fill_date",
            public_fields=("unit_name", "period_label"),
        ),
        DocumentKind(
            key="info_report",
            title="学生失学辍学信息报告",
            issuer=SignerSlot("Unit", "填报单位", "sigissuer", name_field="unit_name"),
            issuer_field="unit_name",
            date_field="fill_date",
            public_fields=("unit_name", "period_label"),
            names_children=True,
        ),
        DocumentKind(
            # 案卷: one case's record for a court or the 检察院, its originals embedded unaltered;
            # certified by the unit that made it, the bureau's for a court (``Cases.case_file``)
            key="case_file",
            title="控辍保学个案案卷",
            issuer=SignerSlot("Unit", "制卷单位", "sigissuer", name_field="unit_name"),
            issuer_field="unit_name",
            date_field="made_date",
            public_fields=("school_name",),
            subject_field="student_name",
            names_children=True,
        ),
    )
}


#: Notices addressed to a guardian (入学, 复学, 限期复学): their verification pages count opens and
#: take the guardian's receipt.
GUARDIAN_NOTICES = ("enrollment_notice", "return_notice", "deadline_return_notice")


def get_kind(key: str) -> DocumentKind:
    try:
        return KINDS[key]
    except KeyError:
        raise UnknownDocumentKind(
            f"没有名为「{key}」的文书模板。可用的模板：{'、'.join(KINDS)}。", details={"template": key}
        ) from None


@lru_cache(maxsize=32)
def _load_schema(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


def load_schema(kind: DocumentKind, schemas_dir: Path) -> dict[str, Any]:
    """The kind's JSON Schema, parsed once per process; treat it as read-only."""
    return _load_schema(kind.schema_path(schemas_dir).resolve())


def example_fields(kind: DocumentKind, schemas_dir: Path) -> dict[str, Any]:
    """A valid set of fields built from the schema's ``examples`` (for ``templates --example``)."""
    schema = load_schema(kind, schemas_dir)
    # a deep copy: the schema is cached and shared, callers may change what they get
    return copy.deepcopy(
        {name: prop["examples"][0] for name, prop in schema["properties"].items() if "examples" in prop}
    )
