from __future__ import annotations

import io
import zipfile

import pytest
from docx import Document

from service.documents.errors import TemplateRenderFailed
from service.documents.registry import KINDS, example_fields, load_schema
from service.documents.render import CompiledTemplate, complete_context
from service.settings import Settings


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
