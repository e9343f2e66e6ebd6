"""Builds the official .docx templates in templates/ (run: .venv/bin/python scripts/build_templates.py).

The committed .docx files are the product: a bureau opens and edits them in Word or WPS. This
script is how they were made, kept so a change to the shared layout (margins, fonts, signature
blocks) is made once and applied to all seven. Layout follows GB/T 9704-2012 (党政机关公文格式):
A4, margins 37/35/28/26 mm, title in 2号小标宋, body in 3号仿宋 with 28.95 pt exact line spacing,
first-level headings in 黑体, second-level in 楷体, page numbers "— 1 —" in 4号宋体; 28 characters
a line and 22 lines a page, as WPS sets a 公文. The two 责任书 are the exception: their wording
needs about 60 lines, and the Licheng notice has them printed on one sheet, both sides, so their
body is 4号 at 19.9 pt (31 x 32); their title and signature blocks keep the 公文 sizes.

Nothing forces a page break inside a document (the merged conversion puts each document in its
own section, which is what starts it on a new page). Headings keep with the paragraph after them,
the last paragraph keeps with the signature block, table rows never split, and the 一生一表's
劝返记录 heading rows repeat on every page. An official field that is empty prints a dash.

Fields are Jinja2 tags ({{ guardian_name }}); each signature block carries a Word bookmark
(sigissuer, sigbureau, sigunit, sigschool) that tells the signing stage where the seal lands.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from docx import Document
from docx.enum.section import WD_SECTION_START
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "templates"

TITLE_FONT = "方正小标宋简体"
BODY_FONT = "仿宋_GB2312"
H1_FONT = "黑体"
H2_FONT = "楷体_GB2312"
NUMBER_FONT = "宋体"

BODY_PT = 16  # 3号
TITLE_PT = 22  # 2号
TABLE_PT = 12  # 小四
SMALL_PT = 10.5  # 五号
LINE_TWIPS = 579  # 28.95 pt: 22 lines in the 225 mm type area
TEXT_WIDTH_TWIPS = int(Mm(156).twips)  # 210 - 28 - 26 mm


@dataclass(frozen=True)
class Layout:
    """Body text size, exact line pitch and character pitch of one document."""

    body_pt: float
    #: exact line spacing, in twips
    line: int
    #: character spacing, in twentieths of a point: -5 narrows 3号 to 15.75 pt a character, so a
    #: line holds 28 characters as in a WPS 公文 set on its 28 x 22 document grid (LibreOffice does
    #: not lay out Word's character grid, so the pitch is set on the characters themselves).
    condense: int

    @property
    def char(self) -> int:
        """One full-width character of body text, in twips (indents are counted in characters)."""
        return int(self.body_pt * 20 + self.condense)


#: GB/T 9704: 3号仿宋, 28 characters a line, 22 lines a page.
GB = Layout(BODY_PT, LINE_TWIPS, -5)
#: The 责任书 (about 60 lines of wording at 3号) on one sheet printed on both sides, as the Licheng
#: notice asks: 4号仿宋 (31 characters a line) at an exact 19.9 pt, 32 lines a page. The title, the
#: signature blocks and the seal keep their 公文 sizes.
COMPACT = Layout(14, 398, 0)

#: Where the issuing unit's name and the date are centred (a centre tab stop), from the left edge of
#: the type area: 20 characters in, so a 12-character bureau name ends two characters from the
#: right edge (右空二字) and the date below it about four (成文日期右空四字, GB/T 9704 7.3.5.1).
SIGNATURE_CENTRE_TWIPS = 20 * GB.char
NESTED_TRIM_TWIPS = 15


# --- low-level helpers -------------------------------------------------------------------------


def _el(tag: str, **attrs: str) -> OxmlElement:
    el = OxmlElement(tag)
    for k, v in attrs.items():
        el.set(qn(f"w:{k}"), v)
    return el


def _fonts(rpr, font: str) -> None:
    rfonts = rpr.find(qn("w:rFonts"))
    if rfonts is None:
        rfonts = _el("w:rFonts")
        rpr.insert(0, rfonts)
    for attr in ("ascii", "hAnsi", "eastAsia", "cs"):
        rfonts.set(qn(f"w:{attr}"), font)


def run(paragraph, text: str, *, font: str = BODY_FONT, size: float = BODY_PT, bold: bool = False, spacing=None):
    """A run of text; ``spacing`` (twentieths of a point) overrides the style's character pitch."""
    r = paragraph.add_run(text)
    r.font.size = Pt(size)
    r.font.bold = bold or None
    rpr = r._element.get_or_add_rPr()
    _fonts(rpr, font)
    if spacing is not None:
        rpr.find(qn("w:sz")).addprevious(_el("w:spacing", val=str(spacing)))
    return r


def fmt(
    paragraph,
    *,
    align: str | None = None,
    first_line: int = 0,
    left: int = 0,
    right: int = 0,
    line: int | None = LINE_TWIPS,
    before: int = 0,
    after: int = 0,
    keep_next: bool = False,
    centre_tab: int | None = None,
) -> None:
    """Paragraph properties, written in the order the OOXML schema asks (Word refuses others)."""
    ppr = paragraph._p.get_or_add_pPr()
    if keep_next:
        ppr.append(_el("w:keepNext"))
    if centre_tab is not None:
        tabs = _el("w:tabs")
        tabs.append(_el("w:tab", val="center", pos=str(centre_tab)))
        ppr.append(tabs)
    spacing = _el("w:spacing", before=str(before), after=str(after))
    if line:
        spacing.set(qn("w:line"), str(line))
        spacing.set(qn("w:lineRule"), "exact")
    ppr.append(spacing)
    ind = _el("w:ind", left=str(left), right=str(right))
    if first_line:
        ind.set(qn("w:firstLine"), str(first_line))
    ppr.append(ind)
    if align:
        ppr.append(_el("w:jc", val=align))


def bookmark(paragraph, name: str, ident: int, first_run=None) -> None:
    """A bookmark from ``first_run`` (default: the paragraph's first run) to the paragraph's end.

    LibreOffice exports it as a named destination at the position of its first character, which
    is where the signing stage measures the seal from.
    """
    start = _el("w:bookmarkStart", id=str(ident), name=name)
    end = _el("w:bookmarkEnd", id=str(ident))
    if first_run is None:
        first_run = paragraph._p.find(qn("w:r"))
    first_run.addprevious(start)
    paragraph._p.append(end)


