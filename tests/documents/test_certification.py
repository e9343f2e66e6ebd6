"""The issuer's certification written by our own code (service.documents.certification): what it
writes must read exactly as a pyHanko certification reads, for every kind, with the local TSA and
with one over HTTP, and under threads."""

from __future__ import annotations

import datetime as dt
import io
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore

from service.documents.certification import MARGIN_HEX_DIGITS, certify_dressed
from service.documents.convert import Converter
from service.documents.errors import NotSignable, PdfInvalid, TimestampUnavailable
from service.documents.pipeline import DocumentEngine, IssueRequest, unit_key_for
from service.documents.registry import KINDS, example_fields
from service.documents.sign import LocalTimeStamper, _asn1_cert
from service.pki.certificates import build, subject_name
from service.pki.store import Pki
from service.settings import Settings
from service.storage.local import LocalArchive
from tests import checks
from tests.conftest import PASSPHRASE
from tests.validators import all_validators


@pytest.fixture(scope="module")
def issued(engine: DocumentEngine, settings: Settings) -> dict[str, tuple[bytes, str]]:
    """Every kind issued in one batch (one merged conversion, one split), with its issuer's name."""
    requests = [IssueRequest(key, example_fields(KINDS[key], settings.schemas_dir)) for key in KINDS]
    return {doc.kind: (doc.pdf, doc.issuer_name) for doc in engine.issue_many(requests)}


def _previous_revision(pdf: bytes) -> bytes:
    """The document as it was before its last update (the dressed, unsigned one)."""
    ends = [m.end() for m in re.finditer(rb"%%EOF\r?\n?", pdf)]
    return pdf[: ends[-2]]


def _signature(pdf: bytes, field: str) -> object:
    reader = PdfFileReader(io.BytesIO(pdf))
    return next(s for s in reader.embedded_signatures if s.field_name == field)


@pytest.mark.parametrize("key", list(KINDS))
def test_certification_reads_as_pyhanko_writes_it(
    issued: dict[str, tuple[bytes, str]], key: str, pki: Pki, nss_db: str
) -> None:
    pdf, issuer_name = issued[key]
    kind = KINDS[key]
    reader = PdfFileReader(io.BytesIO(pdf))
    sigs = reader.embedded_signatures
    assert [s.field_name for s in sigs] == [kind.issuer.field_name]
    sig = sigs[0]
    # the dictionary pyHanko reads: the issuer's name, the reason, DocMDP form filling
    assert sig.sig_object["/Name"] == issuer_name
    assert sig.sig_object["/Reason"].startswith("签发")
    assert sig.docmdp_level == MDPPerm.FILL_FORMS
    assert reader.root["/Perms"]["/DocMDP"].get_object() == sig.sig_object
    status = validate_pdf_signature(sig, checks.dss_context(reader, _asn1_cert(pki.root_certificate())))
    assert status.bottom_line and status.docmdp_ok, status.pretty_print_details()
    assert status.timestamp_validity is not None and status.timestamp_validity.valid
    # the time in the dictionary is the timestamp's, to the second
    assert sig.self_reported_timestamp is not None
    assert abs((sig.self_reported_timestamp - status.timestamp_validity.timestamp).total_seconds()) < 1
    # one empty field per later signer, named as the registry names it
    form_fields = {str(f.get_object()["/T"]): f.get_object() for f in reader.root["/AcroForm"]["/Fields"]}
    assert set(form_fields) == {s.field_name for s in kind.slots}
    for slot in kind.later_signers:
        assert "/V" not in form_fields[slot.field_name]

    cms_der = cms.ContentInfo.load(bytes(sig.pkcs7_content)).dump()
    signed_data = sig.signed_data
    signer_info = sig.signer_info
    # the signed attributes are DER: asn1crypto, which sorts a SET OF, encodes them the same
    signed_attrs = signer_info["signed_attrs"]
    reencoded = cms.CMSAttributes.load(signed_attrs.untag().dump()).dump(force=True)
    assert reencoded == signed_attrs.untag().dump()
    assert {a["type"].native for a in signed_attrs} == {"content_type", "message_digest", "signing_certificate_v2"}
    # the signer's certificate is in the CMS, not again in the DSS; the TSA's only in its token
    signer_der = signed_data["certificates"][0].chosen.dump()
    dss_ders = [c.dump() for c in DocumentSecurityStore.read_dss(reader).load_certs()]
    assert signer_der not in dss_ders
    token = signer_info["unsigned_attrs"][0]["values"][0]
    assert len(token["content"]["certificates"]) == 1
    assert token["content"]["certificates"][0].chosen.dump() not in dss_ders
    # the room reserved is what the signature needs, not a guess padded by kilobytes
    hexed = pdf[sig.byte_range[1] : sig.byte_range[2]]
    assert hexed.startswith(b"<") and hexed.endswith(b">")
    unused = len(hexed) - 2 - 2 * len(cms_der)
    assert 0 <= unused <= MARGIN_HEX_DIGITS + 2 * 64 + 64, unused

    report = checks.pdfsig(pdf, nss_db)
    assert "Signature is Valid." in report and "Certificate is Trusted." in report, report
    assert "Signature Type: ETSI.CAdES.detached" in report, report


