"""Uploads cannot stall the service: each limit gives its named answer within seconds."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization

from service.documents.errors import VerifierFull
from service.documents.ltv import add_archive_timestamp
from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.documents.sandbox import UploadLimits, UploadVerifier, verify_untrusted
from service.documents.sign import LocalTimeStamper
from service.documents.verify import VerificationReport
from service.pki.store import Pki
from service.settings import Settings
from tests.documents.future_pki import asn1


@pytest.fixture(scope="module")
def notice(engine: DocumentEngine, settings: Settings) -> bytes:
    fields = example_fields(KINDS["return_notice"], settings.schemas_dir)
    return engine.issue(IssueRequest("return_notice", fields)).pdf


@pytest.fixture(scope="module")
def trust(pki: Pki) -> tuple[list[object], list[bytes]]:
    return [asn1(c) for c in pki.trust_roots()], [c.public_bytes(serialization.Encoding.DER) for c in pki.crls()]


@pytest.fixture(scope="module")
def uploads() -> Iterator[UploadVerifier]:
    verifier = UploadVerifier(UploadLimits())
    yield verifier
    verifier.close()


@pytest.fixture(scope="module")
def stamped(notice: bytes, pki: Pki) -> dict[int, bytes]:
    """The notice with 12, 20, 30 and 50 archive timestamps: genuine files whose check costs grow
    with the square of their signatures."""
    crls = [c.public_bytes(serialization.Encoding.DER) for c in pki.crls()]
    stamper = LocalTimeStamper(pki)
    pdf, out = notice, {}
    for n in range(1, 51):
        pdf = add_archive_timestamp(pdf, timestamper=stamper, crls=crls)
        out[n] = pdf
    return {n: out[n] for n in (12, 20, 30, 50)}


def check(
    verifier: UploadVerifier, pdf: bytes, trust: tuple[list[object], list[bytes]]
) -> tuple[VerificationReport, float]:
    started = time.monotonic()
    report = verifier.verify(pdf, trust[0], trust[1])  # type: ignore[arg-type]
    return report, time.monotonic() - started


def refused(report: VerificationReport, words: str) -> None:
    assert not report.genuine
    (problem,) = report.all_problems
    assert problem.code == "UPLOAD_TOO_COMPLEX" and words in problem.message, problem


def test_a_real_notice_verifies_in_the_sandbox(uploads: UploadVerifier, notice: bytes, trust: tuple) -> None:
    report, _ = check(uploads, notice, trust)
    assert report.genuine, report.to_dict()
    assert report.sha256 == hashlib.sha256(notice).hexdigest()
    again, seconds = check(uploads, notice, trust)  # the worker is warm now
    assert again.genuine and seconds < 2


def test_too_large(uploads: UploadVerifier, trust: tuple) -> None:
    report, seconds = check(uploads, b"%PDF-1.7\n" + b"0" * (21 * 1024 * 1024), trust)
    refused(report, "超过了上限 20 MB")
    assert seconds < 1


def test_too_many_revisions(uploads: UploadVerifier, notice: bytes, trust: tuple) -> None:
    """Forty empty incremental updates, each a cross-reference section and a trailer."""
    pdf = notice
    for _ in range(40):
        prev = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
        pdf += b"xref\n0 0\ntrailer\n<< /Size 60 /Root 3 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (prev, len(pdf))
    report, seconds = check(uploads, pdf, trust)
    refused(report, "个版本，超过了上限 32")
    assert seconds < 1


def test_too_many_signatures(uploads: UploadVerifier, stamped: dict[int, bytes], trust: tuple) -> None:
    report, seconds = check(uploads, stamped[12], trust)
    refused(report, "个签名，超过了上限 12")
    assert seconds < 1


def test_cpu_limit_kills_the_check_and_the_service_stays_responsive(
    notice: bytes, stamped: dict[int, bytes], trust: tuple
) -> None:
    """50 archive timestamps take several seconds of CPU to check, even on a fast machine; with a 1 s
    cap the worker is killed, the caller's other threads keep running, and the next upload is
    checked by a new worker."""
    heavy = stamped[50]
    verifier = UploadVerifier(UploadLimits(cpu_seconds=1, max_signatures=100, max_revisions=100))
    try:
        result: list[tuple[VerificationReport, float]] = []
        worker = threading.Thread(target=lambda: result.append(check(verifier, heavy, trust)))
        worker.start()
        pauses = []
        while worker.is_alive():
            started = time.monotonic()
            hashlib.sha256(notice).digest()  # this process keeps working meanwhile
            time.sleep(0.05)
            pauses.append(time.monotonic() - started)
        worker.join()
        ((report, seconds),) = result
        refused(report, "计算时间上限")
        assert seconds < 15
        assert max(pauses) < 1
        after, _ = check(verifier, notice, trust)
        assert after.genuine, after.to_dict()
    finally:
        verifier.close()


def test_wall_clock_limit(notice: bytes, stamped: dict[int, bytes], trust: tuple) -> None:
    heavy = stamped[20]
    verifier = UploadVerifier(UploadLimits(wall_seconds=0.3, max_signatures=100, max_revisions=100))
    try:
        check(verifier, notice, trust)  # start the worker: the limit is for the check alone
        report, seconds = check(verifier, heavy, trust)
        refused(report, "时间上限")
        assert seconds < 5
    finally:
        verifier.close()


def test_verify_untrusted_shares_a_worker(notice: bytes, trust: tuple) -> None:
    report = verify_untrusted(notice, trust[0], trust[1])  # type: ignore[arg-type]
    assert report.genuine
    damaged = verify_untrusted(notice[: len(notice) // 2], trust[0], trust[1])  # type: ignore[arg-type]
    assert not damaged.genuine and damaged.codes & {"PDF_DAMAGED", "TRAILING_DATA", "SIGNATURE_UNREADABLE"}


def test_a_full_line_of_uploads_is_answered_at_once_with_when_to_retry(notice: bytes, trust: tuple) -> None:
    """One worker and one place in line: a third upload does not wait (holding a server thread a
    scan needs) but is refused at once with 429 and when to try again; the two admitted finish."""
    verifier = UploadVerifier(UploadLimits(wall_seconds=30), workers=1, waiting=1)
    try:
        check(verifier, notice, trust)  # the worker started
        verifier._slots.acquire()  # the worker busy with someone's long check, held here
        done: list[VerificationReport] = []
        threads = [threading.Thread(target=lambda: done.append(check(verifier, notice, trust)[0])) for _ in range(2)]
        for t in threads:
            t.start()
        while verifier.in_line < 2:
            time.sleep(0.01)
        with pytest.raises(VerifierFull) as full:
            verifier.verify(notice, trust[0], trust[1])
        assert full.value.http_status == 429 and full.value.code == "UPLOADS_BUSY" and full.value.retry_after == 30
        assert "扫码" in full.value.message and all(t.is_alive() for t in threads)
        verifier._slots.release()  # the long check ends: both in line are checked
        for t in threads:
            t.join()
        assert [r.genuine for r in done] == [True, True] and verifier.in_line == 0
        assert check(verifier, notice, trust)[0].genuine  # and the line is open again
    finally:
        verifier.close()
