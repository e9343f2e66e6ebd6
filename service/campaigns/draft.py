"""The 样稿 (draft) mark on a preview: a document shown before it is issued carries, on every page,
a large grey 样稿 across the page and a line saying it is not issued, so a printed or forwarded
preview cannot pass for the real document. The preview has no verification code and no QR code
(the engine's ``preview`` skips the stamp stage); the mark says so in words as well.

The characters are drawn as filled outlines of the CJK face (no font embedded, no text a copy and
paste could strip), under a constant alpha so the document's own text stays legible beneath.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import pikepdf
from fontTools.pens.basePen import BasePen
from fontTools.ttLib import TTFont

from service.documents.fonts import find_face

DRAFT_FAMILY = "Noto Sans CJK SC:bold"
DRAFT_WORD = "样稿"
DRAFT_NOTE = "样稿 未签发 无验证码 不具效力"
#: Grey and opacity of the big word: dark enough to see on a phone's screen at a glance, light
#: enough that the text under it can still be read and checked.
DRAFT_GREY = 0.55
DRAFT_OPACITY = 0.28
#: The note along the top margin, in red like a correction mark, fully opaque.
NOTE_RED = (0.8, 0.1, 0.12)


class _PathPen(BasePen):  # type: ignore[misc]
    """Glyph outlines as PDF path operators, in font units."""

    def __init__(self, glyph_set: object) -> None:
        super().__init__(glyph_set)
        self.ops: list[str] = []

    def _moveTo(self, pt: tuple[float, float]) -> None:
        self.ops.append(f"{pt[0]:.1f} {pt[1]:.1f} m")

    def _lineTo(self, pt: tuple[float, float]) -> None:
        self.ops.append(f"{pt[0]:.1f} {pt[1]:.1f} l")

    def _curveToOne(self, p1: tuple[float, float], p2: tuple[float, float], p3: tuple[float, float]) -> None:
        self.ops.append(f"{p1[0]:.1f} {p1[1]:.1f} {p2[0]:.1f} {p2[1]:.1f} {p3[0]:.1f} {p3[1]:.1f} c")

    def _closePath(self) -> None:
        self.ops.append("h")


@lru_cache(maxsize=1)
def _font() -> TTFont:
    face = find_face(DRAFT_FAMILY)
    return TTFont(face.path, fontNumber=face.index, lazy=True)


def _line_ops(text: str, size: float) -> tuple[str, float]:
    """``text`` set on one line at ``size`` points from the origin, as filled paths; and its width."""
    font = _font()
    upm = font["head"].unitsPerEm
    cmap, glyphs, hmtx = font.getBestCmap(), font.getGlyphSet(), font["hmtx"]
    scale = size / upm
    ops, x = [], 0.0
    for ch in text:
        name = cmap.get(ord(ch))
        if name is None:
            continue
        pen = _PathPen(glyphs)
        glyphs[name].draw(pen)
        if pen.ops:
            ops.append(f"q {scale:.6f} 0 0 {scale:.6f} {x:.2f} 0 cm " + " ".join(pen.ops) + " f Q")
        x += hmtx[name][0] * scale
    return " ".join(ops), x


def _mark_ops(width: float, height: float) -> str:
    """The mark for a page of ``width`` × ``height`` points."""
    size = min(width, height) * 0.32
    word, word_width = _line_ops(DRAFT_WORD, size)
    angle = math.atan2(height, width)
    cos, sin = math.cos(angle), math.sin(angle)
    # the word's centre on the page's centre, along the diagonal
    dx, dy = -word_width / 2, -size * 0.38
    tx = width / 2 + dx * cos - dy * sin
    ty = height / 2 + dx * sin + dy * cos
    note_size = 12.0
    note, note_width = _line_ops(DRAFT_NOTE, note_size)
    r, g, b = NOTE_RED
    return (
        f"q /DraftAlpha gs {DRAFT_GREY} g {cos:.5f} {sin:.5f} {-sin:.5f} {cos:.5f} {tx:.2f} {ty:.2f} cm {word} Q "
        f"q {r} {g} {b} rg 1 0 0 1 {(width - note_width) / 2:.2f} {height - 28:.2f} cm {note} Q"
    )


def mark_draft(pdf: bytes) -> bytes:
    """``pdf`` with the 样稿 mark over every page, its title (XMP and Info) saying it is a draft."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        alpha = doc.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.ExtGState, ca=DRAFT_OPACITY))
        for page in doc.pages:
            x0, y0, x1, y1 = (float(v) for v in page.mediabox)
            width, height = x1 - x0, y1 - y0
            overlay = pikepdf.Pdf.new()
            overlay.add_blank_page(page_size=(width, height))
            blank = overlay.pages[0]
            blank.Resources = pikepdf.Dictionary(ExtGState=pikepdf.Dictionary(DraftAlpha=overlay.copy_foreign(alpha)))
            blank.Contents = overlay.make_stream(_mark_ops(width, height).encode("ascii"))
            page.add_overlay(blank, pikepdf.Rectangle(x0, y0, x1, y1))
        with doc.open_metadata(set_pikepdf_as_editor=False) as meta:
            title = str(meta.get("dc:title") or "")
            meta["dc:title"] = f"样稿（未签发）{title}"
        out = io.BytesIO()
        doc.save(out)
        return out.getvalue()