def test_threads_certify_the_same_document_apart(
    issued: dict[str, tuple[bytes, str]], engine: DocumentEngine, pki: Pki
) -> None:
    """Eight threads certify the same dressed document at once: eight valid, distinct signatures."""
    base = _previous_revision(issued["enrollment_notice"][0])
    unit_key = unit_key_for(issued["enrollment_notice"][1])

    def one(_: int) -> bytes:
        return certify_dressed(base, signatory=engine.signatory, unit_key=unit_key, field_name="Issuer", reason="签发")

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(one, range(8)))
    assert len(set(outs)) == 8
    root = _asn1_cert(pki.root_certificate())
    for out in outs:
        assert out.startswith(base)
        [(_, _, _, ok)] = checks.pyhanko_statuses(out, root)
        assert ok


def test_what_cannot_be_certified_is_refused(issued: dict[str, tuple[bytes, str]], engine: DocumentEngine) -> None:
    base = _previous_revision(issued["pledge"][0])
    unit_key = unit_key_for(issued["pledge"][1])
    with pytest.raises(NotSignable):
        certify_dressed(base, signatory=engine.signatory, unit_key=unit_key, field_name="Nope", reason="签发")
    for junk in (b"", b"%PDF-1.7\n%%EOF\n", base[: len(base) // 2], b"not a pdf startxref\n12\n%%EOF"):
        with pytest.raises(PdfInvalid):
            certify_dressed(junk, signatory=engine.signatory, unit_key=unit_key, field_name="Issuer", reason="签发")


class _Tsa:
    """An RFC 3161 time-stamping service over real HTTP, answering with the local TSA's key.
    ``chain`` makes its tokens carry the whole chain (as many public TSAs do), bigger than the
    first token measured."""

    def __init__(self, pki: Pki) -> None:
        stamper = LocalTimeStamper(pki)
        extra = [_asn1_cert(c) for c in pki.chain_for(pki.tsa()[0])[1:]]
        self.chain = False
        self.requests = 0
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                tsa.requests += 1
                resp = stamper.request_tsa_response(tsp.TimeStampReq.load(body))
                if tsa.chain:  # the certificates are outside what the TSA signs: the rest stays as signed
                    token = resp["time_stamp_token"]
                    signed_data = token["content"]
                    signed_data["certificates"] = cms.CertificateSet(
                        [*signed_data["certificates"], *(cms.CertificateChoices("certificate", c) for c in extra)]
                    )
                    resp = tsp.TimeStampResp(
                        {
                            "status": resp["status"],
                            "time_stamp_token": {"content_type": "signed_data", "content": signed_data},
                        }
                    )
                data = resp.dump()
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Tsa:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def http_tsa(pki: Pki) -> Iterator[_Tsa]:
    with _Tsa(pki) as tsa:
        yield tsa


def test_certifies_with_a_tsa_over_http(
    http_tsa: _Tsa, settings: Settings, pki: Pki, converter: Converter, tmp_path: Path, nss_db: str
) -> None:
    engine = DocumentEngine(
        settings.model_copy(update={"tsa_url": http_tsa.url}),
        pki=pki,
        converter=converter,
        archive=LocalArchive(tmp_path / "archive"),
    )
    fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    first = engine.issue(IssueRequest("enrollment_notice", fields))
    assert http_tsa.requests >= 2  # the token measured once, then the document's own
    # the TSA now sends its whole chain: bigger tokens than the one measured still fit
    http_tsa.chain = True
    second = engine.issue(IssueRequest("enrollment_notice", fields))
    root = _asn1_cert(pki.root_certificate())
    for doc, token_certs in ((first, 1), (second, 1 + len(pki.chain_for(pki.tsa()[0])[1:]))):
        reader = PdfFileReader(io.BytesIO(doc.pdf))
        status = validate_pdf_signature(reader.embedded_signatures[0], checks.dss_context(reader, root))
        assert status.bottom_line, status.pretty_print_details()
        report = engine.verify(doc.pdf)
        assert report.genuine, report.to_dict()
        assert "Signature is Valid." in checks.pdfsig(doc.pdf, nss_db)
        sig = _signature(doc.pdf, "Issuer")
        token = sig.signer_info["unsigned_attrs"][0]["values"][0]  # type: ignore[attr-defined]
        assert len(token["content"]["certificates"]) == token_certs
        # the HTTP TSA's tokens, judged by Bouncy Castle and OpenSSL too
        judged = all_validators(doc.pdf, tmp_path / doc.sha256[:8], pki.trust_roots(), pki.issuing_certificates())
        assert judged == {"bouncy_castle": 2, "openssl": 2, "der": 2}
    engine.close()


def test_a_tsa_that_does_not_answer_stops_the_issue_with_nothing_stored(
    settings: Settings, pki: Pki, converter: Converter, tmp_path: Path
) -> None:
    with _Tsa(pki) as tsa:
        url = tsa.url  # a port that was open and is closed now
    archive = LocalArchive(tmp_path / "archive")
    engine = DocumentEngine(settings.model_copy(update={"tsa_url": url}), pki=pki, converter=converter, archive=archive)
    fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    with pytest.raises(TimestampUnavailable) as caught:
        engine.issue(IssueRequest("enrollment_notice", fields))
    assert caught.value.code and re.search(r"[\u4e00-\u9fff]", caught.value.message)
    assert not any(p.is_file() for p in (tmp_path / "archive").rglob("*"))
    engine.close()


def test_a_unit_with_an_ecdsa_key_certifies(settings: Settings, converter: Converter, tmp_path: Path) -> None:
    """A unit that brings its own certificate (PKCS#12) may hold an EC key: the certification is
    an ECDSA signature, and the room for it is the longest an ECDSA signature can be."""
    pki = Pki(tmp_path / "certs", PASSPHRASE, settings.pki_organization, settings.public_base_url)
    pki.init()
    issuing, issuing_key = pki.authority.current()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    name = fields["issuer_name"]
    cert = build(
        subject_name(name, name, "电子签章"),
        ec_key.public_key(),
        issuing,
        issuing_key,
        dt.timedelta(days=365),
        at=dt.datetime.now(dt.UTC),
        ca=False,
        crl=pki.authority.crl_url(pki.authority.issuing_name()),
        leaf=True,
    )
    p12 = pkcs12.serialize_key_and_certificates(
        b"unit", ec_key, cert, [issuing, pki.root_certificate()], serialization.BestAvailableEncryption(b"pw")
    )
    pki.import_pkcs12("school-ec", p12, "pw")
    engine = DocumentEngine(
        settings.model_copy(update={"certs_dir": tmp_path / "certs"}),
        pki=pki,
        converter=converter,
        archive=LocalArchive(tmp_path / "archive"),
    )
    docs = [engine.issue(IssueRequest("enrollment_notice", fields, issuer_key="school-ec")) for _ in range(3)]
    root_pem = tmp_path / "root.crt"
    root_pem.write_bytes(pki.root_certificate().public_bytes(serialization.Encoding.PEM))
    nss = checks.nss_db(tmp_path / "nss", root_pem)
    for doc in docs:
        sig = _signature(doc.pdf, "Issuer")
        assert sig.signer_info["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"  # type: ignore[attr-defined]
        [(_, _, _, ok)] = checks.pyhanko_statuses(doc.pdf, _asn1_cert(pki.root_certificate()))
        assert ok
        report = engine.verify(doc.pdf)
        assert report.genuine, report.to_dict()
        pdfsig = checks.pdfsig(doc.pdf, nss)
        assert "Signature is Valid." in pdfsig and "Certificate is Trusted." in pdfsig, pdfsig
    # an ECDSA signature, judged by Bouncy Castle and OpenSSL too
    judged = all_validators(docs[0].pdf, tmp_path / "judged", pki.trust_roots(), pki.issuing_certificates())
    assert judged == {"bouncy_castle": 2, "openssl": 2, "der": 2}
    engine.close()


def test_documents_issued_from_threads_at_once_are_each_valid(
    isolated_engine: DocumentEngine, settings: Settings, pki: Pki
) -> None:
    """Single documents issued from several threads at once (web requests, jobs): each is dressed
    and certified in this process, sharing the kits, and each comes out valid."""
    kinds = ["enrollment_notice", "pledge", "return_notice", "dropout_register"] * 2

    def one(key: str) -> bytes:
        return isolated_engine.issue(IssueRequest(key, example_fields(KINDS[key], settings.schemas_dir))).pdf

    with ThreadPoolExecutor(4) as pool:
        pdfs = list(pool.map(one, kinds))
    root = _asn1_cert(pki.root_certificate())
    for key, pdf in zip(kinds, pdfs, strict=True):
        [(_, _, _, ok)] = checks.pyhanko_statuses(pdf, root)
        assert ok, key
        assert checks.qpdf_check(pdf).returncode == 0, key


def test_an_extra_root_vouches_only_for_the_certificates_imported_under_it(
    settings: Settings, pki: Pki, converter: Converter, tmp_path: Path
) -> None:
    """A root in certs/trust/ is there for units that brought their own certificate. A signature
    by any other certificate under that root (anyone that CA ever served) is not genuine here;
    once a unit imports its certificate, its signatures are."""
    fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    # another service's PKI (the session's) stands in for an outside CA
    outside = DocumentEngine(settings, pki=pki, converter=converter, archive=LocalArchive(tmp_path / "outside"))
    theirs = outside.issue(IssueRequest("enrollment_notice", fields))
    outside.close()

    ours = Pki(tmp_path / "certs", PASSPHRASE, settings.pki_organization, settings.public_base_url)
    ours.init()
    (tmp_path / "certs" / "trust").mkdir()
    (tmp_path / "certs" / "trust" / "outside.crt").write_bytes(
        pki.root_certificate().public_bytes(serialization.Encoding.PEM)
    )
    engine = DocumentEngine(
        settings.model_copy(update={"certs_dir": tmp_path / "certs"}),
        pki=ours,
        converter=converter,
        archive=LocalArchive(tmp_path / "archive"),
    )

    def problems(pdf: bytes) -> dict[str, list[str]]:
        return {s.field_name: [p.code for p in s.problems] for s in engine.verify(pdf).signatures}

    assert problems(theirs.pdf)["Issuer"] == ["CERTIFICATE_NOT_FOR_THIS_SIGNER"]
    # the unit imports its own certificate (with its chain) from that CA: now it is vouched for
    unit = pki.units.get(theirs.issuer_key)
    p12 = pkcs12.serialize_key_and_certificates(
        b"unit",
        unit.private_key,  # type: ignore[arg-type]
        unit.certificate,
        unit.chain,
        serialization.BestAvailableEncryption(b"pw"),
    )
    ours.import_pkcs12("school-own", p12, "pw")
    assert problems(theirs.pdf)["Issuer"] == []
    assert engine.verify(theirs.pdf).genuine
    # the service's own documents are judged as before
    assert engine.verify(engine.issue(IssueRequest("enrollment_notice", fields)).pdf).genuine
    engine.close()
