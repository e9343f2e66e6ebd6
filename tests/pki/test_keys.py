"""The file key store on its own: a key comes back as it went in, only with the passphrase, from
the file its name gives, readable by OpenSSL as the encrypted PKCS#8 an operator may back up."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.pki.errors import PkiNotInitialized, PkiPassphraseWrong
from service.pki.keys import FileKeyStore, KeyStore, Protection

PASSPHRASE = "a-passphrase-of-the-bureau"


def public_der(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_key_comes_back_from_the_file_its_name_gives(tmp_path: Path) -> None:
    store: KeyStore = FileKeyStore(tmp_path / "certs", PASSPHRASE)
    rsa_key = rsa.generate_private_key(65537, 2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())  # an imported PKCS#12 may hold one
    assert not store.exists("units/bureau/key.pem")
    store.save("units/bureau/key.pem", rsa_key)
    store.save("units/school-ec/key.pem", ec_key)
    assert store.exists("units/bureau/key.pem")
    # another store over the same folder (another process) reads them
    again = FileKeyStore(tmp_path / "certs", PASSPHRASE)
    assert public_der(again.load("units/bureau/key.pem")) == public_der(rsa_key)
    assert public_der(again.load("units/school-ec/key.pem")) == public_der(ec_key)
    path = tmp_path / "certs" / "units" / "bureau" / "key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # saving again replaces the key, whole
    other = rsa.generate_private_key(65537, 2048)
    store.save("units/bureau/key.pem", other)
    assert public_der(again.load("units/bureau/key.pem")) == public_der(other)
    assert [p.name for p in path.parent.iterdir()] == ["key.pem"]


def test_openssl_reads_what_the_store_writes_and_the_store_what_openssl_writes(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "certs", PASSPHRASE)
    key = rsa.generate_private_key(65537, 2048)
    store.save("root/ca.key", key)
    opened = subprocess.run(
        [
            "openssl",
            "pkey",
            "-in",
            str(tmp_path / "certs" / "root" / "ca.key"),
            "-passin",
            f"pass:{PASSPHRASE}",
            "-pubout",
            "-outform",
            "DER",
        ],
        capture_output=True,
        check=True,
    )
    assert opened.stdout == public_der(key)
    made = tmp_path / "certs" / "tsa" / "tsa.key"
    made.parent.mkdir(parents=True)
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-aes-256-cbc",
            "-pass",
            f"pass:{PASSPHRASE}",
            "-out",
            str(made),
        ],
        capture_output=True,
        check=True,
    )
    assert isinstance(store.load("tsa/tsa.key"), rsa.RSAPrivateKey)


def test_a_wrong_passphrase_or_a_missing_key_says_what_to_do(tmp_path: Path) -> None:
    FileKeyStore(tmp_path / "certs", PASSPHRASE).save("issuing/ca.key", rsa.generate_private_key(65537, 2048))
    with pytest.raises(PkiPassphraseWrong) as wrong:
        FileKeyStore(tmp_path / "certs", "not-the-passphrase").load("issuing/ca.key")
    assert "DOCSIGN_PKI_PASSPHRASE" in wrong.value.message
    with pytest.raises(PkiNotInitialized) as missing:
        FileKeyStore(tmp_path / "certs", PASSPHRASE).load("root/ca.key")
    assert "docsign init" in missing.value.message


@pytest.mark.parametrize("name", ["", "/etc/ssl/private/x.key", "../outside.key", "units/../../outside.key"])
def test_a_name_never_leads_outside_certs(tmp_path: Path, name: str) -> None:
    store = FileKeyStore(tmp_path / "certs", PASSPHRASE)
    with pytest.raises(ValueError):
        store.save(name, rsa.generate_private_key(65537, 2048))
    with pytest.raises(ValueError):
        store.load(name)
    assert not (tmp_path / "outside.key").exists()


def _asn1parse(path: Path) -> str:
    """OpenSSL's own reading of a key file's envelope."""
    return subprocess.run(["openssl", "asn1parse", "-in", str(path)], capture_output=True, text=True, check=True).stdout


def test_a_key_file_takes_600000_rounds_of_pbkdf2_sha256_to_open(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "certs", PASSPHRASE)
    store.save("issuing/ca.key", rsa.generate_private_key(65537, 2048))
    parsed = _asn1parse(tmp_path / "certs" / "issuing" / "ca.key")
    assert ":PBES2" in parsed and ":PBKDF2" in parsed and ":hmacWithSHA256" in parsed and ":aes-256-cbc" in parsed
    assert f"INTEGER           :{600_000:06X}" in parsed
    assert store.protection("issuing/ca.key") == Protection("PBKDF2-HMAC-SHA-256 600,000 次", 600_000)


def _old_way(path: Path, key: object) -> None:
    """A key file as versions before issue 24 wrote it: OpenSSL's PKCS#8 default, 2,048 rounds."""
    assert isinstance(key, rsa.RSAPrivateKey)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE.encode()),
        )
    )


def test_a_key_written_the_old_way_is_rewrapped_once_with_the_same_key(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "certs", PASSPHRASE)
    key = rsa.generate_private_key(65537, 2048)
    store.save("units/bureau/key.pem", key)
    store.path("tsa/tsa.key").parent.mkdir(parents=True)
    _old_way(store.path("tsa/tsa.key"), key)
    assert store.protection("tsa/tsa.key").rounds == 2048
    assert store.rewrap_due()
    assert store.rewrap() == ["tsa/tsa.key"]
    assert store.protection("tsa/tsa.key").rounds == 600_000 and "INTEGER           :0927C0" in _asn1parse(
        store.path("tsa/tsa.key")
    )
    assert public_der(store.load("tsa/tsa.key")) == public_der(key)
    assert stat.S_IMODE(store.path("tsa/tsa.key").stat().st_mode) == 0o600
    assert not store.rewrap_due() and store.rewrap() == []