def tab_run(paragraph, size: float = BODY_PT):
    r = run(paragraph, "", size=size)
    r._element.append(_el("w:tab"))
    return r


class Doc:
    def __init__(self, layout: Layout = GB) -> None:
        self.layout = layout
        self.doc = Document()
        self._setup()

    def _setup(self) -> None:
        d = self.doc
        lay = self.layout
        section = d.sections[0]
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.top_margin, section.bottom_margin = Mm(37), Mm(35)
        section.left_margin, section.right_margin = Mm(28), Mm(26)
        section.header_distance, section.footer_distance = Mm(15), Mm(20)
        section.start_type = WD_SECTION_START.NEW_PAGE
        # Document defaults: 仿宋 at the layout's size and pitch, Chinese language, no spacing,
        # widow and orphan control on (WPS's 孤行控制).
        normal = d.styles["Normal"]
        normal.font.size = Pt(lay.body_pt)
        rpr = normal.element.get_or_add_rPr()
        _fonts(rpr, BODY_FONT)
        if lay.condense:
            rpr.find(qn("w:sz")).addprevious(_el("w:spacing", val=str(lay.condense)))
        rpr.append(_el("w:lang", val="zh-CN", eastAsia="zh-CN", bidi="ar-SA"))
        ppr = normal.element.get_or_add_pPr()
        ppr.append(_el("w:widowControl"))
        ppr.append(_el("w:spacing", before="0", after="0", line=str(lay.line), lineRule="exact"))
        ppr.append(_el("w:jc", val="both"))
        # Page number "— 1 —", centered, 4号宋体 (14 pt).
        footer = section.footer
        p = footer.paragraphs[0]
        fmt(p, align="center", line=None)
        run(p, "— ", font=NUMBER_FONT, size=14, spacing=0)
        fld = _el("w:fldSimple", instr="PAGE")
        r = _el("w:r")
        rpr = _el("w:rPr")
        _fonts(rpr, NUMBER_FONT)
        rpr.append(_el("w:spacing", val="0"))
        rpr.append(_el("w:sz", val="28"))
        r.append(rpr)
        t = _el("w:t")
        t.text = "1"
        r.append(t)
        fld.append(r)
        p._p.append(fld)
        run(p, " —", font=NUMBER_FONT, size=14, spacing=0)
        # python-docx starts with one empty paragraph; reuse it for the title.
        self._first = d.paragraphs[0] if d.paragraphs else None
        self._bookmarks = 0

    def _para(self):
        if self._first is not None:
            p, self._first = self._first, None
            return p
        return self.doc.add_paragraph()

    def title(self, text: str, *, after_lines: float = 1) -> None:
        """2号小标宋 on one line of the 3号 grid (as WPS snaps it), then ``after_lines`` blank lines."""
        p = self._para()
        fmt(p, align="center", line=LINE_TWIPS, after=int(LINE_TWIPS * after_lines))
        run(p, text, font=TITLE_FONT, size=TITLE_PT, spacing=0)

    def subtitle(self, text: str, *, after_lines: float = 1) -> None:
        p = self._para()
        fmt(p, align="center", line=LINE_TWIPS, after=int(LINE_TWIPS * after_lines))
        run(p, text, font=H2_FONT, size=BODY_PT, spacing=0)

    def plain(
        self,
        text: str,
        *,
        indent: bool = True,
        align: str | None = None,
        font: str = BODY_FONT,
        keep_next: bool = False,
        size: float | None = None,
        line: int | None = None,
    ):
        lay = self.layout
        p = self._para()
        fmt(
            p,
            first_line=2 * lay.char if indent else 0,
            align=align,
            keep_next=keep_next,
            line=line or lay.line,
        )
        run(p, text, font=font, size=size or lay.body_pt)
        return p

    def h1(self, text: str) -> None:
        self.plain(text, font=H1_FONT, keep_next=True)

    def h2(self, text: str) -> None:
        self.plain(text, font=H2_FONT, keep_next=True)

    def blank(self, keep_next: bool = False, line: int | None = None) -> None:
        p = self._para()
        fmt(p, keep_next=keep_next, line=line or self.layout.line)

    def tag(self, text: str) -> None:
        """A paragraph holding only a docxtpl paragraph tag ({%p if ... %}); it is removed on render."""
        p = self._para()
        fmt(p, line=self.layout.line)
        run(p, text, size=self.layout.body_pt)

    def bookmark(self, paragraph, name: str, first_run=None) -> None:
        self._bookmarks += 1
        bookmark(paragraph, name, self._bookmarks, first_run)

    # --- tables ---------------------------------------------------------------------------

    def table(self, widths_mm: list[float], *, borders: bool = True, inside=None, top: bool = True):
        """A fixed-width table; ``inside`` a cell makes it a nested table (which then drops the
        cell's leading empty paragraph), ``top=False`` leaves off its top border."""
        if inside is None:
            t = self.doc.add_table(rows=0, cols=len(widths_mm))
        else:
            t = inside.add_table(rows=0, cols=len(widths_mm))
            first = inside._tc.find(qn("w:p"))
            if first is not None and first.getnext() is t._tbl:
                inside._tc.remove(first)
        tbl = t._tbl
        tblpr = tbl.tblPr
        for old in tblpr.findall(qn("w:tblW")):
            tblpr.remove(old)
        look = tblpr.find(qn("w:tblLook"))
        twips = [int(Mm(w).twips) for w in widths_mm]
        if inside is not None:
            # LibreOffice keeps the width of the outer table's side borders out of a cell (even
            # with no border drawn) and scales a nested table that is wider; taking it off the
            # last column keeps the nested columns on the outer table's column lines.
            twips[-1] -= NESTED_TRIM_TWIPS
        b = _el("w:tblBorders")
        for side in ("top", "left", "bottom", "right", "insideH", "insideV"):
            line = borders and (top or side != "top")
            b.append(_el(f"w:{side}", val="single" if line else "nil", sz="6", space="0", color="000000"))
        margins = _el("w:tblCellMar")
        for side, w in (("left", "85"), ("right", "85")):
            margins.append(_el(f"w:{side}", w=w, type="dxa"))
        for el in (
            _el("w:tblW", w=str(sum(twips)), type="dxa"),
            _el("w:jc", val="center" if inside is None else "left"),
            b,
            _el("w:tblLayout", type="fixed"),
            margins,
        ):
            if look is not None:
                look.addprevious(el)
            else:
                tblpr.append(el)
        grid = tbl.tblGrid
        for col, w in zip(grid.findall(qn("w:gridCol")), twips, strict=True):
            col.set(qn("w:w"), str(w))
        t._widths = twips
        return t

    def row(
        self,
        table,
        cells: list[str | tuple[str, int]],
        *,
        size: float = TABLE_PT,
        align: str = "center",
        min_height_mm: float | None = 6.5,
        font: str = BODY_FONT,
        line: int | None = None,
        header: bool = False,
        keep_next: bool = False,
    ):
        """One table row that never splits across pages; a cell is text or (text, columns spanned).

        ``header`` rows repeat at the top of every page the table runs onto. ``keep_next`` keeps
        the row on the page of what follows it.
        """
        r = table.add_row()
        tr = r._tr
        trpr = tr.get_or_add_trPr()
        trpr.append(_el("w:cantSplit"))
        if min_height_mm:
            trpr.append(_el("w:trHeight", val=str(int(Mm(min_height_mm).twips)), hRule="atLeast"))
        if header:
            trpr.append(_el("w:tblHeader"))
        col = 0
        merged: list[tuple[int, int]] = []
        for spec in cells:
            text, span = (spec, 1) if isinstance(spec, str) else spec
            if span > 1:
                merged.append((col, col + span - 1))
            col += span
        assert col == len(table.columns), (cells, col, len(table.columns))
        for a, b in merged:
            r.cells[a].merge(r.cells[b])
        col = 0
        for spec in cells:
            text, span = (spec, 1) if isinstance(spec, str) else spec
            cell = r.cells[col]
            tcpr = cell._tc.get_or_add_tcPr()
            tcpr.append(_el("w:vAlign", val="center"))
            p = cell.paragraphs[0]
            fmt(p, align=align, line=line or int(size * 20 * 1.3), keep_next=keep_next)
            if text:
                run(p, text, size=size, font=font, spacing=0)
            col += span
        return r


