"""The visible part of a signature: a round 公章 and, where given, a handwritten signature.

When a unit has not uploaded an image of its seal, one is drawn: a red ring, a five-pointed star,
and the unit's name set along the upper arc in a heavy Song face, each character turned to face
the centre, the way an official round seal (直径 42 mm) is cut. It is drawn as vector paths, so it
prints sharp at any size and costs a few KB, and in Multiply blend mode, so the black date under it
stays legible as it does under real seal ink (骑年盖月).
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

from fontTools.pens.basePen import BasePen
from fontTools.ttLib import TTFont
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.content import PdfContent, ResourceType
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.layout import BoxConstraints

from service.documents.errors import ImageInvalid, SignatureTooSmall
from service.documents.fonts import find_face

MM = 72 / 25.4
SEAL_DIAMETER = 42 * MM
SEAL_RED = (0.86, 0.08, 0.1)
SEAL_FAMILY = "Noto Serif CJK SC:bold"
#: Largest handwritten signature accepted, in pixels per side.
MAX_SIGNATURE_PIXELS = 4096


def _n(v: float) -> str:
    """A coordinate in font units: the face's own integers stay integers."""
    return str(round(v)) if abs(v - round(v)) < 0.005 else f"{v:.2f}"


class _PdfPathPen(BasePen):  # type: ignore[misc]
    """Collects glyph outlines as PDF path operators, in the glyph's own units."""

    def __init__(self, glyph_set: object) -> None:
        super().__init__(glyph_set)
        self.ops: list[str] = []

    def _moveTo(self, pt: tuple[float, float]) -> None:
        self.ops.append(f"{_n(pt[0])} {_n(pt[1])} m")

    def _lineTo(self, pt: tuple[float, float]) -> None:
        self.ops.append(f"{_n(pt[0])} {_n(pt[1])} l")

    def _curveToOne(self, p1: tuple[float, float], p2: tuple[float, float], p3: tuple[float, float]) -> None:
        self.ops.append(f"{_n(p1[0])} {_n(p1[1])} {_n(p2[0])} {_n(p2[1])} {_n(p3[0])} {_n(p3[1])} c")

    def _closePath(self) -> None:
        self.ops.append("h")


@lru_cache(maxsize=1)
def _seal_font() -> TTFont:
    face = find_face(SEAL_FAMILY)
    return TTFont(face.path, fontNumber=face.index, lazy=True)


def _circle(cx: float, cy: float, r: float) -> str:
    k = 0.5523 * r
    return (
        f"{cx + r:.2f} {cy:.2f} m "
        f"{cx + r:.2f} {cy + k:.2f} {cx + k:.2f} {cy + r:.2f} {cx:.2f} {cy + r:.2f} c "
        f"{cx - k:.2f} {cy + r:.2f} {cx - r:.2f} {cy + k:.2f} {cx - r:.2f} {cy:.2f} c "
        f"{cx - r:.2f} {cy - k:.2f} {cx - k:.2f} {cy - r:.2f} {cx:.2f} {cy - r:.2f} c "
        f"{cx + k:.2f} {cy - r:.2f} {cx + r:.2f} {cy - k:.2f} {cx + r:.2f} {cy:.2f} c h"
    )


def _star(cx: float, cy: float, r: float) -> str:
    inner = r * 0.382
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else inner
        angle = math.radians(90 + i * 36)
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    ops = [f"{points[0][0]:.2f} {points[0][1]:.2f} m"]
    ops += [f"{x:.2f} {y:.2f} l" for x, y in points[1:]]
    ops.append("h f")
    return " ".join(ops)


def _glyph_ops(ch: str, transform: tuple[float, float, float, float, float, float]) -> str:
    """One filled glyph placed by ``transform``: its outline in font units (integers) under a
    ``cm``, a third fewer bytes than the outline transformed point by point, and exact."""
    font = _seal_font()
    name = font.getBestCmap().get(ord(ch))
    if name is None:
        return ""
    glyph_set = font.getGlyphSet()
    pen = _PdfPathPen(glyph_set)
    glyph_set[name].draw(pen)
    if not pen.ops:
        return ""
    a, b, c, d, e, f = transform
    return f"q {a:.6f} {b:.6f} {c:.6f} {d:.6f} {e:.2f} {f:.2f} cm " + " ".join(pen.ops) + " f Q"


