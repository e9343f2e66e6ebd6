"""The attack classes of pdf-insecurity.org, each forged from the service's own signed output.

Incremental saving attacks (ISA), signature wrapping (SWA), universal signature forgery (USF) and
shadow attacks (hide, replace, hide-and-replace): every forgery is refused with its named reason,
and the untouched documents are accepted.
"""

from __future__ import annotations

import io
import re

import pytest
from asn1crypto import cms
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers

from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.settings import Settings

# --- the genuine documents ------------------------------------------------------------------


@pytest.fixture(scope="module")
def notice(engine: DocumentEngine, settings: Settings) -> bytes:
    """A 复学通知书 certified by the bureau: one signature."""
    fields_ = example_fields(KINDS["return_notice"], settings.schemas_dir)
    return engine.issue(IssueRequest("return_notice", fields_)).pdf


@pytest.fixture(scope="module")
def pledge(engine: DocumentEngine, settings: Settings) -> bytes:
    """A 承诺书 certified by the bureau, with an empty field the school signs later."""
    fields_ = example_fields(KINDS["pledge"], settings.schemas_dir)
    return engine.issue(IssueRequest("pledge", fields_, issuer_key="bureau-licheng")).pdf


@pytest.fixture(scope="module")
def school(engine: DocumentEngine) -> str:
    engine.pki.ensure_unit("school-shihe", "历城区王舍人街道石河小学")
    return "school-shihe"


def verdict(engine: DocumentEngine, pdf: bytes) -> set[str]:
    """The problem codes of a document that must not be genuine."""
    report = engine.verify(pdf)
    assert not report.genuine, report.to_dict()
    assert all(p.message for p in report.all_problems)
    return report.codes


def test_the_originals_are_genuine(engine: DocumentEngine, notice: bytes, pledge: bytes, school: str) -> None:
    for pdf in (notice, pledge, engine.sign_as(pledge, unit_key=school)[0]):
        report = engine.verify(pdf)
        assert report.genuine, report.to_dict()


# --- raw-byte helpers -----------------------------------------------------------------------

_TAIL = re.compile(rb"trailer\s*(<<.*>>)\s*startxref\s+(\d+)\s+%%EOF\s*\Z", re.S)


def last_trailer(pdf: bytes) -> tuple[bytes, int]:
    """The final trailer dictionary and startxref offset, as written."""
    m = _TAIL.match(pdf, pdf.rindex(b"trailer"))
    assert m, pdf[-300:]
    return m.group(1), int(m.group(2))


def first_content_stream(pdf: bytes) -> int:
    """Object number of the first content stream of page 1."""
    page = PdfFileReader(io.BytesIO(pdf)).root["/Pages"]["/Kids"][0]
    contents = page.raw_get("/Contents")
    if isinstance(contents, generic.ArrayObject):
        contents = contents.raw_get(0)
    return int(contents.idnum)


def text_stream(text: str) -> bytes:
    """A content stream drawing a white box over the page body and a line of text on it."""
    return b"q 1 1 1 rg 60 300 480 400 re f Q BT /F1 24 Tf 80 600 Td (" + text.encode() + b") Tj ET"


def stream_object(idnum: int, data: bytes) -> bytes:
    return b"%d 0 obj\n<< /Length %d >>\nstream\n" % (idnum, len(data)) + data + b"\nendstream\nendobj\n"


def signature_gap(pdf: bytes, field: int = 0) -> tuple[int, int]:
    """Where the unsigned /Contents hex string of a signature sits: [start, end)."""
    sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[field]
    _, len1, start2, _ = sig.byte_range
    assert pdf[len1 : len1 + 1] == b"<" and pdf[start2 - 1 : start2] == b">"
    return len1, start2


def replace_same_length(pdf: bytes, old: bytes, new: bytes, start: int = 0) -> bytes:
    at = pdf.index(old, start)
    assert len(new) <= len(old)
    return pdf[:at] + new.ljust(len(old), b" ") + pdf[at + len(old) :]


def incremental(pdf: bytes, change: object) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    writer.stream_xrefs = False  # a classic section the helpers above can read and extend
    assert callable(change)
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- incremental saving attacks (ISA) -------------------------------------------------------


