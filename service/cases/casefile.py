"""The 案卷 of one case, as the bureau hands it to a court or the 检察院: what goes in it and where.

The written part (cover, 目录, 劝返 record, each document's verification record, the guardian's
receipts, the history) is the ``case_file`` template; the originals follow it as pages (the
一生一表, each 劝返 attachment that is an image or a PDF, each document) and are embedded whole,
unaltered (PDF attachments), so a court can check each one's own signature. Pages shown from an
original are shrunk onto an A4 page above the case file's own verification stamp, which takes the
bottom margin of every page.
"""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pikepdf
from PIL import Image, ImageOps, UnidentifiedImageError

from service.archive.service import StoredVerdict, safe_filename
from service.cases.models import STATUS_TITLES, CaseStatus
from service.cases.schemas import attachment_type
from service.documents.pipeline import EmbeddedFile

#: A4 in points, and the box a shown page is shrunk into: the bottom 30 mm stay free for the case
#: file's verification stamp (QR code 20 mm, 7 mm from the edge), 10 mm elsewhere.
A4 = (595.28, 841.89)
MM = 72 / 25.4
SHOWN_BOX = (10 * MM, 30 * MM, A4[0] - 10 * MM, A4[1] - 10 * MM)

#: The document kind of a case file (``registry.KINDS``).
CASE_FILE_KIND = "case_file"

#: How a guardian's receipt was given, in words.
RECEIPT_WAYS = {"phone_digits": "在核验页输入监护人手机号后四位确认"}

#: What each audited action of a case reads as in the history.
ACTION_TITLES = {
    "case.create": "登记个案",
    "case.update": "修改个案信息",
    "case.status": "个案状态变更",
    "case.attempt": "记录劝返",
    "case.home_visit": "记录送教上门",
    "case.close": "销号",
    "case.register": "生成一生一表",
    "case.notice": "签发通知书",
    "case.file": "生成案卷",
    "case.erasure": "依申请删除个人信息",
    "document.issue": "签发文书",
    "document.sign": "文书签署",
    "document.revoke": "撤回文书",
    "notice.confirm": "监护人确认已阅知",
    "retention.erase": "按期删除",
}


@dataclass
class Part:
    """Pages of the appendix: a heading in the 目录, the pages, and where they start in it (from 0)."""

    title: str
    pages: int
    start: int = 0


@dataclass
class Originals:
    """The originals of a case file, as pages and as embedded files."""

    pdf: pikepdf.Pdf = field(default_factory=pikepdf.new)
    parts: list[Part] = field(default_factory=list)
    files: list[EmbeddedFile] = field(default_factory=list)

    def show(self, title: str, data: bytes, filename: str) -> Part | None:
        """The pages of a PDF or an image, shrunk above the stamp; None for a file that is neither
        (a recording): it is only embedded."""
        pages = _pages_of(data, filename)
        if pages is None:
            return None
        part = Part(title, 0, len(self.pdf.pages))
        with pages:
            for page in pages.pages:
                blank = self.pdf.add_blank_page(page_size=A4)
                blank.add_overlay(page, pikepdf.Rectangle(*SHOWN_BOX))
                part.pages += 1
        self.parts.append(part)
        return part

    def embed(self, name: str, data: bytes, description: str) -> str:
        """Embed ``data`` whole under a name unique in this file (its number first)."""
        unique = f"{len(self.files) + 1:02d}-{safe_filename(name)}"
        media_type, _ = attachment_type(name)
        self.files.append(EmbeddedFile(unique, data, description, media_type))
        return unique

    def to_bytes(self) -> bytes | None:
        if not self.pdf.pages:
            return None
        out = io.BytesIO()
        self.pdf.save(out)
        return out.getvalue()


def _pages_of(data: bytes, filename: str) -> pikepdf.Pdf | None:
    if data.startswith(b"%PDF"):
        try:
            return pikepdf.open(io.BytesIO(data))
        except pikepdf.PdfError:
            return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            picture = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    out = io.BytesIO()
    picture.save(out, format="PDF", resolution=150)
    return pikepdf.open(io.BytesIO(out.getvalue()))


def document_code(pdf: bytes) -> str:
    """A document's verification code, as its stamp recorded it in the document information."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return str(doc.docinfo.get("/DocsignCode", ""))


def verdict_words(verdict: StoredVerdict) -> str:
    """The archive's verdict on a document, as the verify page words it."""
    if verdict.genuine:
        return "真实有效（签章完整、未被改动）"
    if verdict.needs_timestamp:
        return "签章完整、未被改动，待补充存档时间戳"
    return "异常：" + "；".join(verdict.messages)[:200]


def page_span(first: int, count: int) -> str:
    return str(first) if count <= 1 else f"{first}—{first + count - 1}"


def moment(at: dt.datetime | None, tz: zoneinfo.ZoneInfo) -> str:
    if at is None:
        return ""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    local = at.astimezone(tz)
    return f"{local:%Y年%-m月%-d日 %H:%M}"


def event_text(action: str, detail: Mapping[str, Any], documents: Mapping[str, str]) -> str:
    """One line of the history: what happened, in words."""
    # an action this list does not know yet is named as an action, never as its code
    title = ACTION_TITLES.get(action, "其他操作")
    if action == "case.status":
        before, after = (_status(detail.get(k)) for k in ("from", "to"))
        return f"{title}：{before} → {after}"
    if action == "case.attempt":
        return f"{title}（{detail.get('date', '')}，{detail.get('method', '')}）"
    if str(detail.get("kind", "")) in documents:
        return f"{title}《{documents[str(detail['kind'])]}》"
    return title


def _status(status: object) -> str:
    try:
        return STATUS_TITLES[CaseStatus(str(status))]
    except ValueError:
        return str(status)


def toc(
    text_pages: int, marks: Mapping[str, int], parts: Sequence[Part], sections: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The 目录: the written sections by their bookmarks, then each part of the appendix."""
    entries = [{"title": "封面", "page": 1}]
    entries += [{"title": title, "page": marks.get(mark, 0)} for title, mark in sections]
    entries += [{"title": p.title, "page": text_pages + p.start + 1} for p in parts]
    return entries


def sorted_events(events: Sequence[Any]) -> list[Any]:
    return sorted(events, key=lambda e: (e.at, e.id))
