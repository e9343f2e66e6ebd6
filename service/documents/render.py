"""Render: fields -> DOCX, with docxtpl inside a Jinja2 sandbox.

A template is parsed and compiled once (:class:`CompiledTemplate`) and then renders any number
of documents. :meth:`CompiledTemplate.compose` puts one or many rendered bodies into one DOCX,
each in its own section (new page, page numbers from 1), with its bookmarks renamed
``d{i}x{name}`` and a ``d{i}xstart`` bookmark on its first paragraph, so that after conversion
the PDF's named destinations say which pages belong to which document and where each seal goes.
A single document is a batch of one: the same path serves both.

Uploaded templates are untrusted: rendering runs in :class:`jinja2.sandbox.SandboxedEnvironment`
(no attribute starting with ``_``, no unsafe calls), undefined names fail loudly, and values are
XML-escaped.
"""

from __future__ import annotations

import copy
import io
import re
import threading
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docxtpl import DocxTemplate
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from lxml import etree

from service.documents.errors import TemplateInvalid, TemplateRenderFailed, TemplateUnsafe
from service.documents.fields import FILTERS

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_TAG = re.compile(r"\{[{%]")


def _finalize(value: object) -> object:
    """Absent optional fields print as nothing, not as ``None``."""
    return "" if value is None else value


def make_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined, finalize=_finalize)
    env.filters.update(FILTERS)
    return env


def complete_context(schema: Mapping[str, Any], value: Any) -> Any:
    """The value with every property the schema knows present (None when absent), recursively.

    Templates may then name any optional field, and a name the schema does not know still fails.
    """
    if isinstance(value, Mapping) and schema.get("type") == "object":
        out = {name: complete_context(prop, value.get(name)) for name, prop in schema.get("properties", {}).items()}
        out.update({k: v for k, v in value.items() if k not in out})
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [complete_context(schema["items"], item) for item in value]
    return value


