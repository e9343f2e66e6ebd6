"""Unit keys in a PKCS#11 token (SoftHSM2, a token of each test's own): generated there or imported,
never readable out of it, signing there; a batch of notices signed by a token key, judged by pyHanko,
Bouncy Castle, OpenSSL and the DER check."""

from __future__ import annotations

from pathlib import Path

import pkcs11
import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from pkcs11 import Attribute, ObjectClass
from pydantic import SecretStr

from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.pki.errors import IssuingCaExpiring, TokenKeyNotExportable, TokenNotConfigured
from service.pki.store import Pki
from service.pki.token import TokenKey, TokenSettings
from service.settings import Settings
from service.storage.local import LocalArchive
from tests.conftest import PASSPHRASE
from tests.pki.test_store import _p12
from tests.validators import all_validators, signatures


def make(tmp_path: Path, token: TokenSettings | None) -> Pki:
    return Pki(tmp_path / "certs", PASSPHRASE, "测试证书中心", "https://x.cn", token=token)


def token_private_keys(token: TokenSettings) -> list[pkcs11.PrivateKey]:
    """What a second program sees in the token."""
    opened = pkcs11.lib(token.module).get_token(token_label=token.label)
    try:
        session = opened.open(user_pin=token.pin)
    except pkcs11.UserAlreadyLoggedIn:  # this process's PKI holds a logged-in session
        session = opened.open()
    return list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))