def dated_signature(d: Doc, name_expr: str, date_expr: str, anchor: str, new_paragraph=None) -> None:
    """The issuing unit's name centred over the date, right of the page (GB/T 9704 7.3.5.1).

    One blank line above leaves room for the seal, placed over both (骑年盖月) by the signing
    stage; its top then reaches the last line of the body, 上距正文一行之内. Both lines sit on a
    centre tab stop, so the name stays centred on the date whatever its length, and the whole
    block, with the paragraph before it, keeps to one page. ``new_paragraph`` adds the lines
    somewhere other than the end of the document (a table cell).
    """
    add = new_paragraph or d._para
    fmt(add(), line=LINE_TWIPS, keep_next=True)
    p = add()
    fmt(p, line=LINE_TWIPS, keep_next=True, centre_tab=SIGNATURE_CENTRE_TWIPS, align="left")
    tab_run(p)
    name = run(p, name_expr, spacing=0)
    d.bookmark(p, anchor, first_run=name._element)
    p = add()
    fmt(p, line=LINE_TWIPS, centre_tab=SIGNATURE_CENTRE_TWIPS, align="left")
    tab_run(p)
    run(p, date_expr, spacing=0)


def party_block(cell, label: str, name_expr: str, sign_label: str, date_expr: str, doc: Doc, anchor: str) -> None:
    """A party's signature block in a cell: 甲方（盖章）/ unit / 负责人签字 / date.

    Always 3号 on the 28.95 pt line, whatever the body's layout: the signing stage places the seal
    and the handwritten signature at fixed offsets from the block's first line.
    """
    first = cell.paragraphs[0]
    fmt(first, align="left", line=LINE_TWIPS, keep_next=True)
    run(first, label, spacing=0)
    doc.bookmark(first, anchor)
    for i, text in enumerate((name_expr, sign_label, date_expr)):
        p = cell.add_paragraph()
        fmt(p, align="left", line=LINE_TWIPS, keep_next=i < 2)
        run(p, text, spacing=0)


def _signature_table(d: Doc, widths_mm: list[float]):
    """A borderless one-row table for signature blocks, kept whole and on the page of the
    paragraph before it (the caller marks that paragraph keep_next). A full 3号 line above it
    keeps the seals, which reach a little above the blocks, off the last line of the body."""
    d.blank(keep_next=True, line=LINE_TWIPS)
    t = d.table(widths_mm, borders=False)
    r = t.add_row()
    r._tr.get_or_add_trPr().append(_el("w:cantSplit"))
    return r


def two_party_signatures(d: Doc, left: tuple[str, str, str, str, str], right: tuple[str, str, str, str, str]) -> None:
    r = _signature_table(d, [78, 78])
    party_block(r.cells[0], *left[:4], doc=d, anchor=left[4])
    party_block(r.cells[1], *right[:4], doc=d, anchor=right[4])


def save(d: Doc, key: str) -> None:
    core = d.doc.core_properties
    core.author = "docsign"
    core.language = "zh-CN"
    path = OUT / f"{key}.docx"
    d.doc.save(path)
    print("wrote", path.relative_to(ROOT))


# --- legal wording shared by the guardian notices ----------------------------------------------

# 《中华人民共和国义务教育法》第五条、第十一条、第十四条、第五十八条, as qiaocheng (七) asks notices to carry.
LAW_DUTY = (
    "依照《中华人民共和国义务教育法》第五条、第十一条，适龄儿童、少年的父母或者其他法定监护人应当依法保证其按时入学"
    "接受并完成义务教育。"
)
LAW_NO_EMPLOYMENT = "任何单位和个人不得招用应当接受义务教育的适龄儿童、少年（第十四条）。"
LAW_LIABILITY = (
    "无正当理由未送适龄儿童、少年入学接受义务教育的，由当地乡镇人民政府或者县级人民政府教育行政部门给予批评教育，"
    "责令限期改正（第五十八条）；逾期不改的，将依法提请司法部门督促履行，情节严重的依法追究法律责任。"
)


def notice_contact(d: Doc) -> None:
    d.tag("{%p if school_address %}")
    d.plain("学校地址：{{ school_address }}")
    d.tag("{%p endif %}")
    d.tag("{%p if contact_phone %}")
    d.plain("联系电话：{{ contact_phone }}")
    d.tag("{%p endif %}")


# --- the seven documents -----------------------------------------------------------------------