class CompiledTemplate:
    """A .docx template, parsed and compiled once."""

    def __init__(self, docx_bytes: bytes, name: str = "template") -> None:
        self.name = name
        self._bytes = slim_package(docx_bytes)
        self._env = make_environment()
        tpl = self._load()
        try:
            self._probe = tpl
            body = tpl.patch_xml(tpl.get_xml())
            # docxtpl puts each paragraph on its own line so {%p %} tags can strip whole paragraphs;
            # done here once instead of on every render.
            source = re.sub(r"<w:p([ >])", r"\n<w:p\1", body)
            self._template = self._env.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateRenderFailed(
                f"模板「{name}」第{exc.lineno}处的字段标记写法有误：{exc.message}。请检查 {{{{ }}}} 与 {{% %}} 是否成对。",
                details={"template": name, "reason": str(exc.message)},
            ) from exc
        #: Headers and footers with fields cannot be shared by many documents in one DOCX.
        self.static_parts = not any(_TAG.search(xml) for xml in self._header_footer_xml(tpl))
        # The package a single document is composed in, parsed once: its body is swapped in, the
        # package saved, the template's body put back (parsing the .docx again took 35-56 ms).
        self._package = self._load()
        self._package_lock = threading.Lock()

    def _load(self) -> DocxTemplate:
        try:
            tpl = DocxTemplate(io.BytesIO(self._bytes))
            tpl.init_docx()
        except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError, etree.XMLSyntaxError) as exc:
            raise TemplateInvalid(
                f"模板「{self.name}」不是有效的 .docx 文件（{type(exc).__name__}），请用 Word 或 WPS 另存为 .docx 后重新上传。",
                details={"template": self.name},
            ) from exc
        return tpl

    @staticmethod
    def _header_footer_xml(tpl: DocxTemplate) -> list[str]:
        parts = []
        for uri in (tpl.HEADER_URI, tpl.FOOTER_URI):
            for _, part in tpl.get_headers_footers(uri):
                parts.append(tpl.get_part_xml(part))
        return parts

    def render_body(self, context: Mapping[str, Any]) -> str:
        """The rendered ``<w:body>`` XML of one document."""
        try:
            xml = self._template.render(context)
        except SecurityError as exc:
            raise TemplateUnsafe(
                f"模板「{self.name}」含有不允许的表达式，已拒绝填充：{exc}", details={"template": self.name}
            ) from exc
        except UndefinedError as exc:
            raise TemplateRenderFailed(
                f"模板「{self.name}」引用了文书字段中没有的名称：{exc.message}。请修改模板或补充字段。",
                details={"template": self.name, "reason": exc.message},
            ) from exc
        except TemplateError as exc:
            raise TemplateRenderFailed(
                f"模板「{self.name}」填充失败：{exc}", details={"template": self.name, "reason": str(exc)}
            ) from exc
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise TemplateRenderFailed(
                f"模板「{self.name}」中的表达式无法计算：{exc}", details={"template": self.name, "reason": str(exc)}
            ) from exc
        xml = re.sub(r"\n<w:p([ >])", r"<w:p\1", xml)
        xml = xml.replace("{_{", "{{").replace("}_}", "}}").replace("{_%", "{%").replace("%_}", "%}")
        return str(self._probe.resolve_listing(xml))

    def compose(self, bodies: Sequence[str]) -> bytes:
        """One DOCX holding every rendered body, each in its own section starting on a new page."""
        if not bodies:
            raise ValueError("compose needs at least one document")
        if not self.static_parts:
            raise TemplateRenderFailed("页眉页脚中含字段的模板只能逐份转换。")
        if len(bodies) > 1:
            # a merged batch: a fresh parse (about 0.3 ms a document) costs less than taking a
            # hundred bodies back out of the shared package
            return self._compose(self._load(), bodies, restore=False)
        with self._package_lock:
            return self._compose(self._package, bodies, restore=True)

    def _compose(self, tpl: DocxTemplate, bodies: Sequence[str], *, restore: bool) -> bytes:
        new_body = None
        final_sectpr = None
        for i, body_xml in enumerate(bodies):
            body = tpl.fix_tables(body_xml)
            if new_body is None:
                new_body = copy.deepcopy(body)
                for child in list(new_body):
                    new_body.remove(child)
            sectpr = body.find(qn("w:sectPr"))
            if sectpr is None:
                raise TemplateInvalid(f"模板「{self.name}」缺少页面设置（sectPr），请用 Word 或 WPS 重新保存。")
            body.remove(sectpr)
            _restart_page_numbers(sectpr)
            _rename_bookmarks(body, i)
            children = list(body)
            if i < len(bodies) - 1:
                _end_section(children, copy.deepcopy(sectpr))
            else:
                final_sectpr = sectpr
            for child in children:
                new_body.append(child)
        assert new_body is not None and final_sectpr is not None
        new_body.append(final_sectpr)
        tpl.docx_ids_index = 1000  # docxtpl's first id: each composition numbers its drawings alike
        tpl.fix_docpr_ids(new_body)
        root = tpl.docx._element
        original = root.body
        tpl.map_tree(new_body)
        try:
            out = io.BytesIO()
            tpl.docx.save(out)
        finally:
            if restore:
                root.replace(new_body, original)
        return out.getvalue()

    def render(self, context: Mapping[str, Any]) -> bytes:
        """One document as DOCX bytes."""
        return self.compose([self.render_body(context)])


#: Parts of a package that change nothing in a converted document: Word 2010's copy of the styles
#: (LibreOffice reads ``styles.xml``) and the thumbnail Word shows in a file browser.
_UNUSED_PARTS = ("word/stylesWithEffects.xml", "docProps/thumbnail.jpeg")
_STYLE_REF = re.compile(rb'<w:(?:pStyle|rStyle|tblStyle|numStyleLink|styleLink)\s+w:val="([^"]+)"')