def public_der(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPublicKey)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_unit_key_made_in_the_token_signs_there_and_never_leaves_it(tmp_path: Path, softhsm: TokenSettings) -> None:
    pki = make(tmp_path, softhsm)
    pki.init()
    creds = pki.issue_unit("bureau", "历城区教育和体育局", in_token=True)
    assert creds.in_token and isinstance(creds.private_key, TokenKey)
    assert not (tmp_path / "certs" / "units" / "bureau" / "key.pem").exists()
    # the local issuing CA certified the token's key
    assert creds.certificate.issuer == pki.issuing_certificate().subject
    assert public_der(creds.certificate.public_key()) == public_der(creds.private_key.public_key())
    [in_token] = token_private_keys(softhsm)
    assert in_token[Attribute.SENSITIVE] and not in_token[Attribute.EXTRACTABLE]
    first_id = in_token[Attribute.ID]
    with pytest.raises(pkcs11.AttributeSensitive):
        in_token[Attribute.PRIVATE_EXPONENT]
    with pytest.raises(TokenKeyNotExportable):
        creds.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    # another process finds it through the unit's record and signs with it
    again = make(tmp_path, softhsm).unit("bureau")
    signature = again.private_key.sign(b"content", PKCS1v15(), hashes.SHA256())
    public = creds.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"content", PKCS1v15(), hashes.SHA256())
    status = {i.key: i.key_location for i in pki.status().items if i.kind == "unit"}
    assert status["bureau"] == "PKCS#11 令牌「docsign-test」（私钥不出令牌）"
    # a renewal makes the new key in the token and removes the old one
    import datetime as dt

    refused_at = creds.certificate.not_valid_before_utc  # a new certificate would not outlast the old
    with pytest.raises(IssuingCaExpiring):
        pki.renew_unit("bureau", now=refused_at)
    assert len(token_private_keys(softhsm)) == 1  # the key made for it is not left behind
    renewed = pki.renew_unit("bureau", now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    [after] = token_private_keys(softhsm)
    assert after[Attribute.ID] != first_id
    assert pki.unit("bureau").certificate.serial_number == renewed.new_serial and pki.unit("bureau").in_token
    # without a token configured the unit cannot sign, and says so
    with pytest.raises(TokenNotConfigured) as missing:
        make(tmp_path, None).unit("bureau")
    assert "DOCSIGN_PKCS11_MODULE" in missing.value.message


def test_a_unit_key_from_a_pkcs12_is_imported_into_the_token(tmp_path: Path, softhsm: TokenSettings) -> None:
    pki = make(tmp_path, softhsm)
    pki.init()
    creds = pki.import_pkcs12("school-shiyan", _p12(b"p12pass"), "p12pass", to_token=True)
    assert creds.in_token and not (tmp_path / "certs" / "units" / "school-shiyan" / "key.pem").exists()
    [in_token] = token_private_keys(softhsm)
    assert not in_token[Attribute.EXTRACTABLE]
    public = creds.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(creds.private_key.sign(b"x", PKCS1v15(), hashes.SHA256()), b"x", PKCS1v15(), hashes.SHA256())


def test_a_batch_of_notices_signed_by_a_token_key_in_worker_processes_verifies(
    tmp_path: Path, settings: Settings, converter: object, softhsm: TokenSettings
) -> None:
    mine = settings.model_copy(
        update={
            "certs_dir": tmp_path / "certs",
            "pkcs11_module": softhsm.module,
            "pkcs11_token": softhsm.label,
            "pkcs11_pin": SecretStr(softhsm.pin),
            "sign_workers": 2,
            "sign_pool_threshold": 2,  # the workers open the token themselves
        }
    )
    pki = Pki.from_settings(mine)
    pki.init()
    fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    issuer = str(fields[KINDS["enrollment_notice"].issuer.name_field])
    creds = pki.issue_unit("bureau-token", issuer, in_token=True)
    engine = DocumentEngine(mine, pki=pki, converter=converter, archive=LocalArchive(tmp_path / "archive"))  # type: ignore[arg-type]
    try:
        requests = [
            IssueRequest("enrollment_notice", {**fields, "guardian_name": f"家长{i}"}, issuer_key="bureau-token")
            for i in range(4)
        ]
        docs = engine.issue_many(requests)
        assert len(docs) == 4
        for i, doc in enumerate(docs):
            assert engine.verify(doc.pdf).genuine  # pyHanko
            if i not in (0, len(docs) - 1):
                continue  # the independent judges on two of them (each from its own worker)
            [signed] = signatures(doc.pdf)
            content = cms.ContentInfo.load(signed.cms)["content"]
            [info] = content["signer_infos"]
            serial = info["sid"].chosen["serial_number"].native
            assert serial == creds.certificate.serial_number  # the unit's certificate for the token key
            # the signature over the signed attributes checks with the token key's public half
            attrs = info["signed_attrs"].untag().dump()
            public = creds.certificate.public_key()
            assert isinstance(public, rsa.RSAPublicKey)
            public.verify(info["signature"].native, attrs, PKCS1v15(), hashes.SHA256())
            judged = all_validators(doc.pdf, tmp_path / f"doc{i}", pki.trust_roots(), pki.issuing_certificates())
            assert judged == {"bouncy_castle": 2, "openssl": 2, "der": 2}
    finally:
        engine.close()
    assert not (tmp_path / "certs" / "units" / "bureau-token" / "key.pem").exists()
    assert x509.load_pem_x509_certificate((tmp_path / "certs" / "units" / "bureau-token" / "cert.crt").read_bytes())


def test_the_tsa_key_moves_into_the_token_at_its_rollover_and_timestamps_notices_there(
    tmp_path: Path, settings: Settings, converter: object, softhsm: TokenSettings
) -> None:
    plain = make(tmp_path, softhsm)
    plain.init()
    tsa = tmp_path / "certs" / "tsa"
    assert (tsa / "tsa.key").exists() and not (tsa / "tsa.token").exists()
    mine = settings.model_copy(
        update={
            "certs_dir": tmp_path / "certs",
            "pkcs11_module": softhsm.module,
            "pkcs11_token": softhsm.label,
            "pkcs11_pin": SecretStr(softhsm.pin),
            "pkcs11_tsa": True,
            "sign_workers": 0,
        }
    )
    pki = Pki.from_settings(mine)
    assert pki.rollover_tsa(force=True) is not None
    assert (tsa / "tsa.token").exists() and not (tsa / "tsa.key").exists()
    tsa_cert, tsa_key = pki.tsa()
    assert isinstance(tsa_key, TokenKey)
    assert public_der(tsa_cert.public_key()) == public_der(tsa_key.public_key())
    assert next(i for i in pki.status().items if i.kind == "tsa").key_location.startswith(
        "PKCS#11 令牌「docsign-test」"
    )
    [first] = token_private_keys(softhsm)
    first_id = first[Attribute.ID]

    engine = DocumentEngine(mine, pki=pki, converter=converter, archive=LocalArchive(tmp_path / "archive"))  # type: ignore[arg-type]
    try:
        fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
        doc = engine.issue(IssueRequest("enrollment_notice", fields))
        assert engine.verify(doc.pdf).genuine
        # Bouncy Castle validates the timestamp token against the TSA certificate of the token key
        judged = all_validators(doc.pdf, tmp_path / "judged", pki.trust_roots(), pki.issuing_certificates())
        assert judged == {"bouncy_castle": 2, "openssl": 2, "der": 2}
    finally:
        engine.close()
    # the next rollover makes the new key in the token and removes the old one
    assert pki.rollover_tsa(force=True) is not None
    [second] = token_private_keys(softhsm)
    assert second[Attribute.ID] != first_id and isinstance(make(tmp_path, softhsm).tsa()[1], TokenKey)
