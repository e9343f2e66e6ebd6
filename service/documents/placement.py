"""Where each signature field goes, found from the bookmarks LibreOffice exported.

The templates put a Word bookmark at every signature block; LibreOffice exports bookmarks as
named destinations (page, left, top of the bookmarked line). A merged conversion names them
``d{i}x{name}``; ``d{i}xstart`` marks each document's first page. From a destination and the slot's
layout this module computes the field rectangle and, inside it, where the seal and the
handwritten signature are drawn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pypdf import PdfReader

from service.documents.errors import LayoutError
from service.documents.fonts import measure
from service.documents.registry import DocumentKind, SignerSlot
from service.documents.seal import SEAL_DIAMETER

BODY_FAMILY = "Noto Serif CJK SC"
BODY_SIZE = 16.0
LINE = 28.95  # exact line spacing of the templates
#: The widest a unit name runs on one line in the dated signature block: the templates centre it
#: on a tab stop 20 characters (of 15.75 pt) into the 156 mm type area, so it has twice the
#: distance from there to the right margin (a 16-character name).
NAME_COLUMN = 2 * (156 * 72 / 25.4 - 20 * 15.75)
_DEST = re.compile(r"^d(\d+)x(\w+)$")

# Party blocks (甲方（盖章）/ unit / 负责人签字：/ date): offsets from the block's first line.
PARTY_LABEL = 6 * BODY_SIZE  # "负责人签字：" is six full-width characters
PARTY_SEAL_CX = PARTY_LABEL  # the seal's centre sits where the handwriting begins
PARTY_SIG_W, PARTY_SIG_H = 118.0, 46.0


@dataclass(frozen=True)
class Anchor:
    page: int
    left: float
    top: float


@dataclass(frozen=True)
class Placement:
    """A signature field: its page and rectangle, and inside it the seal and handwriting boxes
    (coordinates relative to the rectangle's lower left corner)."""

    field_name: str
    page: int
    box: tuple[float, float, float, float] | None
    seal_at: tuple[float, float] = (0.0, 0.0)
    signature_box: tuple[float, float, float, float] | None = None

    @property
    def size(self) -> tuple[float, float]:
        if self.box is None:
            return (0.0, 0.0)
        return (self.box[2] - self.box[0], self.box[3] - self.box[1])


def document_anchors(reader: PdfReader) -> dict[int, dict[str, Anchor]]:
    """Named destinations of a (merged) conversion, per document index and bookmark name."""
    out: dict[int, dict[str, Anchor]] = {}
    for name, dest in reader.named_destinations.items():
        m = _DEST.match(str(name).lstrip("/"))
        if not m:
            continue
        page = reader.get_destination_page_number(dest)
        if page is None:
            continue
        left = float(dest.get("/Left") or 0)
        top = float(dest.get("/Top") or 0)
        out.setdefault(int(m.group(1)), {})[m.group(2)] = Anchor(page, left, top)
    return out


def _dated_seal(slot: SignerSlot, anchor: Anchor, name: str) -> Placement:
    width = min(measure(BODY_FAMILY).width(name, BODY_SIZE), NAME_COLUMN)
    cx = anchor.left + width / 2
    # Name and date sit a little below the seal's centre (GB/T 9704 7.3.5.1).
    cy = anchor.top - LINE + 3
    r = SEAL_DIAMETER / 2
    return Placement(slot.field_name, anchor.page, (cx - r, cy - r, cx + r, cy + r))


def _party(slot: SignerSlot, anchor: Anchor) -> Placement:
    r = SEAL_DIAMETER / 2
    seal_cx, seal_cy = anchor.left + PARTY_SEAL_CX, anchor.top - 1.6 * LINE
    sig_x, sig_cy = anchor.left + PARTY_LABEL + 4, anchor.top - 2.5 * LINE
    x0 = seal_cx - r
    y0 = min(seal_cy - r, sig_cy - PARTY_SIG_H / 2)
    x1 = max(seal_cx + r, sig_x + PARTY_SIG_W)
    y1 = max(seal_cy + r, sig_cy + PARTY_SIG_H / 2)
    return Placement(
        slot.field_name,
        anchor.page,
        (x0, y0, x1, y1),
        seal_at=(seal_cx - r - x0, seal_cy - r - y0),
        signature_box=(sig_x - x0, sig_cy - PARTY_SIG_H / 2 - y0, PARTY_SIG_W, PARTY_SIG_H),
    )


def place_slot(
    slot: SignerSlot, anchors: Mapping[str, Anchor], fields: Mapping[str, Any], first_page: int = 0
) -> Placement:
    """The field of ``slot`` in a document whose pages start at ``first_page`` of the converted PDF."""
    if slot.anchor is None:
        return Placement(slot.field_name, 0, None)
    anchor = anchors.get(slot.anchor)
    if anchor is None:
        raise LayoutError(
            f"模板中缺少签章位置书签「{slot.anchor}」（{slot.title}），无法确定盖章位置。请在模板的落款处重新插入该书签。"
        )
    local = Anchor(anchor.page - first_page, anchor.left, anchor.top)
    if slot.layout == "party":
        return _party(slot, local)
    return _dated_seal(slot, local, str(fields.get(slot.name_field, "")))


def place_all(
    kind: DocumentKind, anchors: Mapping[str, Anchor], fields: Mapping[str, Any], first_page: int = 0
) -> list[Placement]:
    return [place_slot(slot, anchors, fields, first_page) for slot in kind.slots]


def placement_in_box(slot: SignerSlot, box: tuple[float, float, float, float], page: int) -> Placement:
    """The placement of an existing field (a later signer's), from its rectangle alone."""
    x0, y0, _x1, _y1 = box
    if slot.layout == "party":
        # Invert _party: the block's anchor is a fixed offset from the rectangle.
        r = SEAL_DIAMETER / 2
        left = x0 + r - PARTY_SEAL_CX
        top = y0 + max(1.6 * LINE + r, 2.5 * LINE + PARTY_SIG_H / 2)
        return _party(slot, Anchor(page, left, top))
    return Placement(slot.field_name, page, box)