def test_isa_update_with_xref_and_trailer_changing_the_page(engine: DocumentEngine, notice: bytes) -> None:
    """The classic ISA: a well-formed incremental update that draws over the signed text."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        stream = generic.StreamObject(stream_data=text_stream("Report by 2099-01-01"))
        writer.add_stream_to_page(0, writer.add_object(stream))

    assert "MODIFIED_AFTER_SIGNING" in verdict(engine, incremental(notice, change))


def test_isa_bytes_after_eof_ending_with_a_forged_trailer(engine: DocumentEngine, notice: bytes) -> None:
    """New page content appended after %%EOF, closed by a trailer whose startxref points back at
    the signed cross-reference table: a reader starting from the end parses the signed revision,
    a repairing viewer shows the new object."""
    trailer, startxref = last_trailer(notice)
    forged = (
        notice
        + stream_object(first_content_stream(notice), text_stream("FORGED"))
        + b"trailer\n"
        + trailer
        + b"\nstartxref\n%d\n%%%%EOF\n" % startxref
    )
    assert "TRAILING_DATA" in verdict(engine, forged)


def test_isa_objects_appended_without_xref_or_trailer(engine: DocumentEngine, notice: bytes) -> None:
    forged = notice + stream_object(first_content_stream(notice), text_stream("FORGED"))
    assert "TRAILING_DATA" in verdict(engine, forged)


def test_isa_update_without_prev_pointer(engine: DocumentEngine, notice: bytes) -> None:
    """An update whose cross-reference section lists only the redefined object and whose trailer has
    no /Prev: a lax reader treats the update as the whole file and repairs the rest."""
    trailer, _ = last_trailer(notice)
    idnum = first_content_stream(notice)
    body = stream_object(idnum, text_stream("FORGED"))
    offset = len(notice)
    xref_at = offset + len(body)
    xref = b"xref\n0 1\n0000000000 65535 f \n%d 1\n%010d 00000 n \n" % (idnum, offset)
    no_prev = re.sub(rb"/Prev\s+\d+", b"", trailer)
    forged = notice + body + xref + b"trailer\n" + no_prev + b"\nstartxref\n%d\n%%%%EOF\n" % xref_at
    assert "PDF_DAMAGED" in verdict(engine, forged)


def test_isa_update_removing_the_signature_field(engine: DocumentEngine, notice: bytes) -> None:
    """An update that drops the signature field from the form: a viewer shows an unsigned document
    that still looks official; the service refuses it as unsigned."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        form = writer.root["/AcroForm"]
        form[pdf_name("/Fields")] = generic.ArrayObject()
        writer.update_container(form)
        stream = generic.StreamObject(stream_data=text_stream("FORGED"))
        writer.add_stream_to_page(0, writer.add_object(stream))

    assert "NO_SIGNATURE" in verdict(engine, incremental(notice, change))


def test_isa_fake_seal_drawn_in_the_empty_signature_field(engine: DocumentEngine, pledge: bytes) -> None:
    """An update that gives the school's still-empty signature field an appearance (a drawn seal)
    without signing it: it looks signed on paper and no signature answers for it."""

    def draw(writer: IncrementalPdfFileWriter) -> None:
        for name, _, field_ref in fields.enumerate_sig_fields(writer, filled_status=False):
            if name == "Unit":
                widget = field_ref.get_object()
                seal = generic.StreamObject(
                    {
                        pdf_name("/Type"): pdf_name("/XObject"),
                        pdf_name("/Subtype"): pdf_name("/Form"),
                        pdf_name("/BBox"): generic.ArrayObject(map(generic.NumberObject, (0, 0, 100, 100))),
                    },
                    stream_data=b"1 0 0 RG 4 w 50 50 40 0 360 arc S",
                )
                widget[pdf_name("/AP")] = generic.DictionaryObject({pdf_name("/N"): writer.add_object(seal)})
                writer.update_container(widget)

    assert "MODIFIED_AFTER_SIGNING" in verdict(engine, incremental(pledge, draw))


def test_isa_bureau_signature_replayed_into_the_empty_field(engine: DocumentEngine, pledge: bytes) -> None:
    """An update that fills the school's empty field with the bureau's own signature dictionary:
    a viewer lists two valid signatures, but nothing was signed after the bureau signed."""

    def replay(writer: IncrementalPdfFileWriter) -> None:
        filled = {name: value for name, value, _ in fields.enumerate_sig_fields(writer, filled_status=True)}
        for name, _, field_ref in fields.enumerate_sig_fields(writer, filled_status=False):
            if name == "Unit":
                field = field_ref.get_object()
                field[pdf_name("/V")] = filled["Bureau"]
                writer.update_container(field)

    found = verdict(engine, incremental(pledge, replay))
    assert {"MODIFIED_AFTER_SIGNING", "CERTIFICATION_NOT_FIRST"} <= found, found


def _add_sneaky_field(writer: IncrementalPdfFileWriter) -> None:
    fields.append_signature_field(writer, fields.SigFieldSpec("Sneaky", on_page=0, box=(300, 100, 400, 200)))