@lru_cache(maxsize=256)
def seal_ops(name: str, diameter: float = SEAL_DIAMETER, bottom_text: str = "") -> bytes:
    """Content-stream operators drawing the seal of ``name`` in the box [0, diameter]²."""
    d = diameter
    c = d / 2
    ring = d * 0.032
    ops = [f"{SEAL_RED[0]} {SEAL_RED[1]} {SEAL_RED[2]} rg {SEAL_RED[0]} {SEAL_RED[1]} {SEAL_RED[2]} RG"]
    ops.append(f"{ring:.2f} w {_circle(c, c, c - ring / 2 - 0.5)} S")
    ops.append(_star(c, c, d * 0.15))
    chars = [ch for ch in name.strip() if not ch.isspace()]
    n = len(chars)
    if n:
        upm = _seal_font()["head"].unitsPerEm
        height = d * (0.15 if n <= 10 else 0.13 if n <= 14 else 0.11)
        span = min(250.0, max(110.0, n * 21.0))
        # Long names are set narrower, as seal engravers do.
        squeeze = 0.78 if n > 10 else 0.85
        radius = c - ring - d * 0.025 - height / 2
        scale = height / upm
        for k, ch in enumerate(chars):
            theta = math.radians(90 + span / 2 - (span * k / (n - 1) if n > 1 else span / 2))
            # glyph centre on the text circle; the glyph's up points away from the centre
            gx, gy = c + radius * math.cos(theta), c + radius * math.sin(theta)
            rot = theta - math.pi / 2
            cos_r, sin_r = math.cos(rot), math.sin(rot)
            sx, sy = scale * squeeze, scale
            # map glyph space (em box centred at (upm/2, upm*0.38)) to the page
            ox, oy = upm / 2, upm * 0.38
            a, b = cos_r * sx, sin_r * sx
            cc, dd = -sin_r * sy, cos_r * sy
            e = gx - (a * ox + cc * oy)
            f = gy - (b * ox + dd * oy)
            glyph = _glyph_ops(ch, (a, b, cc, dd, e, f))
            if glyph:
                ops.append(glyph)
    if bottom_text:
        upm = _seal_font()["head"].unitsPerEm
        height = d * 0.1
        scale = height / upm
        width = len(bottom_text) * upm * scale
        x0 = c - width / 2
        for k, ch in enumerate(bottom_text):
            glyph = _glyph_ops(ch, (scale, 0, 0, scale, x0 + k * upm * scale, c - d * 0.3))
            if glyph:
                ops.append(glyph)
    return "\n".join(ops).encode("ascii")


