"""The fast signing engine against its reference, pyHanko's own API (service.documents.engines).

The same converted documents (one LibreOffice conversion per kind, cut out and dressed the same
way) are certified by both engines; a pledge is then approved by its principal, a notice gets an
archive timestamp, and the tokens of both TSAs are compared. Both engines must agree on what a
validator sees (the signature fields, the signed attributes of every CMS and token, DocMDP, what
each signature covers) and both must be valid for pyHanko, poppler's pdfsig, Bouncy Castle,
OpenSSL and the DER check."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, tsp
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp

from service.documents.engines import ENGINES, FastEngine, PyHankoEngine, SigningEngine, signing_engine
from service.documents.errors import AlreadySigned, NotSignable, SigningError
from service.documents.pipeline import DocumentEngine, IssueRequest, SignBatch, finish_batch
from service.documents.placement import placement_in_box
from service.documents.registry import KINDS, example_fields
from service.documents.seal import load_signature_image
from service.documents.sign import Appearance, Signatory, _asn1_cert, empty_field_box
from service.pki.store import Pki
from service.settings import Settings
from tests import checks
from tests.documents.test_certification import _Tsa
from tests.documents.test_sign import handwriting
from tests.validators import all_validators, signatures, tokens

PRINCIPAL = ("school-shihe", "历城区王舍人街道石河小学")


@pytest.fixture(scope="module")
def engines(engine: DocumentEngine) -> dict[str, SigningEngine]:
    """Both engines over the session's keys and TSA, as ``DOCSIGN_SIGNING_ENGINE`` chooses them."""
    return {name: signing_engine(name, engine.signatory) for name in ENGINES}


@pytest.fixture(scope="module")
def notice_batch(engine: DocumentEngine, settings: Settings) -> SignBatch:
    fields_ = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    return engine.converted([IssueRequest("enrollment_notice", fields_)])


@pytest.fixture(scope="module")
def pledge_batch(engine: DocumentEngine, settings: Settings) -> SignBatch:
    fields_ = example_fields(KINDS["pledge"], settings.schemas_dir)
    return engine.converted([IssueRequest("pledge", fields_, issuer_key="bureau-licheng")])


@pytest.fixture(scope="module")
def notices(engines: dict[str, SigningEngine], notice_batch: SignBatch) -> dict[str, bytes]:
    """The same converted notice, cut out, dressed and certified by each engine."""
    return {name: finish_batch(notice_batch, e)[0].pdf for name, e in engines.items()}


def approved(pdf: bytes, signing: SigningEngine, field_name: str = "Unit") -> bytes:
    """The principal's approval in its field, with a handwritten signature."""
    signing.signatory.pki.ensure_unit(*PRINCIPAL)
    kind = KINDS["pledge"]
    page, box = empty_field_box(pdf, field_name)
    assert box is not None
    placement = placement_in_box(kind.slot(field_name), box, page)
    assert placement is not None
    appearance = Appearance(PRINCIPAL[1], None, load_signature_image(handwriting()))
    return signing.approve(
        pdf, unit_key=PRINCIPAL[0], placement=placement, appearance=appearance, reason="签署《承诺书》"
    )


def archived(pdf: bytes, signing: SigningEngine) -> bytes:
    pki = signing.signatory.pki
    crls = [c.public_bytes(serialization.Encoding.DER) for c in pki.crls()]
    cas = [c.public_bytes(serialization.Encoding.DER) for c in (*pki.issuing_certificates(), pki.root_certificate())]
    return signing.document_timestamp(pdf, crls=crls, certs=cas)


# --- what a validator sees -----------------------------------------------------------------------


def _attribute_types(attrs: Any) -> list[str]:
    return sorted(a["type"].native for a in attrs or [])


def _token_shape(token: cms.ContentInfo) -> dict[str, Any]:
    signed_data = token["content"]
    [info] = signed_data["signer_infos"]
    tst = signed_data["encap_content_info"]["content"].parsed
    return {
        "signed_attributes": _attribute_types(info["signed_attrs"]),
        "digest": info["digest_algorithm"]["algorithm"].native,
        "imprint": tst["message_imprint"]["hash_algorithm"]["algorithm"].native,
        "policy": tst["policy"].dotted,
        "certificates": len(signed_data["certificates"]),
        "tsa": tst["tsa"].chosen.native,
    }