def test_sneaky_signature_field_after_certification(engine: DocumentEngine, notice: bytes) -> None:
    """A new, never signed signature field (the "sneaky signature" of the PDF certification
    attacks): a second seal on paper that nothing signs. The certification forbids it."""
    assert "MODIFIED_AFTER_SIGNING" in verdict(engine, incremental(notice, _add_sneaky_field))


def test_sneaky_signature_field_after_the_last_approval(engine: DocumentEngine, pledge: bytes, school: str) -> None:
    """The same after the school's approval signature, where DocMDP would allow a new field: still
    refused, because after the last signature only validation data may follow."""
    signed, _ = engine.sign_as(pledge, unit_key=school)
    assert "UNSIGNED_CHANGES" in verdict(engine, incremental(signed, _add_sneaky_field))


# --- signature wrapping (SWA) ---------------------------------------------------------------


def test_signature_wrapping(engine: DocumentEngine, notice: bytes) -> None:
    """The signature value is cut to its real length and its timestamp token (an unsigned attribute,
    which the signer's signature does not cover) dropped, and a new content object is wrapped into
    the freed, unsigned part of the /Contents gap (as the literal string value of a new key, so the
    signature dictionary still parses); an appended update points the page at it."""
    start, end = signature_gap(notice)
    info = cms.ContentInfo.load(bytes.fromhex(notice[start + 1 : end - 1].decode()))
    info["content"]["signer_infos"][0]["unsigned_attrs"] = None
    der = info.dump(force=True)
    malicious_id = int(re.findall(rb"/Size\s+(\d+)", last_trailer(notice)[0])[-1])
    head = b"<" + der.hex().encode() + b"> /Wrapped ("
    gap = head + stream_object(malicious_id, text_stream("WRAPPED")) + b")"
    assert len(gap) < end - start
    wrapped = notice[:start] + gap.ljust(end - start, b" ") + notice[end:]
    hidden_at = start + len(head)

    def point_page_at_it(writer: IncrementalPdfFileWriter) -> None:
        page = writer.root["/Pages"]["/Kids"][0]
        page[pdf_name("/Contents")] = generic.IndirectObject(malicious_id, 0, writer)
        writer.update_container(page)

    forged = incremental(wrapped, point_page_at_it)
    # a second update whose cross-reference section lists the wrapped object
    trailer, startxref = last_trailer(forged)
    xref = b"xref\n%d 1\n%010d 00000 n \n" % (malicious_id, hidden_at)
    trailer = re.sub(rb"/Size\s+\d+", b"/Size %d" % (malicious_id + 1), trailer)
    trailer = re.sub(rb"/Prev\s+\d+", b"/Prev %d" % startxref, trailer)
    forged += xref + b"trailer\n" + trailer + b"\nstartxref\n%d\n%%%%EOF\n" % len(forged)
    assert PdfFileReader(io.BytesIO(forged)).get_object(generic.Reference(malicious_id, 0)).data.endswith(b"Tj ET")
    found = verdict(engine, forged)
    assert "PARTIAL_COVERAGE" in found, found


# --- universal signature forgery (USF) ------------------------------------------------------


def _zero_contents(pdf: bytes) -> bytes:
    start, end = signature_gap(pdf)
    return pdf[: start + 1] + b"0" * (end - start - 2) + pdf[end - 1 :]


def _empty_contents(pdf: bytes) -> bytes:
    start, end = signature_gap(pdf)
    return pdf[:start] + b"<>".ljust(end - start, b" ") + pdf[end:]


def _no_contents_key(pdf: bytes) -> bytes:
    start, _ = signature_gap(pdf)
    key = pdf.rindex(b"/Contents", 0, start)
    return pdf[:key] + b"/Contentz" + pdf[key + len(b"/Contents") :]


def _no_byte_range(pdf: bytes) -> bytes:
    _, end = signature_gap(pdf)
    return replace_same_length(pdf, b"/ByteRange", b"/ByteRangz", end)


def _null_byte_range(pdf: bytes) -> bytes:
    _, end = signature_gap(pdf)
    at = pdf.index(b"/ByteRange", end)
    array = pdf[pdf.index(b"[", at) : pdf.index(b"]", at) + 1]
    return replace_same_length(pdf, array, b"[0 0 0 0]", at)


def _unknown_subfilter(pdf: bytes) -> bytes:
    return replace_same_length(pdf, b"/ETSI.CAdES.detached", b"/ETSI.CAdES.detachex")