def enrollment_notice() -> None:
    d = Doc()
    d.title("义务教育入学通知书")
    d.plain("{{ guardian_name }}（父母或法定监护人）：", indent=False)
    d.plain(
        "按照《中华人民共和国义务教育法》《{{ regulation }}》有关规定和要求，接受义务教育是法律赋予每个适龄儿童的"
        "权利和义务。您的孩子（被监护人）{{ student_name }}已经达到接受义务教育年龄，请您于{{ report_by|cn_month_day }}"
        "前送其到{{ school_name }}报到入学。"
    )
    d.plain("法律责任告知：" + LAW_DUTY + LAW_LIABILITY)
    notice_contact(d)
    d.plain("感谢您的支持和配合。", keep_next=True)
    dated_signature(d, "{{ issuer_name }}", "{{ issue_date|cn_date }}", "sigissuer")
    save(d, "enrollment_notice")


def return_notice() -> None:
    d = Doc()
    d.title("义务教育复学通知书")
    d.plain("{{ guardian_name }}（父母或法定监护人）：", indent=False)
    d.plain(
        "按照《中华人民共和国义务教育法》《{{ regulation }}》有关规定和要求，接受义务教育是法律赋予每个适龄儿童的"
        "权利和义务。您的孩子（被监护人）{{ student_name }}{% if grade_class %}（原就读{{ grade_class }}）{% endif %}"
        "处于接受义务教育年龄，请您于{{ report_by|cn_month_day }}前送其到{{ school_name }}报到入读。"
    )
    d.plain("法律责任告知：" + LAW_DUTY + LAW_NO_EMPLOYMENT + LAW_LIABILITY)
    notice_contact(d)
    d.plain("感谢您的支持和配合。", keep_next=True)
    dated_signature(d, "{{ issuer_name }}", "{{ issue_date|cn_date }}", "sigissuer")
    save(d, "return_notice")


def deadline_return_notice() -> None:
    d = Doc()
    d.title("限期复学通知书")
    d.plain("{{ guardian_name }}（父母或法定监护人）：", indent=False)
    d.plain(
        "{{ return_notice_date|cn_date }}，已向您送达《义务教育复学通知书》，要求您送孩子（被监护人）{{ student_name }}"
        "{% if grade_class %}（原就读{{ grade_class }}）{% endif %}到{{ school_name }}报到复学。截至本通知发出之日，"
        "{{ student_name }}仍未到校复学。"
    )
    d.plain(
        "根据《中华人民共和国义务教育法》第五条、第五十八条和《{{ regulation }}》有关规定，适龄儿童、少年的父母或者"
        "其他法定监护人应当依法保证其按时入学接受并完成义务教育；无正当理由未送适龄儿童、少年入学接受义务教育的，"
        "由当地乡镇人民政府或者县级人民政府教育行政部门给予批评教育，责令限期改正。"
    )
    d.plain(
        "现责令您于{{ report_by|cn_date }}前送{{ student_name }}到{{ school_name }}报到复学。如有特殊困难或正当理由，"
        "请在期限内向学校或本单位书面说明。逾期仍不改正的，将依法提请司法部门发放相关司法文书，敦促您履行送适龄子女"
        "接受义务教育的法定义务；情节严重或者构成犯罪的，依法追究法律责任。"
    )
    notice_contact(d)
    d.plain("特此通知。", keep_next=True)
    dated_signature(d, "{{ issuer_name }}", "{{ issue_date|cn_date }}", "sigissuer")
    # The receipt the guardian signs and hands back: one block, never split from its cut line.
    d.blank(keep_next=True)
    d.plain(
        "…………………………………………（沿此线剪开）…………………………………………",
        indent=False,
        align="center",
        size=SMALL_PT,
        keep_next=True,
    )
    p = d.plain("送达回执", indent=False, align="center", font=H1_FONT, keep_next=True)
    d.plain(
        "《限期复学通知书》（{{ student_name }}，限{{ report_by|cn_date }}前报到复学）已收到。",
        keep_next=True,
    )
    d.blank(keep_next=True)
    for text, keep in (("被通知人（签名）：", True), ("签收日期：　　　年　　月　　日", False)):
        p = d._para()
        fmt(p, left=12 * GB.char, keep_next=keep)
        run(p, text)
    save(d, "deadline_return_notice")


RESPONSIBILITY_PREAMBLE = (
    "为深入贯彻落实《中华人民共和国义务教育法》和《国务院办公厅关于进一步加强控辍保学提高义务教育巩固水平的通知》"
    "（国办发〔2017〕72号）精神，实施九年义务教育控制辍学责任制与“控辍保学”第一负责人制度，巩固义务教育控辍保学"
    "工作成果，确保适龄儿童少年依法接受并完成义务教育，经甲乙双方协商，签订本责任书。"
)