def load_signature_image(data: bytes) -> Image.Image:
    """A handwritten signature (PNG or JPEG) as an RGBA image with a transparent background, cropped."""
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
        if max(img.size) > MAX_SIGNATURE_PIXELS:
            raise ImageInvalid(
                f"签名图片过大（{img.width}×{img.height}），请上传边长不超过 {MAX_SIGNATURE_PIXELS} 像素的图片。"
            )
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageInvalid() from exc
    rgba = img.convert("RGBA")
    # Paper-white becomes transparent, so the seal and the text show through between strokes.
    ink = ImageOps.grayscale(rgba).point(lambda v: 255 if v < 200 else max(0, 255 - (v - 200) * 255 // 55))
    mask = ImageChops.multiply(ink, rgba.getchannel("A"))
    out = Image.new("RGBA", rgba.size, (20, 20, 30, 0))
    out.putalpha(mask)
    box = mask.getbbox()
    if box is None:
        raise ImageInvalid("签名图片是空白的，请重新书写签名。")
    return out.crop(box)


#: A drawn signature has real ink: measured in CSS pixels of the signing pad (180 px tall), its
#: strokes span at least this much, and cover at least this many pixels (about 60 px of a thin
#: stroke). A single tap leaves a dot of some 15 px² and 5 px across. The page asks for more
#: (100 px of stroke, 40 px across: ``app.js``), so whatever the page lets through passes here.
MIN_SIGNATURE_SPAN = 30
MIN_SIGNATURE_INK = 80
PAD_HEIGHT = 180


def check_signature_ink(data: bytes) -> None:
    """Refuse a signature image that is a dot or a tiny scribble (a tap on the pad), not a signature."""
    try:
        img = Image.open(io.BytesIO(data))
        if max(img.size) > MAX_SIGNATURE_PIXELS:
            raise ImageInvalid(
                f"签名图片过大（{img.width}×{img.height}），请上传边长不超过 {MAX_SIGNATURE_PIXELS} 像素的图片。"
            )
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageInvalid() from exc
    rgba = img.convert("RGBA")
    ink = ImageOps.grayscale(rgba).point(lambda v: 255 if v < 160 else 0)
    mask = ImageChops.multiply(ink, rgba.getchannel("A").point(lambda a: 255 if a >= 128 else 0))
    box = mask.getbbox()
    if box is None:
        raise ImageInvalid("签名图片是空白的，请重新书写签名。")
    # one CSS pixel of the pad, in pixels of this image (the pad is drawn at the screen's density)
    unit = max(1.0, min(img.height, img.width / 2) / PAD_HEIGHT)
    span = max(box[2] - box[0], box[3] - box[1]) / unit
    pixels = mask.histogram()[255] / (unit * unit)
    if span < MIN_SIGNATURE_SPAN or pixels < MIN_SIGNATURE_INK:
        raise SignatureTooSmall()


class SignatureAppearance(PdfContent):
    """A signature field's appearance: the seal and, optionally, a handwritten signature beside it."""

    def __init__(
        self,
        width: float,
        height: float,
        *,
        seal_name: str,
        seal_at: tuple[float, float],
        seal_image: Image.Image | None = None,
        signature: Image.Image | None = None,
        signature_box: tuple[float, float, float, float] | None = None,
    ) -> None:
        super().__init__(box=BoxConstraints(width, height))
        self.seal_name = seal_name
        self.seal_at = seal_at
        self.seal_image = seal_image
        self.signature = signature
        self.signature_box = signature_box

    def _image_ops(self, image: Image.Image, x: float, y: float, w: float, h: float, name: str) -> bytes:
        content = PdfImage(image, writer=self.writer, name=name, box=BoxConstraints(w, h))
        ops = content.render()
        self.import_resources(content.resources)
        return b"q 1 0 0 1 %.2f %.2f cm %s Q" % (x, y, ops)

    def render(self) -> bytes:
        self.set_resource(
            ResourceType.EXT_G_STATE,
            generic.NameObject("/SealInk"),
            generic.DictionaryObject(
                {
                    generic.NameObject("/BM"): generic.NameObject("/Multiply"),
                    generic.NameObject("/ca"): generic.FloatObject(0.95),
                    generic.NameObject("/CA"): generic.FloatObject(0.95),
                }
            ),
        )
        parts = []
        sx, sy = self.seal_at
        if self.seal_image is not None:
            parts.append(
                b"q /SealInk gs "
                + self._image_ops(self.seal_image, sx, sy, SEAL_DIAMETER, SEAL_DIAMETER, "Seal")
                + b" Q"
            )
        else:
            parts.append(b"q /SealInk gs 1 0 0 1 %.2f %.2f cm %s Q" % (sx, sy, seal_ops(self.seal_name)))
        if self.signature is not None and self.signature_box is not None:
            x, y, w, h = self.signature_box
            img = self.signature
            # keep the drawn signature's proportions inside its box
            ratio = min(w / img.width, h / img.height)
            dw, dh = img.width * ratio, img.height * ratio
            parts.append(self._image_ops(img, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh, "Hand"))
        return b"\n".join(parts)
