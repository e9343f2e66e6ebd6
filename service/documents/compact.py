"""Compact fonts: each document carries only the glyphs it shows, as compressed CFF.

LibreOffice 7.4 embeds the Noto CJK faces (OpenType CFF) as Type 1 fonts of at most 256 glyphs,
subset to the glyphs of the whole conversion. A merged conversion of a hundred notices puts every
glyph of every name into each notice cut out of it, and a Type 1 program is eexec-encrypted, so
it does not compress: about 60 KB of a notice's 120 KB was its body font.

:func:`compact_fonts` replaces each such program, per document after the split, by a CFF font
(``FontFile3``/``Type1C``) holding only the glyphs the document's pages show. The glyphs come
from the installed face itself (LibreOffice names them by their CID in it: ``/cid15522``), drawn
once per process and kept as compiled Type 2 charstrings, so a document's font is put together,
not computed: a few hundred microseconds. The font dictionary, its ``/Widths`` and ``/ToUnicode``
and the content streams stay as they are, so the page looks the same, its text extracts the same,
and the codes in the content keep their meaning through the font's built-in encoding.

A font this cannot rebuild (another face, a glyph name that is not a CID, a face not installed)
is left as LibreOffice wrote it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import pikepdf
from fontTools.pens.t2CharStringPen import T2CharStringPen
from fontTools.pens.transformPen import TransformPen
from fontTools.ttLib import TTFont

#: A subset tag, then the PostScript name, to which LibreOffice adds "-VKana" (or similar) for the
#: Type 1 pieces it cuts out of one face.
_SUBSET_TAG = re.compile(r"^/?(?:[A-Z]{6}\+)?")
_ENCODING = re.compile(rb"dup (\d+) /(\S+) put")
_CID = re.compile(r"^cid(\d+)$")
_TEXT_OPS = frozenset({"Tj", "TJ", "'", '"'})
#: Glyph units per em of the fonts we build. The Noto CJK faces draw on a 1000-unit em; drawn on
#: 500 (the font matrix scales them back), most coordinate steps of a glyph fit a one-byte number
#: in a Type 2 charstring and the compressed body font of a notice is about 14 % smaller. A point
#: moves by at most 1/1000 em: 0.01 pt at 10.5 pt (五号), a tenth of a printer dot at 600 dpi.
UNITS_PER_EM = 500


@dataclass(frozen=True)
class _Face:
    path: str
    index: int


@lru_cache(maxsize=1)
def _installed_faces() -> dict[str, _Face]:
    """PostScript name -> font file and collection index, as fontconfig knows them."""
    try:
        out = subprocess.run(
            ["fc-list", "--format=%{postscriptname}\t%{file}\t%{index}\n"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    faces: dict[str, _Face] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] and parts[2].isdigit():
            faces.setdefault(parts[0], _Face(parts[1], int(parts[2])))
    return faces


class _Glyphs:
    """One installed face's glyphs as compiled Type 2 charstrings (width first, no hints), by CID,
    drawn on first use."""

    def __init__(self, face: _Face) -> None:
        font = TTFont(face.path, fontNumber=face.index, lazy=True)
        self._glyph_set = font.getGlyphSet()
        self._scale = UNITS_PER_EM / font["head"].unitsPerEm
        head = font["head"]
        self.bbox = [round(v * self._scale) for v in (head.xMin, head.yMin, head.xMax, head.yMax)]
        self._programs: dict[int, bytes | None] = {}
        self._lock = threading.Lock()

    def program(self, cid: int) -> bytes | None:
        with self._lock:
            if cid not in self._programs:
                self._programs[cid] = self._draw(cid)
            return self._programs[cid]

    def _draw(self, cid: int) -> bytes | None:
        name = f"cid{cid:05d}"
        if name not in self._glyph_set:
            return None
        glyph = self._glyph_set[name]
        pen = T2CharStringPen(round(glyph.width * self._scale), self._glyph_set)
        glyph.draw(TransformPen(pen, (self._scale, 0, 0, self._scale, 0, 0)) if self._scale != 1 else pen)
        charstring = pen.getCharString()
        charstring.compile()
        return bytes(charstring.bytecode)


_glyph_lock = threading.Lock()
_glyph_sources: dict[str, _Glyphs | None] = {}


def _glyphs_for(base_font: str) -> _Glyphs | None:
    """The installed face a font's name points to: the name without its subset tag, or without one
    or two of its last hyphenated parts (``NotoSerifCJKjp-Regular-VKana``)."""
    name = _SUBSET_TAG.sub("", base_font)
    with _glyph_lock:
        if name not in _glyph_sources:
            faces = _installed_faces()
            candidates = [name, name.rsplit("-", 1)[0], name.rsplit("-", 2)[0]]
            face = next((faces[c] for c in candidates if c in faces), None)
            _glyph_sources[name] = _Glyphs(face) if face is not None else None
        return _glyph_sources[name]


# --- CFF -------------------------------------------------------------------------------------


def _index(items: list[bytes]) -> bytes:
    """A CFF INDEX."""
    if not items:
        return b"\x00\x00"
    offsets = [1]
    for item in items:
        offsets.append(offsets[-1] + len(item))
    size = 1 if offsets[-1] < 0x100 else 2 if offsets[-1] < 0x10000 else 3 if offsets[-1] < 0x1000000 else 4
    return (
        len(items).to_bytes(2, "big")
        + bytes((size,))
        + b"".join(o.to_bytes(size, "big") for o in offsets)
        + b"".join(items)
    )


def _num(value: int) -> bytes:
    """A DICT integer in its five-byte form, so that offsets can be written before they are known."""
    return b"\x1d" + value.to_bytes(4, "big", signed=True)


#: Standard strings of CFF: custom strings (our glyph names) start after them.
_STANDARD_STRINGS = 391


def _real(value: float) -> bytes:
    """A DICT real number (nibbles: digits, "." as 0xa, "-" as 0xe, 0xf to end)."""
    text = f"{value:.10f}".rstrip("0")
    nibbles = [0xA if ch == "." else 0xE if ch == "-" else int(ch) for ch in text]
    nibbles.append(0xF)
    if len(nibbles) % 2:
        nibbles.append(0xF)
    return b"\x1e" + bytes(nibbles[i] << 4 | nibbles[i + 1] for i in range(0, len(nibbles), 2))


def build_cff(font_name: str, bbox: list[int], glyphs: list[tuple[int, str, bytes]], units_per_em: int = 1000) -> bytes:
    """A name-keyed CFF font (what PDF calls Type1C) of ``glyphs`` (code, glyph name, compiled
    charstring with its width, drawn on ``units_per_em``), whose built-in encoding maps each code to
    its glyph."""
    names = [name.encode("ascii") for _, name, _ in glyphs]
    charstrings = [b"\x0e"] + [program for _, _, program in glyphs]  # .notdef: an empty glyph
    encoding = b"\x00" + bytes((len(glyphs),)) + bytes(code for code, _, _ in glyphs)
    charset = b"\x00" + b"".join((_STANDARD_STRINGS + i).to_bytes(2, "big") for i in range(len(glyphs)))
    private = b"\x8b\x14\x8b\x15"  # defaultWidthX 0, nominalWidthX 0: each glyph carries its width
    header = b"\x01\x00\x04\x04"
    name_index = _index([font_name.encode("ascii")])
    strings = _index(names)
    global_subrs = _index([])
    charstrings_index = _index(charstrings)

    matrix = b""
    if units_per_em != 1000:  # FontMatrix; 1/1000 is the default
        unit = _real(1 / units_per_em)
        matrix = unit + b"\x8b\x8b" + unit + b"\x8b\x8b\x0c\x07"

    def top(charset_at: int, encoding_at: int, charstrings_at: int, private_at: int) -> bytes:
        return (
            matrix
            + b"".join(_num(v) for v in bbox)
            + b"\x05"
            + _num(charset_at)
            + b"\x0f"
            + _num(encoding_at)
            + b"\x10"
            + _num(charstrings_at)
            + b"\x11"
            + _num(len(private))
            + _num(private_at)
            + b"\x12"
        )

    top_size = len(_index([top(0, 0, 0, 0)]))
    encoding_at = len(header) + len(name_index) + top_size + len(strings) + len(global_subrs)
    charset_at = encoding_at + len(encoding)
    charstrings_at = charset_at + len(charset)
    private_at = charstrings_at + len(charstrings_index)
    top_index = _index([top(charset_at, encoding_at, charstrings_at, private_at)])
    assert len(top_index) == top_size
    return header + name_index + top_index + strings + global_subrs + encoding + charset + charstrings_index + private


# --- documents -------------------------------------------------------------------------------


def _strings(operands: Iterable[object]) -> Iterator[bytes]:
    for operand in operands:
        if isinstance(operand, pikepdf.String):
            yield bytes(operand)
        elif isinstance(operand, pikepdf.Array):
            yield from _strings(operand)


def _codes_used(
    container: pikepdf.Object, resources: pikepdf.Object | None, used: dict[tuple[int, int], set[int]], depth: int = 0
) -> None:
    """Add the character codes each font shows in a page or form XObject (forms followed)."""
    if depth > 8 or resources is None:
        return
    fonts = resources.get("/Font")
    xobjects = resources.get("/XObject")
    current: tuple[int, int] | None = None
    for instruction in pikepdf.parse_content_stream(container, "Tf Tj TJ ' \" Do"):
        if not isinstance(instruction, pikepdf.ContentStreamInstruction):
            continue
        operands, op = instruction.operands, str(instruction.operator)
        if op == "Tf" and operands and fonts is not None:
            font = fonts.get(str(operands[0]))
            current = font.objgen if font is not None and font.is_indirect else None
            if current is not None:
                used.setdefault(current, set())
        elif op in _TEXT_OPS and current is not None:
            codes = used[current]
            for data in _strings(operands):
                codes.update(data)
        elif op == "Do" and operands and xobjects is not None:
            form = xobjects.get(str(operands[0]))
            if form is not None and form.get("/Subtype") == "/Form":
                _codes_used(form, form.get("/Resources", resources), used, depth + 1)


_TOKENS = re.compile(rb"/([^\s/<>\[\]()%{}]+)\s+[-+\d.]+\s+Tf\b|<([0-9A-Fa-f\s]*)>")
_SLOW = re.compile(rb"[(]|\bBI\b")


def _page_codes(page: pikepdf.Page, used: dict[tuple[int, int], set[int]]) -> None:
    """The codes each font of ``page`` shows. LibreOffice writes text as hex strings: those pages
    are scanned with one regular expression; anything else (literal strings, inline images, forms
    with their own fonts) goes through pikepdf's parser."""
    resources = page.obj.get("/Resources")
    if resources is None:
        return
    fonts = resources.get("/Font")
    xobjects = resources.get("/XObject")
    forms = xobjects is not None and any(x.get("/Subtype") == "/Form" for _, x in xobjects.items())
    contents = page.obj.get("/Contents")
    parts = [] if contents is None else list(contents) if isinstance(contents, pikepdf.Array) else [contents]
    data = b"\n".join(part.read_bytes() for part in parts)
    if forms or fonts is None or _SLOW.search(data):
        _codes_used(page.obj, resources, used)
        return
    by_name: dict[bytes, tuple[int, int] | None] = {}
    current: set[int] | None = None
    for match in _TOKENS.finditer(data):
        name, hexes = match.groups()
        if name is not None:
            if name not in by_name:
                font = fonts.get("/" + name.decode("latin-1"))
                by_name[name] = font.objgen if font is not None and font.is_indirect else None
            key = by_name[name]
            current = used.setdefault(key, set()) if key is not None else None
        elif current is not None:
            current.update(bytes.fromhex(hexes.decode("ascii") + ("0" if len(hexes.strip()) % 2 else "")))