def responsibility(key: str, party_b: str, party_b_field: str, head_field: str, head_title: str) -> None:
    office = key == "responsibility_office"
    d = Doc(COMPACT)
    d.title("{{ year }}年控辍目标责任书", after_lines=0)
    d.subtitle("（街道教育办公室）" if office else "（区直义务教育阶段学校）", after_lines=COMPACT.line / LINE_TWIPS)
    d.plain("甲方：{{ bureau_name }}", indent=False)
    d.plain(f"乙方：{{{{ {party_b_field} }}}}　　{head_title}：{{{{ {head_field} }}}}", indent=False)
    d.plain(RESPONSIBILITY_PREAMBLE)
    d.h1("一、责任目标")
    scope = (
        "乙方辖区内{% if school_count %}{{ school_count }}所{% endif %}义务教育阶段学校"
        if office
        else "乙方义务教育阶段"
    )
    d.plain(f"（一）{scope}在校生零流失，九年义务教育巩固率达到{{{{ retention_target|percent }}}}。")
    d.plain(
        "（二）"
        + ("辖区内" if office else "学校服务范围内")
        + "适龄儿童少年应入尽入，失学辍学学生应返尽返，实现辍学动态清零、常态清零。"
    )
    d.plain("（三）控辍保学台账真实准确，做到人籍一致、人帐相符，无瞒报、漏报、虚报。")
    d.h1("二、乙方责任")
    if office:
        items = [
            "乙方主要负责人为辖区控辍保学工作第一责任人，建立健全工作机制，将控辍保学任务分解到所辖各学校，组织所辖各学校校长签订控辍保学承诺书。",
            "会同街道、村居持续开展适龄儿童少年接受义务教育情况摸排，详细掌握、及时发现“应入未入”儿童少年；督促所辖学校落实学生考勤、请假和辍学周报告制度，一旦发现辍学或疑似辍学学生，立即核实情况，及时报送相关信息，启动劝返机制。",
            "组织所辖学校“一人一案”做好劝返复学工作，为辍学学生建立“一生一表”工作档案，详细记录每次劝返情况；学校劝返三次以上仍不复学的，会同街道办事处组织开展联合劝返。",
            "坚持“三细三实”原则，指导所辖学校填报控辍保学台账，台账每月维护更新一次，该销号的予以销号；每月20日前汇总上报控辍保学动态管理月报表。",
            "突出家庭经济困难、身体残疾、随迁子女、留守儿童等重点群体，督促落实学业、生活和心理关爱帮扶措施，防止失学新发、辍学反弹。",
            "收齐所辖学校的控辍保学承诺书，按甲方规定的时间统一报送。",
        ]
    else:
        items = [
            "乙方校长为本校控辍保学工作第一责任人，成立由校长任组长的控辍保学工作领导小组，把控辍保学工作摆上学校重要议事日程，责任落实到年级、到班级、到人。",
            "严格执行学生考勤、请假和辍学周报告制度，及时追踪有辍学风险的学生；一旦发现辍学或疑似辍学学生，立即核实情况，及时报送相关信息，启动劝返机制。",
            "对辍学学生“一人一案”制定劝返方案，建立“一生一表”工作档案，详细记录每次劝返情况；经学校劝返三次以上仍不复学的，及时书面报告甲方和属地街道，配合开展联合劝返。",
            "坚持“三细三实”原则，规范填报控辍保学台账，台账每月维护更新一次；每月20日前如实上报控辍保学动态管理月报表。",
            "突出家庭经济困难、身体残疾、随迁子女、留守儿童等重点群体，落实学生资助政策和学习困难学生帮扶制度，加强心理健康教育和家校沟通，防止因贫、因学、因厌学辍学。",
            "开齐开足开好国家规定课程，规范办学行为，严格学籍管理，不得以任何理由劝退、开除义务教育阶段学生。",
        ]
    numbers = "一二三四五六七八九十"
    for i, item in enumerate(items):
        d.plain(f"（{numbers[i]}）{item}")
    d.h1("三、甲方责任")
    d.plain("（一）对乙方控辍保学工作进行业务指导和督导检查，协调解决工作中的困难和问题。")
    d.plain(
        "（二）会同公安、民政、司法、残联等部门和街道办事处，建立部门联控联保工作机制，支持乙方开展联合劝返和依法控辍。"
    )
    d.plain("（三）定期通报控辍保学工作进展，总结推广典型经验。")
    d.h1("四、考核与责任追究")
    d.plain("（一）甲方将乙方控辍保学工作纳入年度目标考核，实行督导检查结果通报、限期整改和责任追究制度。")
    d.plain(
        "（二）对不排查、不劝返、不上报，工作不力、弄虚作假，造成学生辍学或数据失实的，视情节予以约谈、通报批评，并依法依规追究相关人员责任。"
    )
    d.h1("五、其他")
    d.plain("（一）本责任书责任期为{{ year }}年9月1日至{{ year + 1 }}年8月31日。")
    d.plain("（二）本责任书一式两份，甲乙双方各执一份，自双方签字盖章之日起生效。", keep_next=True)
    two_party_signatures(
        d,
        ("甲方（盖章）：", "{{ bureau_name }}", "负责人签字：", "{{ issue_date|cn_date }}", "sigbureau"),
        # the Licheng notice: 教育办主任签字 for an office, 校长签字 for a 区直学校
        ("乙方（盖章）：", f"{{{{ {party_b_field} }}}}", f"{head_title}签字：", "{{ issue_date|cn_date }}", "sigunit"),
    )
    save(d, key)


def pledge() -> None:
    d = Doc()
    d.title("控辍保学承诺书")
    d.plain("{{ bureau_name }}：", indent=False)
    d.plain(
        "为深入贯彻落实《中华人民共和国义务教育法》和《国务院办公厅关于进一步加强控辍保学提高义务教育巩固水平的通知》"
        "（国办发〔2017〕72号）精神，落实控辍保学目标责任制与“控辍保学”第一负责人制度，确保本校义务教育阶段在校生"
        "零流失，本人{{ principal_name }}作为{{ school_name }}校长、本校控辍保学第一责任人，郑重承诺："
    )
    commitments = [
        "依法履行控辍保学主体责任。成立由校长任组长的控辍保学工作领导小组，层层压实责任，做到责任到位、任务到位、措施到位。",
        "落实动态监测和报告制度。严格执行学生考勤和请假制度，落实辍学周报告制度和控辍保学月报制度，每月20日前如实上报控辍保学动态管理月报表；发现辍学或疑似辍学学生，立即核实情况，及时报送相关信息，启动劝返机制。",
        "做好劝返复学工作。对辍学学生“一人一案”制定劝返方案，建立“一生一表”工作档案，详细记录每次劝返情况；经学校劝返三次以上仍不复学的，及时书面报告区教体局和属地街道（乡镇），配合开展联合劝返。",
        "健全管理台账。坚持“三细三实”原则规范填报控辍保学台账，每月维护更新，做到人籍一致、人帐相符，不瞒报、不漏报、不虚报。",
        "强化关爱帮扶。重点关注家庭经济困难、身体残疾、随迁子女、留守儿童等群体，落实学生资助政策和学习困难学生帮扶制度，加强心理健康教育和家校沟通，防止因贫、因学、因厌学辍学。",
        "规范办学行为。开齐开足开好国家规定课程，严格学籍管理，不以任何理由劝退、开除义务教育阶段学生。",
    ]
    numbers = "一二三四五六七八九十"
    for i, item in enumerate(commitments):
        head, rest = item.split("。", 1)
        p = d.plain("")
        run(p, f"{numbers[i]}、{head}。", font=H2_FONT)
        run(p, rest)
    d.plain("如因工作不力、弄虚作假造成学生辍学或数据失实，本人愿承担相应责任，接受区教体局的通报批评和责任追究。")
    d.plain(
        "本承诺书自签订之日起生效，有效期至{{ year + 1 }}年8月31日。本承诺书一式两份，学校和区教体局各执一份。",
        keep_next=True,
    )
    r = _signature_table(d, [70, 86])
    fmt(r.cells[0].paragraphs[0], line=LINE_TWIPS)
    party_block(
        r.cells[1], "学校（盖章）：", "{{ school_name }}", "校长签字：", "{{ issue_date|cn_date }}", d, "sigschool"
    )
    save(d, "pledge")


def _justify(row, cell: int) -> None:
    """Justify a cell whose text runs to several lines (a centred paragraph reads as ragged)."""
    row.cells[cell].paragraphs[0]._p.pPr.find(qn("w:jc")).set(qn("w:val"), "both")


