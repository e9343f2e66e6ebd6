"""The issuing CA's key in a PKCS#11 token (SoftHSM2, a token of each test's own): made there by a
new PKI and by a rollover, signing certificates and CRLs there (checked by ``cryptography`` and by
``openssl verify``); and pyHanko's own PKCS#11 signer for a unit key in the token in the reference
engine, its notices judged by pyHanko, Bouncy Castle, OpenSSL and the DER check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, ObjectClass
from pydantic import SecretStr

from service.documents.engines import PyHankoEngine, TokenSigner
from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.pki.certificates import BACKDATE
from service.pki.errors import TokenNotConfigured
from service.pki.store import Pki
from service.pki.token import TokenKey, TokenSettings
from service.settings import Settings
from service.storage.local import LocalArchive
from tests.conftest import PASSPHRASE, TEST_KDF_ROUNDS
from tests.validators import all_validators

IN_TOKEN = "PKCS#11 令牌「docsign-test」（私钥不出令牌）"


def make(tmp_path: Path, token: TokenSettings | None, *, ca_in_token: bool = True) -> Pki:
    return Pki(
        tmp_path / "certs",
        PASSPHRASE,
        "测试证书中心",
        "https://x.cn",
        kdf_rounds=TEST_KDF_ROUNDS,
        token=token,
        ca_in_token=ca_in_token,
    )


def token_key_ids(token: TokenSettings) -> set[bytes]:
    """The ids of the private keys a second program sees in the token."""
    opened = pkcs11.lib(token.module).get_token(token_label=token.label)
    try:
        session = opened.open(user_pin=token.pin)
    except pkcs11.UserAlreadyLoggedIn:  # this process's PKI holds a logged-in session
        session = opened.open()
    return {k[Attribute.ID] for k in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})}


def pem(path: Path, *items: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(b"".join(i.public_bytes(serialization.Encoding.PEM) for i in items))
    return path


def openssl_verify(
    work: Path,
    root: x509.Certificate,
    issuing: x509.Certificate,
    leaf: x509.Certificate,
    crl: x509.CertificateRevocationList,
) -> subprocess.CompletedProcess[str]:
    """``openssl verify`` of ``leaf`` under ``issuing`` and ``root``, checking ``crl`` (whose
    signature OpenSSL checks against the issuing CA's key) for it."""
    work.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(pem(work / "root.pem", root)),
            "-untrusted",
            str(pem(work / "issuing.pem", issuing)),
            "-crl_check",
            "-CRLfile",
            str(pem(work / "crl.pem", crl)),
            str(pem(work / "leaf.pem", leaf)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_new_pki_makes_its_issuing_ca_key_in_the_token_and_signs_certificates_and_crls_there(
    tmp_path: Path, softhsm: TokenSettings
) -> None:
    pki = make(tmp_path, softhsm)
    pki.init()
    issuing_dir = tmp_path / "certs" / "issuing"
    assert (issuing_dir / "ca.token").exists() and not (issuing_dir / "ca.key").exists()
    root, issuing = pki.root_certificate(), pki.issuing_certificate()
    record = json.loads((issuing_dir / "ca.token").read_text())
    assert record["label"] == "docsign-test" and record["serial"] == str(issuing.serial_number)
    assert token_key_ids(softhsm) == {bytes.fromhex(record["id"])}  # the issuing CA's key only
    _, key = pki.authority.current()
    assert isinstance(key, TokenKey) and key.key_id.hex() == record["id"]
    issuing.verify_directly_issued_by(root)

    # what the token's key signed: the TSA's certificate, a unit's, the CRL
    tsa_cert, _ = pki.tsa()
    tsa_cert.verify_directly_issued_by(issuing)
    unit = pki.issue_unit("bureau", "历城区教育和体育局").certificate
    unit.verify_directly_issued_by(issuing)
    aki = unit.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    revoked = pki.issue_unit("school", "实验中学").certificate
    pki.revoke_unit("school", "key_compromise")
    crl = pki.crl("issuing")
    assert crl is not None and crl.issuer == issuing.subject
    assert crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(revoked.serial_number) is not None
    good = openssl_verify(tmp_path / "ossl-good", root, issuing, unit, crl)
    assert good.returncode == 0 and "OK" in good.stdout, good.stdout + good.stderr
    bad = openssl_verify(tmp_path / "ossl-bad", root, issuing, revoked, crl)
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    # the root's CRL is signed by the root's key, a file
    root_crl = pki.crl("root")
    assert root_crl is not None and root_crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]

    # status says where the keys are; another process finds the CA's key through the record
    where = {i.kind: i.key_location for i in pki.status().items if i.kind in ("root", "issuing")}
    assert where["issuing"] == IN_TOKEN and where["root"].startswith("文件")
    again = make(tmp_path, softhsm, ca_in_token=False)
    assert isinstance(again.authority.current()[1], TokenKey)
    again.issue_unit("office", "办公室").certificate.verify_directly_issued_by(issuing)
    # without a token configured nothing can be issued, and it says so
    with pytest.raises(TokenNotConfigured) as missing:
        make(tmp_path, None, ca_in_token=False).issue_unit("office2", "办公室二")
    assert "DOCSIGN_PKCS11_MODULE" in missing.value.message


def test_a_rollover_moves_the_issuing_ca_key_into_the_token_and_the_retired_ones_keep_signing_their_crls(
    tmp_path: Path, softhsm: TokenSettings
) -> None:
    files = make(tmp_path, softhsm, ca_in_token=False)
    files.init()
    first_unit = files.issue_unit("bureau", "历城区教育和体育局").certificate
    issuing_dir = tmp_path / "certs" / "issuing"
    assert (issuing_dir / "ca.key").exists() and not (issuing_dir / "ca.token").exists()
    assert token_key_ids(softhsm) == set()

    pki = make(tmp_path, softhsm)
    rolled = pki.rollover_issuing(force=True)
    assert rolled is not None and rolled.new_name == "issuing-2"
    assert (issuing_dir / "ca.token").exists() and not (issuing_dir / "ca.key").exists()
    assert (issuing_dir / "retired" / "issuing" / "ca.key").exists()  # the old CA still signs its CRL
    root, second = pki.root_certificate(), pki.issuing_certificate()
    second.verify_directly_issued_by(root)
    [second_id] = token_key_ids(softhsm)
    crl2 = pki.crl("issuing-2")
    assert crl2 is not None and crl2.is_signature_valid(second.public_key())  # type: ignore[arg-type]
    # renewed at the very second the first was made (as a fast run does): the new certificate ends
    # when the old one does, and is still made, since it moves the unit to the new issuing CA
    made_at = first_unit.not_valid_before_utc + BACKDATE
    unit = pki.renew_unit("bureau", now=made_at).new_serial
    renewed = pki.unit("bureau").certificate
    assert renewed.serial_number == unit
    renewed.verify_directly_issued_by(second)
    ok = openssl_verify(tmp_path / "ossl", root, second, renewed, crl2)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    first_crl = pki.crl("issuing")  # re-signed by the retired CA's file key
    first = pki.authority.ca_certificate("issuing")
    assert first_crl is not None and first_crl.is_signature_valid(first.public_key())  # type: ignore[arg-type]
    first_unit.verify_directly_issued_by(first)

    # a second rollover: the retired CA's key stays in the token, named by its record
    assert pki.rollover_issuing(force=True) is not None
    retired = issuing_dir / "retired" / "issuing-2"
    assert (retired / "ca.token").exists() and not (retired / "ca.key").exists()
    assert json.loads((retired / "ca.token").read_text())["id"] == second_id.hex()
    ids = token_key_ids(softhsm)
    assert len(ids) == 2 and second_id in ids
    third = pki.issuing_certificate()
    assert isinstance(pki.authority.ca("issuing-2")[1], TokenKey)
    pki.revoke_unit("bureau")  # listed by the CA that issued it: issuing-2, whose key is in the token
    crl2 = pki.crl("issuing-2")
    assert crl2 is not None and crl2.get_revoked_certificate_by_serial_number(renewed.serial_number) is not None
    assert crl2.is_signature_valid(second.public_key())  # type: ignore[arg-type]
    crl3 = pki.crl("issuing-3")
    assert crl3 is not None and crl3.is_signature_valid(third.public_key())  # type: ignore[arg-type]

    where = {(i.kind, i.key): i.key_location for i in pki.status().items if i.kind == "issuing"}
    assert where[("issuing", None)] == IN_TOKEN  # the current one
    assert where[("issuing", "issuing-2")] == IN_TOKEN
    assert where[("issuing", "issuing")].startswith("文件")


def test_the_reference_engine_signs_notices_with_pyhankos_pkcs11_signer_under_a_ca_in_the_token(
    tmp_path: Path, settings: Settings, converter: object, softhsm: TokenSettings
) -> None:
    mine = settings.model_copy(
        update={
            "certs_dir": tmp_path / "certs",
            "pkcs11_module": softhsm.module,
            "pkcs11_token": softhsm.label,
            "pkcs11_pin": SecretStr(softhsm.pin),
            "pkcs11_ca": True,
            "pkcs11_tsa": True,
            "signing_engine": "pyhanko",
            "sign_workers": 0,
        }
    )
    pki = Pki.from_settings(mine)
    pki.init()
    assert isinstance(pki.authority.current()[1], TokenKey) and isinstance(pki.tsa()[1], TokenKey)
    fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    issuer = str(fields[KINDS["enrollment_notice"].issuer.name_field])
    creds = pki.issue_unit("bureau-token", issuer, in_token=True)
    assert creds.in_token and len(token_key_ids(softhsm)) == 3  # the CA's, the TSA's, the unit's
    engine = DocumentEngine(mine, pki=pki, converter=converter, archive=LocalArchive(tmp_path / "archive"))  # type: ignore[arg-type]
    try:
        assert isinstance(engine.signing, PyHankoEngine)
        assert isinstance(engine.signing.signer("bureau-token"), TokenSigner)  # pyHanko's PKCS#11 signer
        requests = [
            IssueRequest("enrollment_notice", {**fields, "guardian_name": f"家长{i}"}, issuer_key="bureau-token")
            for i in range(2)
        ]
        docs = engine.issue_many(requests)
        assert len(docs) == 2
        for doc in docs:
            assert engine.verify(doc.pdf).genuine  # pyHanko
        # the independent judges on one of them (the DER check of a whole CMS takes a while)
        judged = all_validators(docs[-1].pdf, tmp_path / "judged", pki.trust_roots(), pki.issuing_certificates())
        assert judged == {"bouncy_castle": 2, "openssl": 2, "der": 2}
    finally:
        engine.close()
