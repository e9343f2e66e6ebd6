"""Compact fonts: a document cut out of a conversion carries its own glyphs as CFF and still looks,
reads and checks as LibreOffice wrote it."""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

import pikepdf
from fontTools.cffLib import CFFFontSet
from PIL import Image, ImageChops

from service.documents.compact import build_cff
from service.documents.fields import validate_fields
from service.documents.pipeline import DocumentEngine
from service.documents.registry import KINDS, example_fields, load_schema
from service.documents.render import complete_context
from service.documents.stamp import split_and_stamp
from service.settings import Settings
from tests import checks


def _pages_png(pdf: bytes, dpi: int = 100) -> list[Image.Image]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "doc.pdf")
        src.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(src), str(Path(tmp, "p"))], check=True, timeout=120)
        return [Image.open(p).convert("L").copy() for p in sorted(Path(tmp).glob("p-*.png"))]


def _font_programs(pdf: bytes) -> dict[str, str]:
    """Font name -> which program it embeds."""
    found = {}
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        for page in doc.pages:
            for _, font in page.Resources.Font.items():
                descriptor = font.get("/FontDescriptor") or font.DescendantFonts[0].FontDescriptor
                found[str(font.BaseFont)] = next(k for k in descriptor if k.startswith("/FontFile"))
    return found


def test_a_compacted_notice_looks_reads_and_checks_as_converted(engine: DocumentEngine, settings: Settings) -> None:
    kind = KINDS["enrollment_notice"]
    converted = engine.preview(kind.key, example_fields(kind, settings.schemas_dir))
    before = _font_programs(converted)
    assert any(program == "/FontFile" for program in before.values())  # LibreOffice's Type 1 pieces
    pages = checks.page_count(converted)
    compacted = split_and_stamp(converted, [(range(pages), None)])[0]

    after = _font_programs(compacted)
    assert after.keys() == before.keys() and set(after.values()) == {"/FontFile3"}
    assert all(row["emb"] == "yes" for row in checks.pdffonts(compacted))
    assert checks.qpdf_check(compacted).returncode == 0
    assert checks.pdftotext(compacted) == checks.pdftotext(converted)
    for a, b in zip(_pages_png(converted), _pages_png(compacted), strict=True):
        # glyphs are redrawn on a 500-unit em: an edge pixel may shade a little differently, no
        # stroke moves (a stroke one pixel off differs by the full range at its edges)
        assert ImageChops.difference(a, b).getextrema()[1] <= 64
    assert len(compacted) < len(converted) * 0.8


def _glyph_names(pdf: bytes) -> dict[str, set[str]]:
    """Font name (without its subset tag) -> the glyph names its CFF program holds."""
    out: dict[str, set[str]] = {}
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        for page in doc.pages:
            for _, font in page.Resources.Font.items():
                cff = CFFFontSet()
                cff.decompile(io.BytesIO(font.FontDescriptor.FontFile3.read_bytes()), None)
                top = cff[cff.fontNames[0]]
                codes = {c for c, name in enumerate(top.Encoding) if name != ".notdef"}
                assert {top.Encoding[c] for c in codes} == set(top.charset[1:])  # every glyph has its code
                out.setdefault(str(font.BaseFont)[8:], set()).update(top.charset[1:])
    return out


def test_each_document_of_a_merged_conversion_holds_only_its_own_glyphs(
    engine: DocumentEngine, settings: Settings
) -> None:
    kind = KINDS["enrollment_notice"]
    template, schema = engine.template(kind), load_schema(kind, settings.schemas_dir)
    base = example_fields(kind, settings.schemas_dir)
    bodies = [
        template.render_body(complete_context(schema, validate_fields(kind, base | names, settings.schemas_dir)))
        for names in (
            {"student_name": "甲乙丙", "guardian_name": "丁戊己"},
            {"student_name": "庚辛壬", "guardian_name": "癸酉戌"},
        )
    ]
    merged = engine.converter.convert(template.compose(bodies))
    first, second = split_and_stamp(merged, [(range(0, 1), None), (range(1, 2), None)])
    a, b = _glyph_names(first), _glyph_names(second)
    regular = next(name for name in a if "Regular" in name)
    only_a, only_b = a[regular] - b[regular], b[regular] - a[regular]
    assert len(only_a) == len(only_b) == 6  # each notice's six name characters, and no other's
    assert "甲乙丙" in checks.pdftotext(first) and "庚辛壬" not in checks.pdftotext(first)
    assert "庚辛壬" in checks.pdftotext(second)


def test_build_cff_is_a_font_fonttools_reads_back() -> None:
    glyphs = [(65, "cid00034", b"\x8b\x0e"), (66, "cid00035", b"\x8b\x0e"), (67, "cid00034.67", b"\x8b\x0e")]
    data = build_cff("ABCDEF+Test-Regular", [0, -100, 1000, 900], glyphs)
    cff = CFFFontSet()
    cff.decompile(io.BytesIO(data), None)
    top = cff["ABCDEF+Test-Regular"]
    assert top.charset == [".notdef", "cid00034", "cid00035", "cid00034.67"]
    assert [top.Encoding[c] for c in (65, 66, 67)] == ["cid00034", "cid00035", "cid00034.67"]
    assert list(top.FontBBox) == [0, -100, 1000, 900]


def test_a_font_drawn_on_a_smaller_em_says_so_in_its_font_matrix() -> None:
    data = build_cff("ABCDEF+Test-Regular", [0, -50, 500, 450], [(65, "cid00034", b"\x8b\x0e")], 500)
    cff = CFFFontSet()
    cff.decompile(io.BytesIO(data), None)
    assert list(cff["ABCDEF+Test-Regular"].FontMatrix) == [0.002, 0, 0, 0.002, 0, 0]
