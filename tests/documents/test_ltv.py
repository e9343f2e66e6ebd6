"""Archive timestamps (PAdES B-LTA): a notice issued now stays provable for years.

The clock moves by years through the verifier's ``now``; the CRLs the PKI would publish on those
days and a TSA rolled over to a new CA come from :mod:`tests.documents.future_pki`.
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp

from service.documents.errors import PdfInvalid
from service.documents.ltv import (
    DUE_ALGORITHM_WEAKENING,
    DUE_CERTIFICATE_EXPIRING,
    TOO_LATE,
    add_archive_timestamp,
    archive_timestamp_due,
)
from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.documents.sign import LocalTimeStamper
from service.documents.verify import VerificationReport, verify_pdf
from service.pki.store import Pki
from service.settings import Settings
from tests import checks
from tests.conftest import PASSPHRASE
from tests.documents.future_pki import YEAR, FuturePki, asn1


@pytest.fixture(scope="module")
def notice(engine: DocumentEngine, settings: Settings) -> bytes:
    fields = example_fields(KINDS["return_notice"], settings.schemas_dir)
    return engine.issue(IssueRequest("return_notice", fields)).pdf


@pytest.fixture()
def future(pki: Pki) -> FuturePki:
    return FuturePki(pki, PASSPHRASE)


def signed_at(pdf: bytes) -> dt.datetime:
    report = verify_pdf(pdf, [])
    moment = report.signatures[0].signing_time
    assert moment is not None
    return moment


def verify_at(pdf: bytes, pki: Pki, future: FuturePki, at: dt.datetime) -> VerificationReport:
    """What the service answers at ``at``, with the CRLs its PKI publishes that day."""
    roots = [asn1(c) for c in pki.trust_roots()]
    return verify_pdf(pdf, roots, future.crls(at), now=at)


def refresh(pdf: bytes, pki: Pki, future: FuturePki, at: dt.datetime, stamper: object) -> bytes:
    out = add_archive_timestamp(pdf, timestamper=stamper, crls=future.crls(at), certs=future.ca_certs())  # type: ignore[arg-type]
    assert out.startswith(pdf)
    return out


def test_notice_stays_genuine_for_twelve_years_with_archive_timestamps(
    notice: bytes, pki: Pki, future: FuturePki, nss_db: str
) -> None:
    """The service checks every archived notice once a year and adds an archive timestamp when
    one is due. The PKI rolls its TSA over to a new CA after three and a half years; the first
    TSA's certificate (RSA-3072, so no algorithm weakens first) expires with its CA after ten, so
    the archive timestamp is due in the ninth year."""
    t0 = signed_at(notice)
    rollover = t0 + 3.5 * YEAR
    tsa2 = future.rollover(rollover)
    pdf = notice
    refreshed_in = []
    for year in range(1, 13):
        at = t0 + year * YEAR
        due = archive_timestamp_due(pdf, now=at)
        if due.due:
            stamper = tsa2.timestamper(at) if at >= rollover else LocalTimeStamper(pki, lambda at=at: at)
            pdf = refresh(pdf, pki, future, at, stamper)
            refreshed_in.append((year, due.reason))
            assert not archive_timestamp_due(pdf, now=at).due
        if year in (1, 5, 12):
            report = verify_at(pdf, pki, future, at)
            assert report.genuine, (year, report.to_dict())
            signature = report.signatures[0]
            # the bureau's certificate (3 years) is judged when the timestamp says it signed
            assert signature.judged_at == t0 and "签名时间戳证明" in signature.evidence
    assert [year for year, _ in refreshed_in] == [9]
    assert refreshed_in[0][1] == DUE_CERTIFICATE_EXPIRING

    report = verify_at(pdf, pki, future, t0 + 12 * YEAR)
    signature, archive = report.signatures
    assert archive.kind == "document_timestamp" and archive.signer == f"时间戳服务 {rollover:%Y}"
    # the signature's timestamp (first TSA, expired after 10 years) is judged at the archive
    # timestamp's time, the archive timestamp at now
    assert signature.timestamp_judged_at == archive.signing_time
    assert "存档时间戳" in (signature.timestamp_evidence or "")
    assert archive.judged_at == t0 + 12 * YEAR
    assert checks.qpdf_check(pdf).returncode == 0
    # poppler, on the real clock, still finds the bureau's signature valid and trusted
    out = checks.pdfsig(pdf, nss_db)
    assert out.count("Signature is Valid.") == 1 and out.count("Certificate is Trusted.") == 1, out


def test_without_archive_timestamp_the_notice_needs_one_after_twelve_years(
    notice: bytes, pki: Pki, future: FuturePki
) -> None:
    t0 = signed_at(notice)
    assert verify_at(notice, pki, future, t0 + 5 * YEAR).genuine  # the bureau's certificate expired: fine
    report = verify_at(notice, pki, future, t0 + 12 * YEAR)
    assert not report.genuine
    assert report.codes == {"NEEDS_ARCHIVE_TIMESTAMP"}, report.to_dict()
    assert report.needs_archive_timestamp
    signature = report.signatures[0]
    assert signature.intact and signature.valid and signature.trusted  # not forged
    (problem,) = signature.problems
    assert "存档时间戳" in problem.message and "未被改动" in problem.message
    due = archive_timestamp_due(notice, now=t0 + 12 * YEAR)
    assert due.due and due.reason == TOO_LATE


def test_an_archive_timestamp_added_after_the_tsa_expired_is_too_late(
    notice: bytes, pki: Pki, future: FuturePki
) -> None:
    t0 = signed_at(notice)
    late = t0 + 11 * YEAR
    tsa = future.rollover(late - YEAR)
    pdf = refresh(notice, pki, future, late, tsa.timestamper(late))
    report = verify_at(pdf, pki, future, late + dt.timedelta(days=30))
    assert report.codes == {"ARCHIVE_TIMESTAMP_TOO_LATE"}, report.to_dict()


def test_archive_timestamp_now_passes_pyhanko_pdfsig_and_qpdf(
    engine: DocumentEngine, notice: bytes, pki: Pki, nss_db: str, tmp_path: Path
) -> None:
    crls = [c.public_bytes(serialization.Encoding.DER) for c in pki.crls()]
    cas = [c.public_bytes(serialization.Encoding.DER) for c in (pki.issuing_certificate(), pki.root_certificate())]
    once = add_archive_timestamp(notice, timestamper=LocalTimeStamper(pki), crls=crls, certs=cas)
    twice = add_archive_timestamp(once, timestamper=LocalTimeStamper(pki), crls=crls, certs=cas)
    assert twice.startswith(once) and once.startswith(notice)
    for pdf in (once, twice):
        report = engine.verify(pdf)
        assert report.genuine, report.to_dict()
        assert [s.kind for s in report.signatures] == ["certification"] + ["document_timestamp"] * (
            len(report.signatures) - 1
        )
        assert checks.qpdf_check(pdf).returncode == 0
        # pyHanko on its own, with the document's DSS
        root = asn1(pki.root_certificate())
        reader = PdfFileReader(io.BytesIO(pdf))
        for sig in reader.embedded_signatures:
            context = checks.dss_context(reader, root)
            if sig.sig_object_type == "/DocTimeStamp":
                ts_status = validate_pdf_timestamp(sig, context)
                assert ts_status.valid and ts_status.intact and ts_status.trusted
            else:
                status = validate_pdf_signature(sig, context)
                assert status.bottom_line, status.pretty_print_details()
        # poppler checks the signature (it cannot check RFC 3161 document timestamps, version 22)
        out = checks.pdfsig(pdf, nss_db)
        assert out.count("Signature is Valid.") == 1 and out.count("Certificate is Trusted.") == 1, out
        assert "Signature is Invalid" not in out
    # openssl checks the archive timestamps
    for sig in PdfFileReader(io.BytesIO(twice)).embedded_signatures[1:]:
        assert openssl_ts_verify(twice, sig.byte_range, sig.pkcs7_content, pki, tmp_path)


def openssl_ts_verify(pdf: bytes, byte_range: list[int], token: bytes, pki: Pki, folder: Path) -> bool:
    start1, len1, start2, len2 = byte_range
    (folder / "data").write_bytes(pdf[start1 : start1 + len1] + pdf[start2 : start2 + len2])
    (folder / "token.der").write_bytes(token)
    (folder / "root.pem").write_bytes(pki.root_certificate().public_bytes(serialization.Encoding.PEM))
    (folder / "ca.pem").write_bytes(pki.issuing_certificate().public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-token_in",
            "-in",
            str(folder / "token.der"),
            "-data",
            str(folder / "data"),
            "-CAfile",
            str(folder / "root.pem"),
            "-untrusted",
            str(folder / "ca.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode == 0 and "Verification: OK" in result.stdout


def test_archive_timestamp_due_dates(notice: bytes, pki: Pki, future: FuturePki) -> None:
    t0 = signed_at(notice)
    assert not archive_timestamp_due(notice, now=t0).due
    # our TSA and CAs are RSA-3072: the first timestamp lasts until its CA expires, ten years on
    assert archive_timestamp_due(notice, now=t0 + 9.5 * YEAR).reason == DUE_CERTIFICATE_EXPIRING
    assert archive_timestamp_due(notice, now=t0 + 10 * YEAR).reason == TOO_LATE
    # a timestamp by an RSA-2048 TSA (as PKIs created before CA keys grew to 3072 bits have) is
    # due before 2031, when NIST stops accepting 112-bit security
    weak_tsa = future.rollover(t0, bits=2048)
    stamped = refresh(notice, pki, future, t0, weak_tsa.timestamper(t0))
    weakening = archive_timestamp_due(stamped, now=dt.datetime(2030, 6, 1, tzinfo=dt.UTC))
    assert weakening.due and weakening.reason == DUE_ALGORITHM_WEAKENING and "RSA-2048" in weakening.message


def test_refusing_what_cannot_be_stamped(pki: Pki) -> None:
    with pytest.raises(PdfInvalid):
        add_archive_timestamp(b"not a pdf", timestamper=LocalTimeStamper(pki), crls=[])
    with tempfile.TemporaryDirectory():
        from pypdf import PdfWriter

        writer = PdfWriter()
        writer.add_blank_page(595, 842)
        buf = io.BytesIO()
        writer.write(buf)
        with pytest.raises(PdfInvalid) as exc:
            add_archive_timestamp(buf.getvalue(), timestamper=LocalTimeStamper(pki), crls=[])
        assert "没有签名" in exc.value.message