def dropout_register() -> None:
    """The 一生一表: one page for a case with up to three attempts; a longer record runs onto
    more pages with the 劝返记录 heading rows repeated, and no row ever split between pages.

    Every official field prints its value or a dash (``|dash``), never a blank: a blank reads as
    forgotten. Only the spare attempt rows are left empty, to be filled in by hand.
    """
    d = Doc()
    d.title("义务教育阶段辍学学生登记表", after_lines=0)
    d.subtitle("（一生一表）", after_lines=0)
    d.plain("学校：{{ school_name }}", indent=False, size=14, line=int(LINE_TWIPS * 0.9))
    # 当前状态 and its value (疑似辍学, 延缓入学) take four characters at 14 pt: 24 mm, not cut
    t = d.table([25, 37, 20, 26, 24, 24])
    d.row(t, ["学生姓名", "{{ student_name }}", "性别", "{{ sex }}", "民族", "{{ ethnicity|dash }}"])
    d.row(t, ["出生日期", "{{ birth_date|cn_date }}", "身份证号", ("{{ student_id_number }}", 3)])
    d.row(t, ["全国学籍号", ("{{ student_number|dash }}", 2), "年级班级", ("{{ grade_class }}", 2)])
    d.row(t, ["家庭住址", ("{{ home_address|dash }}", 5)])
    d.row(t, ["重点群体", ("{{ key_groups|join('、')|dash }}", 5)])
    d.row(t, [("监护人情况", 6)], font=H1_FONT, min_height_mm=6.5)
    d.row(t, ["关系", "姓名", ("联系电话", 2), ("工作单位或务工地", 2)])
    d.row(t, [("{%tr for g in guardians %}", 6)], min_height_mm=None)
    d.row(t, ["{{ g.relation }}", "{{ g.name }}", ("{{ g.phone }}", 2), ("{{ g.workplace|dash }}", 2)])
    d.row(t, [("{%tr endfor %}", 6)], min_height_mm=None)
    d.row(t, [("辍学情况", 6)], font=H1_FONT, min_height_mm=6.5)
    d.row(
        t,
        ["辍学日期", "{{ dropout_date|cn_date }}", "辍学原因", "{{ dropout_reason|dash }}", "当前状态", "{{ status }}"],
    )
    # Label and text of a long cell: the label centred, the text justified like a paragraph.
    for label, expr in (("原因分析", "{{ reason_detail|dash }}"), ("帮扶措施", "{{ measures|dash }}")):
        _justify(d.row(t, [label, (expr, 5)], min_height_mm=13), 1)
    # 销号: how the case left the ledger (复学, 核销, 延缓入学); an open case has none (its 当前状态
    # says so), and its page keeps the room for three 劝返 rows
    d.row(t, [("{%tr if closure %}", 6)], min_height_mm=None)
    _justify(d.row(t, ["销号情况", ("{{ closure }}", 5)]), 1)
    d.row(t, [("{%tr endif %}", 6)], min_height_mm=None)
    # 送教上门 (county plan 二.(三).4): every visit, when the child is taught at home
    d.row(t, [("{%tr if home_visits %}", 6)], min_height_mm=None)
    d.row(t, [("送教上门记录", 6)], font=H1_FONT, min_height_mm=6.5)
    d.row(t, ["送教日期", ("送教教师", 2), ("送教内容", 3)])
    d.row(t, [("{%tr for v in home_visits %}", 6)], min_height_mm=None)
    _justify(d.row(t, ["{{ v.date|cn_date }}", ("{{ v.teachers }}", 2), ("{{ v.content }}", 3)]), 3)
    d.row(t, [("{%tr endfor %}", 6)], min_height_mm=None)
    d.row(t, [("{%tr endif %}", 6)], min_height_mm=None)
    # The 劝返记录 is a table of its own, a narrow gap below the first: two tables that touch are
    # one table to Word and LibreOffice, and heading rows repeat only at the top of a table.
    d.blank(line=int(LINE_TWIPS * 0.2))
    widths = [11, 34, 33, 18, 40, 20]
    t2 = d.table(widths)
    d.row(t2, [("劝返记录", 6)], font=H1_FONT, min_height_mm=6.5, header=True)
    d.row(t2, ["序号", "劝返日期", "劝返人员", "劝返方式", "劝返结果", "备注"], size=SMALL_PT, header=True)
    attempt = ["{{ a.date|cn_date }}", "{{ a.staff }}", "{{ a.method }}", "{{ a.result }}", "{{ a.note|dash }}"]
    d.row(t2, [("{%tr for a in attempts[:-1] %}", 6)], min_height_mm=None)
    _justify(d.row(t2, ["{{ loop.index }}", *attempt], size=SMALL_PT), 4)
    d.row(t2, [("{%tr endfor %}", 6)], min_height_mm=None)
    # The last row holds, in a nested table, the last attempt (or the blank rows to fill by hand,
    # so the printed table always has room for three), and below it the 填表人 line and the
    # school's name and date for the seal. The row never splits, so the signatures always share
    # their page with at least one row of the record: LibreOffice does not keep a table's last
    # row with the paragraph after the table.
    foot = t2.add_row()
    trpr = foot._tr.get_or_add_trPr()
    trpr.append(_el("w:cantSplit"))
    cell = foot.cells[0].merge(foot.cells[5])
    tcpr = cell._tc.get_or_add_tcPr()
    borders = _el("w:tcBorders")
    for side in ("left", "bottom", "right"):
        borders.append(_el(f"w:{side}", val="nil"))
    tcpr.append(borders)
    margins = _el("w:tcMar")
    for side in ("left", "right"):
        margins.append(_el(f"w:{side}", w="0", type="dxa"))
    tcpr.append(margins)
    last = d.table(widths, inside=cell, top=False)
    d.row(last, [("{%tr for a in attempts[-1:] %}", 6)], min_height_mm=None)
    _justify(d.row(last, ["{{ attempts|length }}", *attempt], size=SMALL_PT), 4)
    d.row(last, [("{%tr endfor %}", 6)], min_height_mm=None)
    d.row(last, [("{%tr for i in range(3 - attempts|length) %}", 6)], min_height_mm=None)
    d.row(last, ["", "", "", "", "", ""], size=SMALL_PT)
    d.row(last, [("{%tr endfor %}", 6)], min_height_mm=None)
    p = cell.paragraphs[-1]
    fmt(p, line=int(14 * 20 * 1.7), before=int(LINE_TWIPS * 0.1), align="left")
    run(
        p,
        "填表人：{{ filled_by }}{% if school_phone %}　　联系电话：{{ school_phone }}{% endif %}"
        "　　校长签字：{{ principal_name|dash }}",
        size=14,
        spacing=0,
    )
    dated_signature(d, "{{ school_name }}", "{{ fill_date|cn_date }}", "sigissuer", new_paragraph=cell.add_paragraph)
    save(d, "dropout_register")