def slim_package(docx: bytes) -> bytes:
    """The template package without what no document made from it uses: the styles nothing refers
    to (Word's default template brings about 160, 350 KB of XML that LibreOffice parsed at every
    conversion and python-docx wrote at every save), Word 2010's copy of the styles and the
    thumbnail. One notice converted in about two thirds of the time, with the same PDF.

    A style is kept if any part of the package names it (the body, headers, footers, numbering,
    other styles through ``basedOn``/``link``/``next``) or it is a default style. A package this
    cannot read is returned as it is, for :class:`CompiledTemplate` to judge."""
    try:
        with zipfile.ZipFile(io.BytesIO(docx)) as zin:
            infos = zin.infolist()
            parts = {i.filename: zin.read(i.filename) for i in infos}
        styles = etree.fromstring(parts["word/styles.xml"])
    except (zipfile.BadZipFile, KeyError, ValueError, etree.XMLSyntaxError):
        return docx
    dropped = {name for name in _UNUSED_PARTS if name in parts}
    named = {
        m.decode("utf-8", "replace")
        for name, data in parts.items()
        if name.endswith(".xml") and name != "word/styles.xml"
        for m in _STYLE_REF.findall(data)
    }
    by_id = {el.get(qn("w:styleId")): el for el in styles.findall(qn("w:style"))}
    keep = named | {sid for sid, el in by_id.items() if el.get(qn("w:default")) in ("1", "true", "on")}
    todo = list(keep)
    while todo:
        el = by_id.get(todo.pop())
        for tag in ("w:basedOn", "w:link", "w:next"):
            ref = el.find(qn(tag)) if el is not None else None
            target = ref.get(qn("w:val")) if ref is not None else None
            if target is not None and target not in keep:
                keep.add(target)
                todo.append(target)
    for sid, el in by_id.items():
        if sid not in keep:
            styles.remove(el)
    parts["word/styles.xml"] = etree.tostring(styles, xml_declaration=True, encoding="UTF-8", standalone=True)
    for rels in ("word/_rels/document.xml.rels", "_rels/.rels"):
        if rels in parts:
            for name in dropped:
                target = name.removeprefix("word/") if rels.startswith("word/") else name
                parts[rels] = re.sub(
                    rb'<Relationship [^>]*Target="/?' + re.escape(target.encode()) + rb'"\s*/>', b"", parts[rels]
                )
    if "[Content_Types].xml" in parts:
        for name in dropped:
            parts["[Content_Types].xml"] = re.sub(
                rb'<Override [^>]*PartName="/' + re.escape(name.encode()) + rb'"[^>]*/>',
                b"",
                parts["[Content_Types].xml"],
            )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in infos:
            if info.filename not in dropped:
                zout.writestr(info.filename, parts[info.filename])
    return out.getvalue()


def _restart_page_numbers(sectpr: etree._Element) -> None:
    pg = sectpr.find(qn("w:pgNumType"))
    if pg is None:
        pg = etree.SubElement(sectpr, qn("w:pgNumType"))
        # schema order: pgNumType comes after pgMar/pgSz; appending keeps Word and LibreOffice happy
    pg.set(qn("w:start"), "1")


def _rename_bookmarks(body: etree._Element, index: int) -> None:
    """Bookmarks become ``d{index}x{name}``; a ``d{index}xstart`` bookmark marks the first paragraph."""
    base = (index + 1) * 1000
    for el in body.iter(qn("w:bookmarkStart"), qn("w:bookmarkEnd")):
        ident = int(el.get(qn("w:id"), "0"))
        el.set(qn("w:id"), str(base + ident % 1000))
        if el.tag == qn("w:bookmarkStart"):
            el.set(qn("w:name"), f"d{index}x{el.get(qn('w:name'))}")
    first_p = body.find(f".//{{{_W}}}p")
    if first_p is None:
        raise TemplateInvalid("模板正文为空。")
    start = etree.Element(qn("w:bookmarkStart"))
    start.set(qn("w:id"), str(base + 999))
    start.set(qn("w:name"), f"d{index}xstart")
    end = etree.Element(qn("w:bookmarkEnd"))
    end.set(qn("w:id"), str(base + 999))
    ppr = first_p.find(qn("w:pPr"))
    at = 1 if ppr is not None else 0
    first_p.insert(at, start)
    first_p.insert(at + 1, end)


def _end_section(children: list[etree._Element], sectpr: etree._Element) -> None:
    """Attach a section break to the document's last paragraph (or a hairline paragraph after a table)."""
    last = children[-1] if children else None
    if last is None or last.tag != qn("w:p"):
        last = etree.Element(qn("w:p"))
        ppr = etree.SubElement(last, qn("w:pPr"))
        spacing = etree.SubElement(ppr, qn("w:spacing"))
        spacing.set(qn("w:before"), "0")
        spacing.set(qn("w:after"), "0")
        spacing.set(qn("w:line"), "20")
        spacing.set(qn("w:lineRule"), "exact")
        children.append(last)
    ppr = last.find(qn("w:pPr"))
    if ppr is None:
        ppr = etree.Element(qn("w:pPr"))
        last.insert(0, ppr)
    existing = ppr.find(qn("w:sectPr"))
    if existing is not None:
        ppr.remove(existing)
    ppr.append(sectpr)
