"""The composition root's start: what every process does before it serves."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.clock import Clock
from service.container import Services
from service.settings import Settings
from tests.conftest import PASSPHRASE


def _public(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_key_files_of_an_older_version_are_rewrapped_at_the_next_start_and_audited(
    tmp_path: Path, settings: Settings
) -> None:
    # production's figure: the one a key file of an older version is brought up to
    mine = settings.model_copy(
        update={"data_dir": tmp_path / "var", "certs_dir": tmp_path / "certs", "pki_kdf_rounds": 600_000}
    )
    services = Services.build(mine, Clock())
    try:
        services.prepare()
        services.pki.issue_unit("bureau", "历城区教育和体育局")
        # what a version before issue 24 left: OpenSSL's PKCS#8 default of 2,048 PBKDF2 rounds
        old = {}
        for name in ("issuing/ca.key", "units/bureau/key.pem"):
            key = services.pki.files.load(name)
            assert isinstance(key, rsa.RSAPrivateKey)
            old[name] = _public(key)
            services.pki.files.path(name).write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(PASSPHRASE.encode()),
                )
            )
            assert services.pki.files.protection(name).rounds == 2048
    finally:
        services.close()

    restarted = Services.build(mine, Clock())
    try:
        restarted.prepare()
        for name, public in old.items():
            assert restarted.pki.files.protection(name).rounds == 600_000
            assert _public(restarted.pki.files.load(name)) == public
        with restarted.db.session() as session:
            events = session.scalars(select(AuditEvent).where(AuditEvent.action == "pki.rewrap")).all()
            assert sorted(e.object_id for e in events) == sorted(old)
            assert all("重新加密" in str(e.detail) for e in events)
        restarted.prepare()  # nothing left to re-wrap: no second entry
        with restarted.db.session() as session:
            assert len(session.scalars(select(AuditEvent).where(AuditEvent.action == "pki.rewrap")).all()) == 2
        # the unit still signs with its key
        assert _public(restarted.pki.unit("bureau").private_key) == old["units/bureau/key.pem"]
    finally:
        restarted.close()
