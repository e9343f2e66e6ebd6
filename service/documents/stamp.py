"""Stamp: a QR code of the verification URL and the typable code on every page.

The stamp sits in the bottom margin, right of the page number: a QR code about 20 mm square
(zbarimg reads it from a 150 dpi scan) and, beside it, "扫码验证真伪" and the code in groups of
four. It is drawn as vector rectangles and text in one small embedded CJK font of the characters a
stamp can print, built once per process and copied into each document (about 3 KB), so stamping
costs one content stream per page.

:func:`split_and_stamp` cuts a merged conversion back into documents with pikepdf (each carrying
only the objects its pages use, its fonts cut down to its own glyphs by
:mod:`service.documents.compact`) and stamps each in the same pass; :func:`stamp` is the
one-document case of it.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import pikepdf
import zxingcpp
from fontTools.ttLib import TTFont
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.writer import PdfFileWriter

from service.documents.codes import ALPHABET, display_code
from service.documents.compact import compact_fonts
from service.documents.errors import LayoutError, PdfInvalid
from service.documents.fonts import subset_font

MM = 72 / 25.4
QR_SIZE = 20 * MM
#: Right edge of the stamp: the right margin of a 公文 page (26 mm).
RIGHT_MARGIN = 26 * MM
BOTTOM = 7 * MM
LABEL_SIZE = 7.5
CODE_SIZE = 7.0
FONT_NAME = "/DSStamp"
STAMP_FAMILY = "Noto Sans CJK SC"
#: What a stamp prints: its two labels and a code ("?" stands for a character the font lacks).
STAMP_CHARSET = "".join(sorted(set("扫码验证真伪验证码 -?" + ALPHABET)))


@dataclass(frozen=True)
class StampMark:
    """What to print on a document's pages, and what to record in its document information."""

    url: str
    code: str
    title: str = ""
    kind: str = ""


class StampFont:
    """The stamp font as a PDF font dictionary, and its glyph ids and widths per character."""

    def __init__(self) -> None:
        font_bytes = subset_font(STAMP_FAMILY, STAMP_CHARSET)
        w = PdfFileWriter()
        acc = GlyphAccumulator(w, io.BytesIO(font_bytes), font_size=10)
        acc.shape(STAMP_CHARSET, with_actual_text=False)  # every glyph goes into the embedded font
        ref = acc.as_resource()
        acc.prepare_write()
        w.root["/DSFont"] = ref
        buf = io.BytesIO()
        w.write(buf)
        self._pdf = pikepdf.open(io.BytesIO(buf.getvalue()))
        self._font = self._pdf.Root.DSFont
        tt = TTFont(io.BytesIO(font_bytes))
        cmap, hmtx, upm = tt.getBestCmap(), tt["hmtx"], tt["head"].unitsPerEm
        self._glyphs: dict[str, tuple[str, float]] = {}
        for ch in STAMP_CHARSET:
            name = cmap.get(ord(ch))
            if name is None:
                continue
            cid = int(name[3:]) if name.startswith("cid") else tt.getGlyphID(name)
            self._glyphs[ch] = (f"{cid:04x}", hmtx[name][0] / upm)

    def copy_into(self, pdf: pikepdf.Pdf) -> pikepdf.Object:
        return pdf.copy_foreign(self._font)

    def encode(self, text: str) -> tuple[str, float]:
        """Hex glyph string for a Tj operator, and the width at size 1."""
        hexes, width = [], 0.0
        for ch in text:
            hex_cid, advance = self._glyphs.get(ch, self._glyphs["?"])
            hexes.append(hex_cid)
            width += advance
        return "".join(hexes), width


@lru_cache(maxsize=1)
def stamp_font() -> StampFont:
    return StampFont()


