"""Tampering is reported as not genuine, with the reason named."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter

from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.documents.sign import LocalTimeStamper
from service.documents.verify import VerificationReport, verify_pdf
from service.pki.store import Pki
from service.settings import Settings
from tests.conftest import PASSPHRASE
from tests.documents.future_pki import YEAR, FuturePki, asn1


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


# --- validation at the time the timestamp proves --------------------------------------------


@pytest.fixture()
def future(pki: Pki) -> FuturePki:
    return FuturePki(pki, PASSPHRASE)


def signed(pdf: bytes) -> tuple[dt.datetime, int]:
    """When the bureau signed (by its timestamp) and the serial of its certificate."""
    sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    report = verify_pdf(pdf, [])
    assert report.signatures[0].signing_time is not None
    return report.signatures[0].signing_time, sig.signer_cert.serial_number


def verify_at(
    pdf: bytes,
    pki: Pki,
    future: FuturePki,
    at: dt.datetime,
    revoked: dict[int, tuple[dt.datetime, x509.ReasonFlags]] | None = None,
) -> VerificationReport:
    return verify_pdf(pdf, [asn1(c) for c in pki.trust_roots()], future.crls(at, revoked), now=at)


def test_judged_when_signed_after_the_certificate_expired(notice: bytes, pki: Pki, future: FuturePki) -> None:
    t0, _ = signed(notice)
    at = t0 + 5 * YEAR  # the bureau's certificate lived 3 years
    report = verify_at(notice, pki, future, at)
    assert report.genuine, report.to_dict()
    (sig,) = report.signatures
    assert sig.judged_at == t0 and "签名时间戳证明的签署时间" in sig.evidence
    assert sig.timestamp_judged_at == at and "当前时间" in (sig.timestamp_evidence or "")
    assert any("证书吊销列表" in line for line in sig.revocation_evidence)
    assert report.to_dict()["signatures"][0]["judged_at"] == t0.isoformat()


def test_revoked_before_signing_is_refused(notice: bytes, pki: Pki, future: FuturePki) -> None:
    t0, serial = signed(notice)
    revoked = {serial: (t0 - dt.timedelta(days=1), x509.ReasonFlags.cessation_of_operation)}
    report = verify_at(notice, pki, future, t0 + dt.timedelta(days=40), revoked)
    assert report.codes == {"CERTIFICATE_REVOKED"}, report.to_dict()
    assert report.signatures[0].revoked


@pytest.mark.parametrize("reason", [x509.ReasonFlags.superseded, x509.ReasonFlags.cessation_of_operation])
def test_revoked_later_for_another_reason_stays_genuine(
    notice: bytes, pki: Pki, future: FuturePki, reason: x509.ReasonFlags
) -> None:
    t0, serial = signed(notice)
    revoked = {serial: (t0 + dt.timedelta(days=10), reason)}
    report = verify_at(notice, pki, future, t0 + YEAR, revoked)
    assert report.genuine, report.to_dict()
    assert any("晚于" in line and "不影响此前的签名" in line for line in report.signatures[0].revocation_evidence)


def test_revoked_later_for_key_compromise_is_refused(notice: bytes, pki: Pki, future: FuturePki) -> None:
    t0, serial = signed(notice)
    revoked = {serial: (t0 + dt.timedelta(days=10), x509.ReasonFlags.key_compromise)}
    report = verify_at(notice, pki, future, t0 + YEAR, revoked)
    assert report.codes == {"CERTIFICATE_KEY_COMPROMISED"}, report.to_dict()
    assert "私钥泄露" in report.all_problems[0].message


def test_the_engine_verifies_at_its_clock(engine: DocumentEngine, notice: bytes, settings: Settings) -> None:
    t0, _ = signed(notice)
    later = DocumentEngine(settings, pki=engine.pki, converter=engine.converter, now=lambda: t0 + 12 * YEAR)
    report = later.verify(notice)
    assert report.checked_at == t0 + 12 * YEAR
    assert report.codes == {"NEEDS_ARCHIVE_TIMESTAMP"}, report.to_dict()


def test_stale_crls_leave_the_timestamp_unproven(notice: bytes, pki: Pki) -> None:
    """A year on, with only the CRLs of today (the PKI failed to publish since): the timestamp,
    judged now, cannot be shown unrevoked."""
    t0, _ = signed(notice)
    crls = [c.public_bytes(serialization.Encoding.DER) for c in pki.crls()]
    report = verify_pdf(notice, [asn1(c) for c in pki.trust_roots()], crls, now=t0 + YEAR)
    assert report.codes == {"REVOCATION_UNKNOWN"}, report.to_dict()
    assert "吊销列表" in report.all_problems[0].message


def school_signs(
    engine: DocumentEngine, settings: Settings, unit_key: str, timestamper: LocalTimeStamper | None
) -> bytes:
    """A pledge the school signs with pyHanko directly, with the given TSA (or none)."""
    fields = example_fields(KINDS["pledge"], settings.schemas_dir)
    pledge = engine.issue(IssueRequest("pledge", fields, issuer_key="bureau-licheng")).pdf
    writer = IncrementalPdfFileWriter(io.BytesIO(pledge))
    meta = signers.PdfSignatureMetadata(field_name="Unit", subfilter=SigSeedSubFilter.PADES, md_algorithm="sha256")
    signer = signers.PdfSigner(meta, engine.signatory.signer(unit_key), timestamper=timestamper)
    out: io.BytesIO = signer.sign_pdf(writer, existing_fields_only=True)
    return out.getvalue()


def test_backdated_signature_is_refused(engine: DocumentEngine, settings: Settings) -> None:
    """The timestamp's time (a TSA clock set back a day) is before the signing certificate existed."""
    engine.pki.ensure_unit("school-backdated", "历城区回溯测试小学")
    yesterday = LocalTimeStamper(engine.pki, lambda: dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    report = engine.verify(school_signs(engine, settings, "school-backdated", yesterday))
    assert report.codes == {"CERTIFICATE_NOT_VALID_AT_SIGNING"}, report.to_dict()
    assert "不在有效期内" in report.all_problems[0].message


def test_signature_without_timestamp_is_refused(engine: DocumentEngine, settings: Settings) -> None:
    engine.pki.ensure_unit("school-shihe", "历城区王舍人街道石河小学")
    report = engine.verify(school_signs(engine, settings, "school-shihe", None))
    assert report.codes == {"NO_TIMESTAMP"}, report.to_dict()
    assert "当前时间" in report.signatures[1].evidence
