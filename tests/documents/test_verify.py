"""Tampering is reported as not genuine, with the reason named."""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.pki.store import Pki
from service.settings import Settings


@pytest.fixture(scope="module")
def notice(engine: DocumentEngine, settings: Settings) -> bytes:
    fields = example_fields(KINDS["return_notice"], settings.schemas_dir)
    return engine.issue(IssueRequest("return_notice", fields)).pdf


def codes(engine: DocumentEngine, pdf: bytes) -> set[str]:
    report = engine.verify(pdf)
    assert not report.genuine
    return {p.code for p in report.all_problems}


def test_genuine_notice(engine: DocumentEngine, notice: bytes) -> None:
    report = engine.verify(notice)
    assert report.genuine
    (sig,) = report.signatures
    assert sig.intact and sig.valid and sig.trusted and sig.timestamped and sig.certification
    assert sig.signer == "济南市历城区教育和体育局"


def test_one_byte_flipped_inside_the_signed_range(engine: DocumentEngine, notice: bytes) -> None:
    start = notice.index(b"stream", 2000) + 20  # inside a content stream of the signed revision
    altered = bytearray(notice)
    altered[start] ^= 0x01
    assert "CONTENT_ALTERED" in codes(engine, bytes(altered))


def test_bytes_appended_after_eof(engine: DocumentEngine, notice: bytes) -> None:
    assert "TRAILING_DATA" in codes(engine, notice + b"\n%\xe4\xbc\xaa\xe9\x80\xa0 appended after signing\n")


def test_incremental_update_changing_page_content(engine: DocumentEngine, notice: bytes) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(notice))
    stream = generic.StreamObject(stream_data=b"0 0 1 rg 100 400 200 50 re f")
    writer.add_stream_to_page(0, writer.add_object(stream))
    out = io.BytesIO()
    writer.write(out)
    found = codes(engine, out.getvalue())
    assert "MODIFIED_AFTER_SIGNING" in found


def test_signed_by_another_ca_is_untrusted(
    engine: DocumentEngine, notice: bytes, tmp_path: object, settings: Settings
) -> None:
    from pathlib import Path

    other = Pki(Path(str(tmp_path)) / "other", "x", "别的证书中心", settings.public_base_url)
    other.init()
    from service.documents.pipeline import DocumentEngine as Engine

    foreign = Engine(settings, pki=other, converter=engine.converter)
    pdf = foreign.issue(IssueRequest("return_notice", example_fields(KINDS["return_notice"], settings.schemas_dir))).pdf
    assert "UNTRUSTED_SIGNER" in codes(engine, pdf)


def test_not_a_pdf_and_unsigned_pdf(engine: DocumentEngine) -> None:
    from pypdf import PdfWriter

    assert "NOT_PDF" in codes(engine, b"PK\x03\x04 this is a zip")
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    buf = io.BytesIO()
    writer.write(buf)
    assert "NO_SIGNATURE" in codes(engine, buf.getvalue())
