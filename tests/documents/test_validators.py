"""Every kind of signature the service makes, judged by validators that are not ours: Bouncy Castle
(every CMS and every RFC 3161 token), OpenSSL (``cms -verify`` with the chain, ``ts -verify``) and
a DER check of every structure. The issuer's certification, a principal's and an office's approval,
a document (archive) timestamp, an archive timestamp by a rolled-over TSA under a rolled-over
issuing CA; the ECDSA unit key and the HTTP TSA are judged in ``test_certification``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from service.documents.ltv import add_archive_timestamp
from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.documents.sign import LocalTimeStamper
from service.pki.certificates import useful_until
from service.pki.store import Pki
from service.settings import Settings
from service.storage.local import LocalArchive
from tests.conftest import PASSPHRASE
from tests.documents.test_sign import handwriting
from tests.validators import all_validators, bouncy_castle, der_everywhere, signatures, tokens


def judged(pdf: bytes, pki: Pki, work: Path) -> dict[str, int]:
    cas = [*pki.issuing_certificates()]
    return all_validators(pdf, work, pki.trust_roots(), cas)


def test_a_notice_certified_by_the_issuer(engine: DocumentEngine, settings: Settings, pki: Pki, tmp_path: Path) -> None:
    fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    pdf = engine.issue(IssueRequest("enrollment_notice", fields)).pdf
    [issuer] = signatures(pdf)
    assert len(tokens(issuer)) == 1
    # one signer and its token for Bouncy Castle and OpenSSL; the CMS and the token are DER
    assert judged(pdf, pki, tmp_path) == {"bouncy_castle": 2, "openssl": 2, "der": 2}


def test_a_pledge_the_principal_signed_and_a_letter_the_office_signed(
    engine: DocumentEngine, settings: Settings, pki: Pki, tmp_path: Path
) -> None:
    pledge = engine.issue(
        IssueRequest("pledge", example_fields(KINDS["pledge"], settings.schemas_dir), issuer_key="bureau-licheng")
    ).pdf
    engine.pki.ensure_unit("school-shihe", "历城区王舍人街道石河小学")
    signed, _ = engine.sign_as(pledge, unit_key="school-shihe", signature_image=handwriting())
    assert judged(signed, pki, tmp_path / "pledge") == {"bouncy_castle": 4, "openssl": 4, "der": 4}

    fields = example_fields(KINDS["responsibility_office"], settings.schemas_dir)
    letter = engine.issue(
        IssueRequest("responsibility_office", fields, issuer_key="bureau-licheng", signature_image=handwriting())
    ).pdf
    engine.pki.ensure_unit("office-wangsheren", "历城区王舍人街道教育办公室")
    signed, _ = engine.sign_as(letter, unit_key="office-wangsheren", signature_image=handwriting())
    assert judged(signed, pki, tmp_path / "letter") == {"bouncy_castle": 4, "openssl": 4, "der": 4}


def test_archive_timestamps_now_and_after_the_tsa_and_the_issuing_ca_rolled_over(
    settings: Settings, converter: object, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "certs", PASSPHRASE, settings.pki_organization, settings.public_base_url)
    pki.init()
    engine = DocumentEngine(
        settings.model_copy(update={"certs_dir": tmp_path / "certs"}),
        pki=pki,
        converter=converter,  # type: ignore[arg-type]
        archive=LocalArchive(tmp_path / "archive"),
    )
    try:
        fields = example_fields(KINDS["return_notice"], settings.schemas_dir)
        notice = engine.issue(IssueRequest("return_notice", fields)).pdf

        def stamped(pdf: bytes) -> bytes:
            crls = [c.public_bytes(serialization.Encoding.DER) for c in pki.crls()]
            cas = [
                c.public_bytes(serialization.Encoding.DER)
                for c in [*pki.issuing_certificates(), pki.root_certificate()]
            ]
            return add_archive_timestamp(pdf, timestamper=LocalTimeStamper(pki), crls=crls, certs=cas)

        once = stamped(notice)
        assert judged(once, pki, tmp_path / "once") == {"bouncy_castle": 3, "openssl": 3, "der": 3}
        first_tsa = pki.tsa()[0]
        # a margin just past the issuing CA's useful life: due at once, a new issuing CA
        margin = useful_until(pki.issuing_certificate()) - dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        rolled = pki.rollover_issuing(margin)
        assert rolled is not None
        assert pki.rollover_tsa(force=True) is not None
        assert pki.tsa()[0].issuer != first_tsa.issuer  # the new TSA comes from the new issuing CA
        twice = stamped(once)
        assert judged(twice, pki, tmp_path / "twice") == {"bouncy_castle": 4, "openssl": 4, "der": 4}
    finally:
        engine.close()


class _UnsortedTsa(LocalTimeStamper):
    """The local TSA as it was: signed attributes in the order written, not sorted as DER wants."""

    def _sign_tst_info(self, tst_info_data: bytes, md_algorithm: str, at: dt.datetime) -> tuple[bytes, bytes]:
        _, signed_attrs = super()._sign_tst_info(tst_info_data, md_algorithm, at)
        attrs = cms.CMSAttributes.load(signed_attrs)
        written = [a.dump() for a in attrs]
        unsorted = b"".join(sorted(written, reverse=True))
        body = b"\x31" + _length(len(unsorted)) + unsorted
        key = self._key
        assert isinstance(key, RSAPrivateKey)
        return key.sign(body, PKCS1v15(), hashes.SHA256()), body


def _length(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x80 | 2]) + n.to_bytes(2, "big")


def test_the_judges_reject_a_token_whose_signed_attributes_are_not_in_der_order(
    engine: DocumentEngine, settings: Settings, pki: Pki, tmp_path: Path
) -> None:
    """The checks can fail: a token signed over its attributes as written, not as DER sorts them
    (the local TSA before), fails in Bouncy Castle as in EU DSS and iText, and the DER check
    names it, while pyHanko, which hashes the bytes received, finds it valid."""
    notice = engine.issue(
        IssueRequest("return_notice", example_fields(KINDS["return_notice"], settings.schemas_dir))
    ).pdf
    crls = [c.public_bytes(serialization.Encoding.DER) for c in pki.crls()]
    stamped = add_archive_timestamp(notice, timestamper=_UnsortedTsa(pki), crls=crls, certs=[])
    assert engine.verify(stamped).genuine
    with pytest.raises(AssertionError, match="signature not created by certificate"):
        bouncy_castle(stamped, tmp_path)
    with pytest.raises(AssertionError, match="not DER"):
        der_everywhere(stamped)


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (bytes.fromhex("3106020102020101"), "SET at 0 is not sorted"),
        (bytes.fromhex("3081030201 01"), "non-minimal length"),
        (bytes.fromhex("3080020101 0000"), "indefinite length"),
        (bytes.fromhex("300402020001"), "non-minimal INTEGER"),
        (bytes.fromhex("3003010101"), "BOOLEAN"),
    ],
)
def test_the_der_walk_finds_what_der_forbids(raw: bytes, complaint: str) -> None:
    from tests.validators import _der_walk

    with pytest.raises(AssertionError, match=complaint):
        _der_walk(raw, 0, len(raw))
    assert _der_walk(bytes.fromhex("3106020101020102"), 0, 8) == [bytes.fromhex("3106020101020102")]