def period_report(key: str, title: str, end: str, children: bool = False) -> None:
    """A report made from the case data and certified by the unit, for a month, a week or a term:
    the period's figures, cases open at its ``end`` (月末, 周末, 报告时) by grade and by key group
    (and, with ``children``, by reason, then each child by name with the reason and whereabouts),
    the units it sums (an office's or the bureau's), and, for a correction, what changed from the
    version it replaces."""
    d = Doc()
    d.title(title, after_lines=0)
    d.subtitle("（{{ period_label }}）", after_lines=0)
    d.plain("填报单位：{{ unit_name }}", indent=False, size=14, line=int(LINE_TWIPS * 0.9))
    d.plain("统计期间：{{ covers }}{% if version > 1 %}　第 {{ version }} 版（更正）{% endif %}", indent=False, size=14)
    t = d.table([110, 46])
    d.row(t, ["项目", "人数"], font=H1_FONT)
    d.row(t, [("{%tr for r in rows %}", 2)], min_height_mm=None)
    d.row(t, ["{{ r.item }}", "{{ r.count }}"])
    d.row(t, [("{%tr endfor %}", 2)], min_height_mm=None)
    d.blank(line=int(LINE_TWIPS * 0.2))
    t2 = d.table([110, 46])
    d.row(t2, [(f"{end}未销号个案（按年级）", 2)], font=H1_FONT)
    d.row(t2, [("{%tr for r in grades %}", 2)], min_height_mm=None)
    d.row(t2, ["{{ r.item }}", "{{ r.count }}"])
    d.row(t2, [("{%tr endfor %}", 2)], min_height_mm=None)
    d.row(t2, [(f"{end}未销号个案（按重点群体）", 2)], font=H1_FONT)
    d.row(t2, [("{%tr for r in groups %}", 2)], min_height_mm=None)
    d.row(t2, ["{{ r.item }}", "{{ r.count }}"])
    d.row(t2, [("{%tr endfor %}", 2)], min_height_mm=None)
    if children:
        d.row(t2, [(f"{end}未销号个案（按辍学原因）", 2)], font=H1_FONT)
        d.row(t2, [("{%tr for r in reasons %}", 2)], min_height_mm=None)
        d.row(t2, ["{{ r.item }}", "{{ r.count }}"])
        d.row(t2, [("{%tr endfor %}", 2)], min_height_mm=None)
        d.blank(line=int(LINE_TWIPS * 0.2))
        d.plain("失学辍学学生名单", indent=False, size=14, keep_next=True)
        t3 = d.table([32, 15, 23, 14, 24, 18, 30])
        d.row(
            t3,
            ["学校", "姓名", "年级班级", "类别", "重点群体", "原因", "去向及情况"],
            font=H1_FONT,
            size=SMALL_PT,
            header=True,
        )
        d.row(t3, [("{%tr for c in students %}", 7)], min_height_mm=None)
        d.row(
            t3,
            [
                "{{ c.school }}",
                "{{ c.name }}",
                "{{ c.grade }}",
                "{{ c.category }}",
                "{{ c.groups }}",
                "{{ c.reason }}",
                "{{ c.whereabouts }}",
            ],
            size=SMALL_PT,
        )
        d.row(t3, [("{%tr endfor %}", 7)], min_height_mm=None)
        d.row(t3, [("{%tr if not students %}", 7)], min_height_mm=None)
        d.row(t3, [("无", 7)], size=SMALL_PT)
        d.row(t3, [("{%tr endif %}", 7)], min_height_mm=None)
    d.tag("{%p if parts %}")
    d.plain("汇总单位：{{ parts|join('、') }}", size=TABLE_PT)
    d.tag("{%p endif %}")
    d.tag("{%p if missing %}")
    d.plain("未报送单位：{{ missing|join('、') }}", size=TABLE_PT)
    d.tag("{%p endif %}")
    d.tag("{%p if changes %}")
    d.plain("更正说明：{{ changes|join('；') }}", size=TABLE_PT)
    d.tag("{%p endif %}")
    d.plain("填报人：{{ filled_by }}", indent=False, size=14, keep_next=True)
    dated_signature(d, "{{ unit_name }}", "{{ fill_date|cn_date }}", "sigissuer")
    save(d, key)


def monthly_report() -> None:
    """The 控辍保学动态管理月报表 (Suiyang 四)."""
    period_report("monthly_report", "控辍保学动态管理月报表", "月末")


def weekly_report() -> None:
    """The 辍学周报告 (Zaozhuang 三.(四)(五)): the same form over an ISO week."""
    period_report("weekly_report", "辍学周报告", "周末")


def info_report() -> None:
    """The 学生失学辍学信息报告 (county plan 二.(三).2: within 15 days of each term's start)."""
    period_report("info_report", "学生失学辍学信息报告", "报告时", children=True)


def _page_break_before(paragraph) -> None:
    """Start ``paragraph`` on a new page (w:pageBreakBefore, after w:keepNext as the schema asks)."""
    ppr = paragraph._p.get_or_add_pPr()
    keep = ppr.find(qn("w:keepNext"))
    if keep is not None:
        keep.addnext(_el("w:pageBreakBefore"))
    else:
        ppr.insert(0, _el("w:pageBreakBefore"))


