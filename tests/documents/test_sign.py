"""Two-party signing: the issuer certifies, a unit signs later, and both stay valid."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm

from service.documents.errors import AlreadySigned, NotSignable, PdfInvalid
from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.pki.errors import CertificateRevoked
from service.settings import Settings
from tests import checks


def handwriting() -> bytes:
    """A drawn signature, as a signature pad sends it: dark strokes on a white PNG."""
    img = Image.new("RGB", (480, 180), "white")
    draw = ImageDraw.Draw(img)
    draw.line(
        [(30, 130), (90, 40), (140, 120), (200, 50), (260, 140), (330, 60), (450, 110)], fill=(10, 10, 10), width=8
    )
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def pledge(engine: DocumentEngine, settings: Settings) -> bytes:
    fields = example_fields(KINDS["pledge"], settings.schemas_dir)
    return engine.issue(IssueRequest("pledge", fields, issuer_key="bureau-licheng")).pdf


@pytest.fixture(scope="module")
def school_key(engine: DocumentEngine) -> str:
    engine.pki.ensure_unit("school-shihe", "历城区王舍人街道石河小学")
    return "school-shihe"


def test_principal_signs_after_the_bureau_and_certification_stays_valid(
    engine: DocumentEngine, pledge: bytes, school_key: str, nss_db: str
) -> None:
    signed, digest = engine.sign_as(pledge, unit_key=school_key, signature_image=handwriting())
    assert engine.archive.get(digest) == signed
    report = engine.verify(signed)
    assert report.genuine, report.to_dict()
    certification, approval = report.signatures
    assert certification.certification and certification.permissions == "只允许填写表单和签名"
    assert certification.modification == "签署后仅追加了签名或填写了表单"
    assert approval.signer == "历城区王舍人街道石河小学" and not approval.certification
    assert approval.signing_time is not None and approval.signing_time >= certification.signing_time
    sig = checks.pdfsig(signed, nss_db)
    assert sig.count("Signature is Valid.") == 2 and sig.count("Certificate is Trusted.") == 2, sig
    assert checks.qpdf_check(signed).returncode == 0
    # the DocMDP level pyHanko reads back is form filling
    reader = PdfFileReader(io.BytesIO(signed))
    assert reader.embedded_signatures[0].docmdp_level == MDPPerm.FILL_FORMS


def test_responsibility_letter_both_parties(engine: DocumentEngine, settings: Settings, nss_db: str) -> None:
    fields = example_fields(KINDS["responsibility_office"], settings.schemas_dir)
    issued = engine.issue(
        IssueRequest("responsibility_office", fields, issuer_key="bureau-licheng", signature_image=handwriting())
    )
    engine.pki.ensure_unit("office-wangsheren", "历城区王舍人街道教育办公室")
    signed, _ = engine.sign_as(issued.pdf, unit_key="office-wangsheren", signature_image=handwriting())
    assert engine.verify(signed).genuine
    assert checks.pdfsig(signed, nss_db).count("Certificate is Trusted.") == 2


def test_signing_twice_is_refused(engine: DocumentEngine, pledge: bytes, school_key: str) -> None:
    signed, _ = engine.sign_as(pledge, unit_key=school_key)
    with pytest.raises(AlreadySigned) as exc:
        engine.sign_as(signed, unit_key=school_key)
    assert exc.value.code == "ALREADY_SIGNED" and "不能重复签署" in exc.value.message


def test_a_notice_has_no_place_for_another_signer(engine: DocumentEngine, settings: Settings, school_key: str) -> None:
    fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    notice = engine.issue(IssueRequest("enrollment_notice", fields)).pdf
    with pytest.raises(NotSignable) as exc:
        engine.sign_as(notice, unit_key=school_key)
    assert exc.value.code == "NOT_SIGNABLE"


def test_an_altered_document_is_not_signed(engine: DocumentEngine, pledge: bytes, school_key: str) -> None:
    altered = bytearray(pledge)
    altered[len(altered) // 3] ^= 0x20
    with pytest.raises(PdfInvalid) as exc:
        engine.sign_as(bytes(altered), unit_key=school_key)
    assert "未通过验证" in exc.value.message


def test_a_revoked_certificate_cannot_sign(engine: DocumentEngine, pledge: bytes) -> None:
    engine.pki.ensure_unit("school-revoked", "历城区王舍人街道石河小学")
    engine.pki.revoke_unit("school-revoked")
    with pytest.raises(CertificateRevoked) as exc:
        engine.sign_as(pledge, unit_key="school-revoked")
    assert exc.value.code == "CERTIFICATE_REVOKED"
