from __future__ import annotations

import io
import re
import zipfile

import pytest
from docx import Document
from PIL import ImageChops

from service.documents.errors import TemplateRenderFailed
from service.documents.pipeline import DocumentEngine
from service.documents.registry import KINDS, example_fields, load_schema
from service.documents.render import CompiledTemplate, complete_context, slim_package
from service.settings import Settings
from tests import checks
from tests.documents.test_compact import _pages_png


def _template(settings: Settings, key: str) -> tuple[CompiledTemplate, dict[str, object]]:
    kind = KINDS[key]
    tpl = CompiledTemplate(kind.template_path(settings.templates_dir).read_bytes(), kind.title)
    ctx = complete_context(load_schema(kind, settings.schemas_dir), example_fields(kind, settings.schemas_dir))
    return tpl, ctx


def test_values_are_escaped_as_text(settings: Settings) -> None:
    tpl, ctx = _template(settings, "enrollment_notice")
    ctx["guardian_name"] = "张<三>&李"
    docx = tpl.render(ctx)
    xml = zipfile.ZipFile(io.BytesIO(docx)).read("word/document.xml").decode()
    assert "张&lt;三&gt;&amp;李" in xml
    assert "张<三>" not in xml


def test_merged_documents_get_their_own_sections_and_bookmarks(settings: Settings) -> None:
    tpl, ctx = _template(settings, "enrollment_notice")
    bodies = [tpl.render_body({**ctx, "student_name": f"学生{i}"}) for i in range(3)]
    xml = zipfile.ZipFile(io.BytesIO(tpl.compose(bodies))).read("word/document.xml").decode()
    for i in range(3):
        assert f'w:name="d{i}xstart"' in xml and f'w:name="d{i}xsigissuer"' in xml and f"学生{i}" in xml
    assert xml.count("<w:sectPr") == 3
    assert xml.count('w:start="1"') == 3  # page numbers restart for every document


def test_optional_fields_absent_print_nothing(settings: Settings) -> None:
    tpl, ctx = _template(settings, "enrollment_notice")
    ctx["school_address"] = None
    ctx["contact_phone"] = None
    xml = zipfile.ZipFile(io.BytesIO(tpl.render(ctx))).read("word/document.xml").decode()
    assert "学校地址" not in xml and "联系电话" not in xml and "None" not in xml


def test_a_name_the_schema_does_not_know_fails_loudly() -> None:
    doc = Document()
    doc.add_paragraph("{{ guardian_nmae }}")
    buf = io.BytesIO()
    doc.save(buf)
    with pytest.raises(TemplateRenderFailed) as exc:
        CompiledTemplate(buf.getvalue(), "自定义模板").render({"guardian_name": "张三"})
    assert "guardian_nmae" in exc.value.message


def test_broken_tag_syntax(settings: Settings) -> None:
    doc = Document()
    doc.add_paragraph("{% if guardian_name %}没有结束")
    buf = io.BytesIO()
    doc.save(buf)
    with pytest.raises(TemplateRenderFailed) as exc:
        CompiledTemplate(buf.getvalue(), "自定义模板")
    assert exc.value.code == "TEMPLATE_RENDER_FAILED"


def _styles(docx: bytes) -> set[str]:
    xml = zipfile.ZipFile(io.BytesIO(docx)).read("word/styles.xml").decode()
    return set(re.findall(r'<w:style [^>]*w:styleId="([^"]+)"', xml))


def test_a_compiled_template_keeps_only_the_styles_its_documents_use(settings: Settings) -> None:
    original = KINDS["enrollment_notice"].template_path(settings.templates_dir).read_bytes()
    slim = slim_package(original)
    kept, before = _styles(slim), _styles(original)
    assert len(before) > 100 and len(kept) < 20  # Word's default template's styles, mostly unused
    assert {"Normal", "Footer", "FooterChar", "TableNormal"} <= kept  # the default, the footer's and its link
    names = zipfile.ZipFile(io.BytesIO(slim)).namelist()
    assert "word/stylesWithEffects.xml" not in names and "docProps/thumbnail.jpeg" not in names
    rels = zipfile.ZipFile(io.BytesIO(slim)).read("word/_rels/document.xml.rels").decode()
    assert "stylesWithEffects" not in rels
    tpl = CompiledTemplate(original, "通知书")
    docx = tpl.render(
        complete_context(
            load_schema(KINDS["enrollment_notice"], settings.schemas_dir),
            {**example_fields(KINDS["enrollment_notice"], settings.schemas_dir)},
        )
    )
    assert _styles(docx) == kept and len(docx) < len(original) / 2
    Document(io.BytesIO(docx))  # python-docx reads what we wrote


def test_a_style_named_only_through_another_is_kept() -> None:
    buf = io.BytesIO()
    doc = Document()
    doc.add_paragraph("正文", style="Quote")  # Quote is based on Normal and linked to QuoteChar
    doc.save(buf)
    kept = _styles(slim_package(buf.getvalue()))
    assert {"Quote", "QuoteChar", "Normal"} <= kept and "Heading1" not in kept


def test_a_notice_from_the_slim_template_converts_to_the_same_pages(engine: DocumentEngine, settings: Settings) -> None:
    kind = KINDS["enrollment_notice"]
    tpl, ctx = _template(settings, kind.key)
    slim_docx = tpl.render(ctx)
    # the same document in the template's full package: the rendered body put back into it
    full = zipfile.ZipFile(io.BytesIO(kind.template_path(settings.templates_dir).read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in full.namelist():
            data = full.read(name)
            if name == "word/document.xml":
                data = zipfile.ZipFile(io.BytesIO(slim_docx)).read(name)
            z.writestr(name, data)
    slim_pdf, full_pdf = engine.converter.convert(slim_docx), engine.converter.convert(out.getvalue())
    assert checks.pdftotext(slim_pdf) == checks.pdftotext(full_pdf)
    for a, b in zip(_pages_png(slim_pdf), _pages_png(full_pdf), strict=True):
        assert ImageChops.difference(a, b).getbbox() is None  # not one pixel differs