def case_file() -> None:
    """The 案卷 of one dropout case for a court or the 检察院: a cover with the seal of the unit that
    made it (the bureau, the case's office or its school), the 目录 (page numbers filled in once the
    pages are laid out), the 劝返 record, each document's verification record, the guardian's
    receipts and the case's history; the originals follow as pages and are embedded whole. Each section heading carries a bookmark (``secattempts`` …, no
    underscore: LibreOffice escapes it in a destination's name) that tells the service on which
    page the section starts, for the 目录."""
    d = Doc()
    d.blank()
    d.title("控辍保学个案案卷", after_lines=1)
    t = d.table([40, 116])
    for label, expr in (
        ("案卷编号", "{{ case_no }}"),
        ("学生姓名", "{{ student_name }}"),
        ("性别", "{{ sex }}"),
        ("出生日期", "{{ birth_date|cn_date }}"),
        ("身份证号", "{{ student_id_number }}"),
        ("学校", "{{ school_name }}"),
        ("年级班级", "{{ grade_class }}"),
        ("监护人", "{{ guardians|dash }}"),
        ("辍学日期", "{% if dropout_date %}{{ dropout_date|cn_date }}{% else %}—{% endif %}"),
        ("当前状态", "{{ status }}"),
        (
            "卷内材料",
            "劝返记录 {{ attempts|length }} 次，文书 {{ documents|length }} 份，附件 {{ attachment_count }} 件",
        ),
        ("本卷页数", "共 {{ total_pages }} 页"),
    ):
        _justify(d.row(t, [label, expr], min_height_mm=9), 1)
    d.blank()
    d.plain(
        "本案卷由{{ unit_name }}根据本系统保存的记录生成，卷内文书原件以未经改动的电子文件形式附于本卷"
        "（PDF 附件），其数字签名可逐一核验；本卷整体由{{ unit_name }}数字签名并加盖时间戳。",
        size=14,
        line=int(LINE_TWIPS * 0.9),
    )
    dated_signature(d, "{{ unit_name }}", "{{ made_date|cn_date }}", "sigissuer")
    # 目录: a new page
    p = d._para()
    fmt(p, align="center", line=LINE_TWIPS, after=LINE_TWIPS)
    run(p, "目　录", font=TITLE_FONT, size=TITLE_PT, spacing=0)
    _page_break_before(p)
    d.bookmark(p, "sectoc")
    toc = d.table([136, 20], borders=False)
    d.row(toc, [("{%tr for e in toc %}", 2)], min_height_mm=None)
    r = d.row(toc, ["{{ e.title }}", "{{ e.page }}"], align="left", size=14, min_height_mm=8)
    r.cells[1].paragraphs[0]._p.pPr.find(qn("w:jc")).set(qn("w:val"), "right")
    d.row(toc, [("{%tr endfor %}", 2)], min_height_mm=None)

    def heading(text: str, name: str) -> None:
        p = d._para()
        fmt(p, line=LINE_TWIPS, keep_next=True, after=int(LINE_TWIPS * 0.3))
        run(p, text, font=H1_FONT, spacing=0)
        _page_break_before(p)
        d.bookmark(p, name)

    heading("一、劝返记录", "secattempts")
    t = d.table([11, 31, 28, 14, 42, 30])
    d.row(t, ["序号", "日期", "劝返人员", "方式", "经过与结果", "附件"], size=SMALL_PT, header=True, font=H1_FONT)
    d.row(t, [("{%tr for a in attempts %}", 6)], min_height_mm=None)
    row = d.row(
        t,
        [
            "{{ loop.index }}",
            "{{ a.date|cn_date }}",
            "{{ a.staff }}",
            "{{ a.method }}",
            "{{ a.result }}{% if a.note %}（{{ a.note }}）{% endif %}",
            "{{ a.files|dash }}",
        ],
        size=SMALL_PT,
    )
    _justify(row, 4)
    d.row(t, [("{%tr endfor %}", 6)], min_height_mm=None)
    d.row(t, [("{%tr if not attempts %}", 6)], min_height_mm=None)
    d.row(t, [("本案无劝返记录", 6)], size=SMALL_PT)
    d.row(t, [("{%tr endif %}", 6)], min_height_mm=None)

    heading("二、文书及核验记录", "secdocuments")
    d.tag("{%p for doc in documents %}")
    t = d.table([36, 120])
    d.row(t, [("{{ loop.index }}. {{ doc.title }}", 2)], size=SMALL_PT, font=H1_FONT, align="left", keep_next=True)
    for label, expr in (
        ("签发单位", "{{ doc.issuer }}"),
        ("签发时间", "{{ doc.issued_at }}"),
        ("签署时间", "{{ doc.signed_at }}"),
        ("验证码", "{{ doc.code }}"),
        ("核验地址", "{{ doc.url }}"),
        ("文书状态", "{{ doc.status }}"),
        ("核验结论", "{{ doc.verdict }}"),
        ("原件 SHA-256", "{{ doc.sha256 }}"),
        ("卷内位置", "第 {{ doc.pages }} 页；原件见 PDF 附件「{{ doc.attachment }}」"),
    ):
        _justify(d.row(t, [label, expr], size=SMALL_PT, align="left", keep_next=True), 1)
    d.blank(line=int(LINE_TWIPS * 0.4))
    d.tag("{%p endfor %}")
    d.tag("{%p if not documents %}")
    d.plain("本案未签发文书。", size=14)
    d.tag("{%p endif %}")

    heading("三、监护人回执", "secreceipts")
    t = d.table([46, 30, 40, 40])
    d.row(t, ["文书", "验证码末四位", "首次查看", "确认已阅知"], size=SMALL_PT, header=True, font=H1_FONT)
    d.row(t, [("{%tr for r in receipts %}", 4)], min_height_mm=None)
    d.row(t, ["{{ r.title }}", "{{ r.code_tail }}", "{{ r.opened|dash }}", "{{ r.confirmed|dash }}"], size=SMALL_PT)
    d.row(t, [("{%tr endfor %}", 4)], min_height_mm=None)
    d.row(t, [("{%tr if not receipts %}", 4)], min_height_mm=None)
    d.row(t, [("本案没有需要监护人回执的通知书", 4)], size=SMALL_PT)
    d.row(t, [("{%tr endif %}", 4)], min_height_mm=None)

    heading("四、办理经过", "sectimeline")
    t = d.table([48, 44, 64])
    d.row(t, ["时间（北京时间）", "经办", "事项"], size=SMALL_PT, header=True, font=H1_FONT)
    d.row(t, [("{%tr for e in events %}", 3)], min_height_mm=None)
    _justify(d.row(t, ["{{ e.at }}", "{{ e.actor }}", "{{ e.what }}"], size=SMALL_PT), 2)
    d.row(t, [("{%tr endfor %}", 3)], min_height_mm=None)
    save(d, "case_file")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    enrollment_notice()
    return_notice()
    deadline_return_notice()
    responsibility("responsibility_office", "街道教育办公室", "office_name", "office_director", "负责人")
    responsibility("responsibility_direct", "区直学校", "school_name", "principal_name", "校长")
    pledge()
    dropout_register()
    monthly_report()
    weekly_report()
    info_report()
    case_file()
    return 0


if __name__ == "__main__":
    sys.exit(main())