def shape(pdf: bytes, pki: Pki) -> dict[str, Any]:
    """What the document shows a validator, without what must differ between two signatures
    (times, serial numbers, signature values, the bytes of the appearance streams)."""
    reader = PdfFileReader(io.BytesIO(pdf))
    root = _asn1_cert(pki.root_certificate())
    revisions = [m.end() for m in re.finditer(rb"%%EOF\r?\n?", pdf)]
    sigs = []
    for sig in reader.embedded_signatures:
        context = checks.dss_context(reader, root)
        start, first, second, rest = sig.byte_range
        end = second + rest
        if sig.sig_object_type == "/DocTimeStamp":
            status: Any = validate_pdf_timestamp(sig, context)
            info = sig.signer_info
            token_shapes = [_token_shape(cms.ContentInfo.load(_signed(pdf, sig.field_name).cms))]
        else:
            status = validate_pdf_signature(sig, context)
            info = sig.signer_info
            token_shapes = [_token_shape(cms.ContentInfo.load(t)) for t, _ in tokens(_signed(pdf, sig.field_name))]
        sigs.append(
            {
                "field": sig.field_name,
                "type": sig.sig_object_type,
                "subfilter": sig.sig_object["/SubFilter"],
                "docmdp": sig.docmdp_level,
                "signed_attributes": _attribute_types(info["signed_attrs"]),
                "unsigned_attributes": _attribute_types(info["unsigned_attrs"]),
                "digest": info["digest_algorithm"]["algorithm"].native,
                "signature_algorithm": info["signature_algorithm"]["algorithm"].native,
                "certificates": sorted(c.chosen.subject.human_friendly for c in sig.signed_data["certificates"]),
                "tokens": token_shapes,
                # from the first byte to the end of a revision, all but the /Contents hole
                "covers": (start == 0, end in revisions, pdf[first : first + 1] + pdf[second - 1 : second] == b"<>"),
                "coverage": status.coverage.name,
                "valid": status.valid and status.intact and status.trusted,
                "modifications": getattr(status, "modification_level", None),
            }
        )
    form = sorted((name, value is not None) for name, value, _ in fields.enumerate_sig_fields(reader))
    perms = reader.root.get("/Perms")
    return {
        "fields": form,
        "signatures": sigs,
        "perms": sorted(perms.keys()) if perms is not None else [],
        "pades_extension": "/ESIC" in reader.root.get("/Extensions", {}),
    }


def _signed(pdf: bytes, field: str) -> Any:
    return next(s for s in signatures(pdf) if s.field == field)


def judged(pdf: bytes, pki: Pki, nss_db: str, work: Path) -> dict[str, int]:
    """Every validator's count of what it found valid."""
    statuses = shape(pdf, pki)["signatures"]
    assert all(s["valid"] for s in statuses), statuses
    report = checks.pdfsig(pdf, nss_db)
    assert "Signature is Invalid" not in report, report
    # poppler cannot check RFC 3161 document timestamps (version 22): signatures only
    signers = sum(1 for s in statuses if s["type"] == "/Sig")
    assert report.count("Signature is Valid.") == signers and report.count("Certificate is Trusted.") == signers, report
    return all_validators(pdf, work, pki.trust_roots(), [*pki.issuing_certificates()])


def assert_agree(fast: bytes, reference: bytes, pki: Pki) -> dict[str, Any]:
    a, b = shape(fast, pki), shape(reference, pki)
    assert a == b
    return a


# --- the agreement tests -------------------------------------------------------------------------


def test_a_notice_certified_by_each_engine(
    engines: dict[str, SigningEngine],
    notices: dict[str, bytes],
    notice_batch: SignBatch,
    pki: Pki,
    nss_db: str,
    tmp_path: Path,
) -> None:
    assert isinstance(engines["fast"], FastEngine) and isinstance(engines["pyhanko"], PyHankoEngine)
    agreed = assert_agree(notices["fast"], notices["pyhanko"], pki)
    [issuer] = agreed["signatures"]
    assert issuer["field"] == "Issuer" and issuer["docmdp"] == fields.MDPPerm.FILL_FORMS
    assert issuer["signed_attributes"] == ["content_type", "message_digest", "signing_certificate_v2"]
    assert issuer["tokens"][0]["signed_attributes"] == [
        "content_type",
        "message_digest",
        "signing_certificate_v2",
        "signing_time",
    ]
    assert issuer["coverage"] == "ENTIRE_FILE" and all(issuer["covers"])
    assert agreed["perms"] == ["/DocMDP"]
    # both certify the same dressed document: the fast one's update is appended to the same bytes
    for name, pdf in notices.items():
        assert judged(pdf, pki, nss_db, tmp_path / name) == {"bouncy_castle": 2, "openssl": 2, "der": 2}