def compact_fonts(pdf: pikepdf.Pdf) -> None:
    """Replace each LibreOffice Type 1 font of ``pdf`` by a compressed CFF font of the glyphs its
    pages show (see the module's docstring); fonts it cannot rebuild stay as they are."""
    used: dict[tuple[int, int], set[int]] = {}
    fonts: dict[tuple[int, int], pikepdf.Object] = {}
    for page in pdf.pages:
        _page_codes(page, used)
        resources = page.obj.get("/Resources")
        page_fonts = resources.get("/Font") if resources is not None else None
        if page_fonts is not None:
            for _, font in page_fonts.items():
                if font.is_indirect:
                    fonts[font.objgen] = font
    for key, font in fonts.items():
        _compact_font(pdf, font, used.get(key, set()))


_encodings: dict[bytes, dict[int, str]] = {}


def _encoding(program: pikepdf.Stream) -> dict[int, str]:
    """Code -> glyph name, from a Type 1 program's clear-text part; every document cut out of one
    conversion carries the same program, so it is read once."""
    key = hashlib.sha1(program.read_raw_bytes()).digest()
    found = _encodings.get(key)
    if found is None:
        clear = program.read_bytes()[: int(program.Length1)]
        found = {int(code): name.decode("ascii", "replace") for code, name in _ENCODING.findall(clear)}
        if len(_encodings) > 64:
            _encodings.clear()
        _encodings[key] = found
    return found


