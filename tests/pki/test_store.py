from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from service.pki.errors import (
    CertificateRevoked,
    Pkcs12Invalid,
    PkiNotInitialized,
    PkiPassphraseWrong,
    RootKeyInvalid,
    RootKeyOffline,
    UnitKeyInvalid,
    UnitNameMismatch,
)
from service.pki.store import Pki
from tests.conftest import TEST_KDF_ROUNDS


def make(tmp_path: Path, passphrase: str = "secret") -> Pki:
    return Pki(tmp_path / "certs", passphrase, "测试证书中心", "https://x.cn", kdf_rounds=TEST_KDF_ROUNDS)


def test_init_creates_the_chain_once(tmp_path: Path) -> None:
    pki = make(tmp_path)
    first = pki.init()
    assert first.created
    again = make(tmp_path).init()
    assert not again.created and again.root_fingerprint == first.root_fingerprint
    root, issuing = pki.root_certificate(), pki.issuing_certificate()
    assert issuing.issuer == root.subject
    tsa_cert, _ = pki.tsa()
    eku = tsa_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and ExtendedKeyUsageOID.TIME_STAMPING in eku.value
    for key in ("root/ca.key", "issuing/ca.key", "tsa/tsa.key"):
        path = tmp_path / "certs" / key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert len(pki.crls()) == 2


def test_wrong_passphrase_and_missing_pki(tmp_path: Path) -> None:
    with pytest.raises(PkiNotInitialized):
        make(tmp_path).unit("bureau")
    make(tmp_path).init()
    with pytest.raises(PkiPassphraseWrong) as exc:
        make(tmp_path, "wrong").issue_unit("bureau", "某局")
    assert "口令" in exc.value.message


def test_unit_certificates(tmp_path: Path) -> None:
    pki = make(tmp_path)
    pki.init()
    creds = pki.issue_unit("office-1", "历城区王舍人街道教育办公室")
    cn = creds.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "历城区王舍人街道教育办公室"
    assert creds.certificate.issuer == pki.issuing_certificate().subject
    assert pki.ensure_unit("office-1", "历城区王舍人街道教育办公室").certificate == creds.certificate
    with pytest.raises(UnitNameMismatch):
        pki.ensure_unit("office-1", "别的单位")
    with pytest.raises(UnitKeyInvalid):
        pki.issue_unit("../etc", "x")
    serial = pki.revoke_unit("office-1")
    with pytest.raises(CertificateRevoked):
        make(tmp_path).unit("office-1")
    revoked = next(c for c in pki.crls() if c.issuer == pki.issuing_certificate().subject)
    assert revoked.get_revoked_certificate_by_serial_number(int(serial)) is not None


def _p12(password: bytes) -> bytes:
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "历城区实验小学")])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return pkcs12.serialize_key_and_certificates(
        b"unit", key, cert, None, serialization.BestAvailableEncryption(password)
    )


def test_import_pkcs12(tmp_path: Path) -> None:
    pki = make(tmp_path)
    pki.init()
    creds = pki.import_pkcs12("school-shiyan", _p12(b"p12pass"), "p12pass")
    assert creds.name == "历城区实验小学"
    assert os.path.exists(tmp_path / "certs" / "units" / "school-shiyan" / "key.pem")
    with pytest.raises(Pkcs12Invalid):
        pki.import_pkcs12("school-x", _p12(b"p12pass"), "wrong")
    with pytest.raises(Pkcs12Invalid):
        pki.import_pkcs12("school-y", b"garbage", None)


def test_with_the_root_key_offline_everything_but_a_rollover_and_the_root_crl_goes_on(tmp_path: Path) -> None:
    import datetime as dt

    pki = make(tmp_path)
    pki.init()
    exported = tmp_path / "safe" / "root.key"
    exported.parent.mkdir()
    pki.export_root_key(exported, "kept-in-the-safe")
    assert not (tmp_path / "certs" / "root" / "ca.key").exists()
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    with pytest.raises(RootKeyOffline):
        pki.export_root_key(tmp_path / "again.key", "kept-in-the-safe")
    root_crl = pki.crl("root")
    assert root_crl is not None and root_crl.next_update_utc is not None
    assert root_crl.next_update_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=364)  # re-signed at export

    # another process: issues, revokes (the issuing CA's CRL), timestamps, all without the root key
    service = make(tmp_path)
    creds = service.issue_unit("school-1", "历城区实验小学")
    serial = service.revoke_unit("school-1")
    issuing_crl = service.crl("issuing")
    assert issuing_crl is not None and issuing_crl.get_revoked_certificate_by_serial_number(int(serial)) is not None
    assert service.tsa()[0].issuer == service.issuing_certificate().subject
    assert creds.certificate.issuer == service.issuing_certificate().subject
    assert "离线" in next(i.key_location for i in service.status().items if i.kind == "root")

    with pytest.raises(RootKeyOffline) as offline:
        service.rollover_issuing(force=True)
    assert offline.value.code == "ROOT_KEY_OFFLINE" and "--root-key" in offline.value.message
    # the daily upkeep, years later: the rollover due and the root's CRL are left to a person
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8 * 365)
    report = service.maintain(later)
    assert report.issuing is None
    rollover_due, root_crl_due = sorted(report.attention, key=lambda line: "吊销列表需要" in line)
    assert rollover_due.startswith("签发中心证书已到更换时间，未更换") and "--root-key" in rollover_due
    assert root_crl_due.startswith("根证书的吊销列表需要重新发布") and "docsign pki refresh --root-key" in root_crl_due
    assert all(c.which != "root" for c in report.crls)

    with pytest.raises(RootKeyInvalid):
        service.unlock_root(exported.read_bytes(), "not-the-passphrase")
    other = Pki(tmp_path / "other", "secret", "别的证书中心", "https://x.cn")
    other.init()
    other.export_root_key(tmp_path / "other.key", "kept-in-the-safe")
    with pytest.raises(RootKeyInvalid):
        service.unlock_root((tmp_path / "other.key").read_bytes(), "kept-in-the-safe")

    service.unlock_root(exported.read_bytes(), "kept-in-the-safe")
    handed = service.maintain(later)
    assert handed.issuing is not None and handed.issuing.new_name == "issuing-2"
    assert any(c.which == "root" for c in handed.crls) and not handed.attention
    assert not (tmp_path / "certs" / "root" / "ca.key").exists()