def qr_matrix(url: str) -> list[bytes]:
    """The QR code of ``url`` (error correction level M, the mask chosen by the standard's
    penalty rules) as rows of modules, 1 for dark. zxing-cpp encodes in about 0.3 ms, where
    python-qrcode took 7 ms (it builds the whole symbol once per candidate mask)."""
    try:
        barcode = zxingcpp.create_barcode(url, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    except ValueError as exc:
        raise LayoutError(f"验证网址过长，无法生成二维码：{exc}") from exc
    image = barcode.to_image(scale=1, add_quiet_zones=False)
    n = image.shape[1]
    pixels = memoryview(cast(Any, image)).tobytes().translate(_DARK)  # a buffer; the stubs do not say so
    return [pixels[r * n : (r + 1) * n] for r in range(image.shape[0])]


#: Grey level -> module: 1 for dark (below 128), 0 for light.
_DARK = bytes(1 if p < 128 else 0 for p in range(256))
_RUN = re.compile(b"\x01+")


@lru_cache(maxsize=8)  # a document's pages carry the same code
def _qr_ops(url: str, x: float, y: float, size: float) -> str:
    """The QR code drawn dark on a white square with a two-module quiet zone. The modules are
    drawn in module units (one ``cm`` scales them), each row's dark runs as integer rectangles:
    short to write and to read."""
    matrix = qr_matrix(url)
    n = len(matrix)
    module = size / n
    quiet = 2 * module
    ops = [
        f"1 g {x - quiet:.3f} {y - quiet:.3f} {size + 2 * quiet:.3f} {size + 2 * quiet:.3f} re f",
        f"0 g q {module:.5f} 0 0 {module:.5f} {x:.3f} {y:.3f} cm",
    ]
    for r, row in enumerate(matrix):
        bottom = n - 1 - r
        for run in _RUN.finditer(row):
            start, end = run.span()
            ops.append(f"{start} {bottom} {end - start} 1 re")
    ops.append("f Q")
    return "\n".join(ops)


def stamp_content(mark: StampMark, page_width: float, font: StampFont) -> bytes:
    """The content stream drawing one page's stamp."""
    qr_x = page_width - RIGHT_MARGIN - QR_SIZE
    ops = ["q", _qr_ops(mark.url, qr_x, BOTTOM, QR_SIZE)]
    right = qr_x - 2.5 * MM
    lines = [
        ("扫码验证真伪", LABEL_SIZE, BOTTOM + QR_SIZE * 0.62),
        ("验证码 " + display_code(mark.code), CODE_SIZE, BOTTOM + QR_SIZE * 0.36),
    ]
    ops.append("0 g BT")
    for text, size, baseline in lines:
        hexes, width = font.encode(text)
        ops.append(f"{FONT_NAME} {size} Tf 1 0 0 1 {right - width * size:.3f} {baseline:.3f} Tm <{hexes}> Tj")
    ops.append("ET Q")
    return "\n".join(ops).encode("ascii")


def _stamp_page(
    out: pikepdf.Pdf, page: pikepdf.Page, mark: StampMark, font_ref: pikepdf.Object, font: StampFont
) -> None:
    box = page.mediabox
    width = float(box[2])  # the right edge, wherever the box starts
    # Wrap the existing content in q/Q so a graphics state it leaves behind cannot move the stamp.
    page.contents_add(pikepdf.Stream(out, b"q\n"), prepend=True)
    page.contents_add(pikepdf.Stream(out, b"\nQ\n" + stamp_content(mark, width, font)))
    resources = page.obj.get("/Resources")
    if resources is None:
        resources = page.obj.Resources = pikepdf.Dictionary()
    if "/Font" not in resources:
        resources.Font = pikepdf.Dictionary()
    resources.Font[FONT_NAME] = font_ref


def open_pdf(pdf: bytes) -> pikepdf.Pdf:
    try:
        reader = pikepdf.open(io.BytesIO(pdf))
        _ = len(reader.pages)
    except (pikepdf.PdfError, ValueError, KeyError, TypeError) as exc:
        raise PdfInvalid() from exc
    return reader


def split_and_stamp(
    pdf: bytes,
    documents: Sequence[tuple[range, StampMark | None]],
    times: dict[str, float] | None = None,
    dress: Callable[[int, pikepdf.Pdf], None] | None = None,
) -> list[bytes]:
    """One stamped PDF per (page range, mark) of a merged PDF, in order (no stamp where the mark is
    None). Each carries only the objects its pages use, its fonts cut down to the glyphs it shows
    (:func:`~service.documents.compact.compact_fonts`), its streams compressed. ``dress(i, doc)``,
    when given, adds what else document ``i`` should hold before it is written (its signature
    fields). The seconds spent drawing stamps are added to ``times["stamp"]`` and those spent on
    fonts to ``times["fonts"]`` when given."""
    times = times if times is not None else {}
    source = open_pdf(pdf)
    font = stamp_font()
    out: list[bytes] = []
    with source:
        for i, (pages, mark) in enumerate(documents):
            doc = pikepdf.new()
            for index in pages:
                doc.pages.append(source.pages[index])
            t0 = time.perf_counter()
            compact_fonts(doc)
            t1 = time.perf_counter()
            if mark is not None:
                font_ref = font.copy_into(doc)
                for page in doc.pages:
                    _stamp_page(doc, page, mark, font_ref, font)
            t2 = time.perf_counter()
            info = {"/Producer": "docsign", "/Creator": "docsign"}
            if mark is not None:
                info["/DocsignCode"] = mark.code
                if mark.title:
                    info["/Title"] = mark.title
                if mark.kind:
                    info["/DocsignKind"] = mark.kind
            doc.trailer.Info = doc.make_indirect(pikepdf.Dictionary({k: pikepdf.String(v) for k, v in info.items()}))
            if dress is not None:
                dress(i, doc)
            buf = io.BytesIO()
            # objects in compressed object streams (3 KB less a notice); the updates that sign
            # it keep classic cross-reference sections (see sign.py)
            doc.save(
                buf, compress_streams=True, object_stream_mode=pikepdf.ObjectStreamMode.generate, min_version="1.7"
            )
            out.append(buf.getvalue())
            times["fonts"] = times.get("fonts", 0.0) + t1 - t0
            times["stamp"] = times.get("stamp", 0.0) + t2 - t1
    return out


def stamp(pdf: bytes, mark: StampMark) -> bytes:
    """The PDF with ``mark`` on every page."""
    with open_pdf(pdf) as reader:
        count = len(reader.pages)
    return split_and_stamp(pdf, [(range(count), mark)])[0]