def test_a_pledge_certified_then_signed_by_its_principal(
    engines: dict[str, SigningEngine], pledge_batch: SignBatch, pki: Pki, nss_db: str, tmp_path: Path
) -> None:
    signed = {}
    for name, signing in engines.items():
        certified = finish_batch(pledge_batch, signing)[0].pdf
        signed[name] = approved(certified, signing)
        assert signed[name].startswith(certified)
    agreed = assert_agree(signed["fast"], signed["pyhanko"], pki)
    issuer, principal = agreed["signatures"]
    assert (issuer["coverage"], principal["coverage"]) == ("ENTIRE_REVISION", "ENTIRE_FILE")
    assert principal["docmdp"] is None and principal["type"] == "/Sig"
    assert agreed["fields"] == [("Bureau", True), ("Unit", True)]
    for name, pdf in signed.items():
        assert judged(pdf, pki, nss_db, tmp_path / name) == {"bouncy_castle": 4, "openssl": 4, "der": 4}
    # each engine refuses a field already signed (the fast one as pyHanko words it: the pipeline
    # asks empty_field_box first), or one the document does not have
    [_, unit] = pledge_batch.tasks[0].placements
    for signing in engines.values():
        with pytest.raises((AlreadySigned, SigningError)):
            signing.approve(
                signed["fast"],
                unit_key=PRINCIPAL[0],
                placement=unit,
                appearance=Appearance(PRINCIPAL[1]),
                reason="签署",
            )
        with pytest.raises(NotSignable):
            signing.certify(
                signed["fast"],
                unit_key="bureau-licheng",
                placement=dataclasses.replace(pledge_batch.tasks[0].placements[0], field_name="Nope"),
                appearance=Appearance("济南市历城区教育和体育局"),
                reason="签发",
            )


def test_an_archive_timestamp_by_each_engine(
    engines: dict[str, SigningEngine], notices: dict[str, bytes], pki: Pki, nss_db: str, tmp_path: Path
) -> None:
    stamped = {name: archived(notices[name], e) for name, e in engines.items()}
    for name, pdf in stamped.items():
        assert pdf.startswith(notices[name])
    agreed = assert_agree(stamped["fast"], stamped["pyhanko"], pki)
    certification, archive = agreed["signatures"]
    assert archive["type"] == "/DocTimeStamp" and archive["subfilter"] == "/ETSI.RFC3161"
    assert (certification["coverage"], archive["coverage"]) == ("ENTIRE_REVISION", "ENTIRE_FILE")
    for name, pdf in stamped.items():
        assert judged(pdf, pki, nss_db, tmp_path / name) == {"bouncy_castle": 3, "openssl": 3, "der": 3}


def test_the_two_tsas_make_the_same_token(engines: dict[str, SigningEngine], pki: Pki) -> None:
    """A signature timestamp token from each engine's TSA: the same attributes, policy and
    certificate, each over the digest asked for, each DER."""
    value = b"a signature value"
    made = {name: e.timestamp_token(value) for name, e in engines.items()}
    shapes = {name: _token_shape(cms.ContentInfo.load(token)) for name, token in made.items()}
    assert shapes["fast"] == shapes["pyhanko"]
    for token in made.values():
        assert cms.ContentInfo.load(token).dump(force=True) == token
        tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
        assert isinstance(tst, tsp.TSTInfo)
        assert tst["message_imprint"]["hashed_message"].native == hashlib.sha256(value).digest()


class _LockedReference(PyHankoEngine):
    """The reference with a certification that allows no change at all (DocMDP level 1)."""

    def metadata(self, field_name: str, reason: str, name: str, *, certify: bool) -> Any:
        meta = super().metadata(field_name, reason, name, certify=certify)
        return dataclasses.replace(meta, docmdp_permissions=fields.MDPPerm.NO_CHANGES)


def test_the_comparison_sees_a_certification_that_differs(
    engine: DocumentEngine, notices: dict[str, bytes], notice_batch: SignBatch, pki: Pki
) -> None:
    """The agreement check can fail: a certification allowing no changes is not the fast one's."""
    locked = finish_batch(notice_batch, _LockedReference(engine.signatory))[0].pdf
    with pytest.raises(AssertionError):
        assert_agree(notices["fast"], locked, pki)
    assert shape(locked, pki)["signatures"][0]["docmdp"] == fields.MDPPerm.NO_CHANGES


def test_the_setting_chooses_the_engine(settings: Settings, pki: Pki, converter: object) -> None:
    for name, cls in (("fast", FastEngine), ("pyhanko", PyHankoEngine)):
        with DocumentEngine(settings.model_copy(update={"signing_engine": name}), pki=pki, converter=converter) as e:  # type: ignore[arg-type]
            assert isinstance(e.signing, cls) and e.signing.name == name
    with pytest.raises(ValueError, match="unknown signing engine"):
        signing_engine("slow", Signatory(pki, settings.tsa_url))


def test_with_a_tsa_over_http_both_engines_agree(
    notice_batch: SignBatch, pki: Pki, nss_db: str, tmp_path: Path
) -> None:
    """With ``DOCSIGN_TSA_URL`` both engines ask the same HTTP TSA (pyHanko's HTTPTimeStamper)."""
    with _Tsa(pki) as tsa:
        signatory = Signatory(pki, tsa.url)
        made = {name: finish_batch(notice_batch, signing_engine(name, signatory))[0].pdf for name in ENGINES}
        assert tsa.requests >= 2
    assert_agree(made["fast"], made["pyhanko"], pki)
    for name, pdf in made.items():
        assert judged(pdf, pki, nss_db, tmp_path / name) == {"bouncy_castle": 2, "openssl": 2, "der": 2}