@pytest.mark.parametrize(
    ("forge", "expected"),
    [
        (_zero_contents, "SIGNATURE_UNREADABLE"),
        (_empty_contents, "SIGNATURE_UNREADABLE"),
        (_no_contents_key, "SIGNATURE_UNREADABLE"),
        (_no_byte_range, "SIGNATURE_UNREADABLE"),
        (_null_byte_range, "PARTIAL_COVERAGE"),
        (_unknown_subfilter, "SIGNATURE_UNSUPPORTED"),
    ],
    ids=["contents-zeroed", "contents-empty", "contents-missing", "byterange-missing", "byterange-null", "subfilter"],
)
def test_universal_signature_forgery(engine: DocumentEngine, notice: bytes, forge: object, expected: str) -> None:
    """A signature a lax viewer shows as present while it can check nothing."""
    assert callable(forge)
    found = verdict(engine, forge(notice))
    assert expected in found, found


# --- shadow attacks: the school hides or replaces the bureau's text in its own signature ---------


def _school_signs_with(engine: DocumentEngine, pdf: bytes, school: str, change: object) -> bytes:
    """The school signs its field, with a shadow change slipped into the same incremental update."""
    assert callable(change)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    change(writer)
    signer = engine.signatory.signer(school)
    engine.signatory.add_validation_data(writer, signer)
    meta = signers.PdfSignatureMetadata(
        field_name="Unit", subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256"
    )
    pdf_signer = signers.PdfSigner(meta, signer, timestamper=engine.signatory.timestamper())
    out: io.BytesIO = pdf_signer.sign_pdf(writer, existing_fields_only=True)
    return out.getvalue()


def _hide(writer: IncrementalPdfFileWriter) -> None:
    """An opaque white annotation laid over the body of page 1."""
    appearance = generic.StreamObject(
        {
            pdf_name("/Type"): pdf_name("/XObject"),
            pdf_name("/Subtype"): pdf_name("/Form"),
            pdf_name("/BBox"): generic.ArrayObject(map(generic.NumberObject, (0, 0, 480, 400))),
        },
        stream_data=b"1 1 1 rg 0 0 480 400 re f",
    )
    annot = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Annot"),
            pdf_name("/Subtype"): pdf_name("/Square"),
            pdf_name("/Rect"): generic.ArrayObject(map(generic.NumberObject, (60, 300, 540, 700))),
            pdf_name("/AP"): generic.DictionaryObject({pdf_name("/N"): writer.add_object(appearance)}),
        }
    )
    page = writer.root["/Pages"]["/Kids"][0]
    annots = page["/Annots"]
    annots.append(writer.add_object(annot))
    writer.update_container(annots)
    writer.update_container(page)


def _replace(writer: IncrementalPdfFileWriter) -> None:
    """Page 1's content stream redefined under its own object number."""
    page = writer.root["/Pages"]["/Kids"][0]
    contents = page.raw_get("/Contents")
    ref = contents.raw_get(0) if isinstance(contents, generic.ArrayObject) else contents
    writer.objects[(ref.generation, ref.idnum)] = generic.StreamObject(stream_data=text_stream("REPLACED"))


def _hide_and_replace(writer: IncrementalPdfFileWriter) -> None:
    """A new page tree in the catalog: every signed page hidden, a prepared page shown instead."""
    old_pages = writer.root["/Pages"]
    first = old_pages["/Kids"][0]
    pages_ref = writer.add_object(generic.DictionaryObject({pdf_name("/Type"): pdf_name("/Pages")}))
    content = writer.add_object(generic.StreamObject(stream_data=text_stream("SHADOW")))
    page = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Page"),
            pdf_name("/Parent"): pages_ref,
            pdf_name("/MediaBox"): first["/MediaBox"],
            pdf_name("/Resources"): first["/Resources"],
            pdf_name("/Contents"): content,
            pdf_name("/Annots"): first["/Annots"],
        }
    )
    pages = pages_ref.get_object()
    pages[pdf_name("/Kids")] = generic.ArrayObject([writer.add_object(page)])
    pages[pdf_name("/Count")] = generic.NumberObject(1)
    writer.root[pdf_name("/Pages")] = pages_ref
    writer.update_root()


@pytest.mark.parametrize("shadow", [_hide, _replace, _hide_and_replace], ids=["hide", "replace", "hide-and-replace"])
def test_shadow_attack_in_a_later_signature(engine: DocumentEngine, pledge: bytes, school: str, shadow: object) -> None:
    forged = _school_signs_with(engine, pledge, school, shadow)
    report = engine.verify(forged)
    assert not report.genuine
    bureau = report.signatures[0]
    assert bureau.certification
    assert [p.code for p in bureau.problems] == ["MODIFIED_AFTER_SIGNING"], report.to_dict()
    school_signature = report.signatures[1]
    assert school_signature.ok and school_signature.signer == "历城区王舍人街道石河小学"
