"""Revocations and CRLs with the CAs alone (no facade): what ``revoked.json`` holds, in either of
the forms it has been written in, is what the CRLs list, and a CRL is re-signed when it goes stale
or misses a revocation."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from service.pki.authority import Authority
from service.pki.crls import CRL_DAYS, REVOCATION_REASONS, Revocations
from service.pki.files import CertsFolder
from service.pki.keys import FileKeyStore

UTC = dt.UTC


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def new_pki(tmp_path: Path, clock: Clock) -> tuple[Authority, Revocations]:
    folder = CertsFolder(tmp_path / "certs")
    authority = Authority(folder, FileKeyStore(folder.dir, "secret"), "测试证书中心", "https://x.cn", clock)
    revocations = Revocations(folder, authority, clock)
    with folder.locked():
        authority.save(authority.make(clock()))
        revocations.create(clock())
    return authority, revocations


def openssl_verifies(crl: x509.CertificateRevocationList, authority: Authority, folder: Path) -> str:
    (folder / "crl.der").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    cas = b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in authority.chain_for(authority.issuing_certificate())
    )
    (folder / "cas.pem").write_bytes(cas)
    args = ["openssl", "crl", "-inform", "DER", "-in", str(folder / "crl.der"), "-CAfile", str(folder / "cas.pem")]
    done = subprocess.run([*args, "-noout"], capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def test_every_revocation_in_either_form_is_listed_with_its_reason(tmp_path: Path) -> None:
    clock = Clock(dt.datetime.now(UTC).replace(microsecond=0))
    authority, revocations = new_pki(tmp_path, clock)
    first = {c.issuer: c for c in revocations.current()}[authority.issuing_certificate().subject]
    assert list(first) == []
    # one line from before reasons were kept, one from after, as another version wrote them
    older = clock.at - dt.timedelta(days=2)
    compromised = clock.at - dt.timedelta(days=1)
    (tmp_path / "certs" / "revoked.json").write_text(
        json.dumps(
            {
                "1234": older.isoformat(),
                "5678": {"at": compromised.isoformat(), "reason": "key_compromise", "ca": "issuing"},
            }
        )
    )
    # the CRL misses them (a revocation a crash cut short): the daily refresh re-signs it, the root's stays
    published = revocations.refresh(now=clock.at)
    assert [p.which for p in published] == ["issuing"]
    crl = revocations.crl("issuing")
    assert crl is not None and crl.next_update_utc == published[0].next_update
    assert published[0].next_update - clock.at == dt.timedelta(days=CRL_DAYS)
    legacy, lost = (
        crl.get_revoked_certificate_by_serial_number(1234),
        crl.get_revoked_certificate_by_serial_number(5678),
    )
    assert legacy is not None and legacy.revocation_date_utc == older
    assert not [e for e in legacy.extensions if isinstance(e.value, x509.CRLReason)]  # "unspecified" is left out
    assert lost is not None and lost.revocation_date_utc == compromised
    assert (
        lost.extensions.get_extension_for_class(x509.CRLReason).value.reason == REVOCATION_REASONS["key_compromise"][0]
    )
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert "verify OK" in openssl_verifies(crl, authority, tmp_path)
    assert revocations.refresh(now=clock.at) == []  # nothing more is due


def test_a_stale_crl_is_re_signed_when_read_and_unknown_names_have_none(tmp_path: Path) -> None:
    clock = Clock(dt.datetime.now(UTC).replace(microsecond=0))
    authority, revocations = new_pki(tmp_path, clock)
    before = {c.issuer: c.last_update_utc for c in revocations.current()}
    clock.at += dt.timedelta(days=CRL_DAYS // 2 + 1)  # less than half the issuing CA's CRL is left
    after = {c.issuer: c.last_update_utc for c in revocations.current()}
    assert after[authority.root_certificate().subject] == before[authority.root_certificate().subject]
    assert after[authority.issuing_certificate().subject] > before[authority.issuing_certificate().subject]
    for name in ("issuing-2", "tsa", "../revoked", "units/bureau"):
        assert revocations.crl(name) is None