def _compact_font(pdf: pikepdf.Pdf, font: pikepdf.Object, codes: set[int]) -> None:
    if font.get("/Subtype") != "/Type1" or "/Encoding" in font:
        return
    descriptor = font.get("/FontDescriptor")
    program = descriptor.get("/FontFile") if descriptor is not None else None
    if descriptor is None or not isinstance(program, pikepdf.Stream) or "/Length1" not in program:
        return
    glyphs = _glyphs_for(str(font.get("/BaseFont", "")))
    if glyphs is None:
        return
    encoding = _encoding(program)
    chosen: list[tuple[int, str, bytes]] = []
    names: set[str] = set()
    for code in sorted(codes):
        name = encoding.get(code)
        cid = _CID.match(name) if name else None
        charstring = glyphs.program(int(cid.group(1))) if cid else None
        if name is None or charstring is None:
            if name is None or name == ".notdef":
                continue  # a code with no glyph shows nothing, as before
            return  # a glyph we cannot rebuild: keep LibreOffice's font
        unique = f"{name}.{code}" if name in names else name  # two codes for one glyph
        names.add(unique)
        chosen.append((code, unique, charstring))
    font_name = str(font.BaseFont)[1:]
    cff = build_cff(font_name, glyphs.bbox, chosen, UNITS_PER_EM)
    stream = pikepdf.Stream(pdf, b"")
    stream.write(zlib.compress(cff, 6), filter=pikepdf.Name.FlateDecode)
    stream.Subtype = pikepdf.Name.Type1C
    del descriptor["/FontFile"]
    if "/CharSet" in descriptor:
        del descriptor["/CharSet"]
    descriptor.FontFile3 = pdf.make_indirect(stream)
