"""CJK fonts for what the service draws itself: the verification stamp and the seal.

LibreOffice finds fonts through ``fonts.conf``; pyHanko and Pillow need a file. The Noto CJK
faces ship as ``.ttc`` collections, which pyHanko cannot load, and a full face is 16 MB: so the
stamp font is the Simplified Chinese face subset (fontTools) to the few characters a stamp ever
prints, kept in memory. pyHanko's own default font has no CJK glyphs and writes garbage without
an error, so it is never used for Chinese.
"""

from __future__ import annotations

import io
import string
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from fontTools.ttLib import TTFont

from service.documents.codes import ALPHABET
from service.errors import ConfigurationError

#: Every character a verification stamp prints: its Chinese labels and any URL or code.
STAMP_LABELS = "扫码验证真伪验证码或访问输入核验本文书已数字签名第页共"
STAMP_CHARSET = "".join(sorted(set(STAMP_LABELS + string.printable.strip() + " " + ALPHABET + "：—")))


@dataclass(frozen=True)
class FontFace:
    path: str
    index: int


@lru_cache(maxsize=16)
def find_face(family: str) -> FontFace:
    """The font file and collection index fontconfig picks for a family (for example Noto Sans CJK SC)."""
    try:
        out = subprocess.run(
            ["fc-match", "--format=%{file}\n%{index}", family], check=True, capture_output=True, text=True, timeout=30
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigurationError("未找到 fontconfig（fc-match），请先运行 scripts/setup 安装字体。") from exc
    path, index = out[0], int(out[1] or 0)
    if "Noto" not in path and "CJK" not in family:
        return FontFace(path, index)
    if "Noto" not in path:
        raise ConfigurationError(f"未找到中文字体「{family}」，请先运行 scripts/setup 安装 fonts-noto-cjk。")
    return FontFace(path, index)


def _load_face(face: FontFace, lazy: bool = True) -> TTFont:
    return TTFont(face.path, fontNumber=face.index, lazy=lazy)


@lru_cache(maxsize=4)
def subset_font(family: str, charset: str = STAMP_CHARSET) -> bytes:
    """One face of a collection, subset to ``charset``, as OpenType bytes pyHanko can embed."""
    font = _load_face(find_face(family), lazy=False)
    # Stamps print short labels and codes: no shaping features, hints or vertical metrics needed.
    # The tables are dropped before subsetting, not by it: the subsetter would read the whole
    # layout tables of a CJK face first (half of the 0.3 s a process spends here).
    unused = ["BASE", "VORG", "vhea", "vmtx", "GPOS", "GSUB", "DSIG"]
    for tag in unused:
        if tag in font:
            del font[tag]
    from fontTools import subset  # 0.15 s to import: only processes that stamp pay it

    options = subset.Options()
    options.layout_features = []
    options.hinting = False
    options.desubroutinize = True
    options.drop_tables += unused
    options.name_IDs = [1, 2, 3, 4, 6]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=charset)
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


class TextMeasure:
    """Advance widths of a face, to find where LibreOffice put a line of text."""

    def __init__(self, family: str) -> None:
        font = _load_face(find_face(family))
        self._cmap = font.getBestCmap()
        self._hmtx = font["hmtx"]
        self._upm = font["head"].unitsPerEm
        self._default = self._upm

    def width(self, text: str, size: float) -> float:
        total = 0
        for ch in text:
            glyph = self._cmap.get(ord(ch))
            total += self._hmtx[glyph][0] if glyph else self._default
        return float(total * size / self._upm)


@lru_cache(maxsize=4)
def measure(family: str) -> TextMeasure:
    return TextMeasure(family)
