"""The time-stamping authority's key and certificate, and their rollover. Files (under ``certs/``)::

    tsa/tsa.crt, tsa.key        the current TSA (RFC 3161 tokens), issued by the current issuing CA
    tsa/tsa.token               instead of tsa.key, when the TSA's key lives in the PKCS#11 token
                                (``DOCSIGN_PKCS11_TSA``): the token's label, the key's id, the
                                serial of the certificate it belongs to
    tsa/history/<serial>.crt    earlier TSA certificates, kept to check the tokens they signed

A TSA key signs for :data:`TSA_KEY_USE`, then a new key and certificate take over; the old key is
not kept.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from service.pki.authority import FIRST_ISSUING, Authority
from service.pki.certificates import CA_KEY_BITS, build, subject_name, useful_until, years
from service.pki.errors import TokenNotConfigured
from service.pki.files import READY, CertsFolder, Stamp, history, load_cert, save_cert, stamp, write_atomic
from service.pki.keys import KeyStore
from service.pki.token import Token, TokenKey

#: The TSA's certificate lives as long as the issuing CA lets it: the tokens a TSA key signed can be
#: checked for as long as its certificate is valid, so that should be long.
TSA_YEARS = 10
#: A TSA key signs tokens for three years, then a new key and certificate take over while the old
#: certificate, valid for years more, keeps the tokens it signed checkable. Public TSAs do the same
#: (RFC 3628, ETSI EN 319 421: a TSU key's usage period ends well before its certificate does), and a
#: key used for less time is a smaller loss if it leaks.
TSA_KEY_USE = dt.timedelta(days=3 * 365)
#: The TSA also rolls over when what it signs would stop protecting within this (its certificate
#: ends with its CA, or its key weakens): an archive timestamp must reach further than the one it renews.
TSA_MIN_REACH = dt.timedelta(days=2 * 365)
TSA_FILES = ("tsa.key", "tsa.token", "tsa.crt")


@dataclass(frozen=True)
class TsaRollover:
    """The TSA's new key and certificate; the old certificate stays in ``tsa/history/``."""

    old_serial: int
    new_serial: int
    expires: dt.datetime


class TimeStamping:
    """The TSA's key and certificate; thread-safe, and safe for several processes sharing ``certs/``."""

    def __init__(
        self,
        folder: CertsFolder,
        keys: KeyStore,
        authority: Authority,
        now: Callable[[], dt.datetime],
        token: Token | None = None,
        in_token: bool = False,
    ) -> None:
        self.folder = folder
        self.dir = folder.dir / "tsa"
        self.keys = keys
        self.token = token
        #: New TSA keys are made in the token (a new PKI's, and each rollover's).
        self.in_token = in_token
        self.authority = authority
        self._now = now
        self._cache: tuple[Stamp, x509.Certificate, PrivateKeyTypes] | None = None

    def create(self, issuing: x509.Certificate, issuing_key: CertificateIssuerPrivateKeyTypes, at: dt.datetime) -> None:
        """A new PKI's TSA, issued by its first issuing CA; under the lock."""
        tsa_key = self._new_key()
        cert = build(
            subject_name("时间戳服务", self.authority.organization, "时间戳"),
            tsa_key.public_key(),
            issuing,
            issuing_key,
            years(TSA_YEARS),
            at=at,
            ca=False,
            eku=[ExtendedKeyUsageOID.TIME_STAMPING],
            crl=self.authority.crl_url(FIRST_ISSUING),
        )
        self._save_key(self.dir, tsa_key, cert)
        save_cert(self.dir / "tsa.crt", cert)

    def _token(self) -> Token:
        if self.token is None:
            raise TokenNotConfigured()
        return self.token

    def _new_key(self) -> rsa.RSAPrivateKey:
        if self.in_token:
            return self._token().generate_rsa("docsign-tsa", CA_KEY_BITS)
        return rsa.generate_private_key(65537, CA_KEY_BITS)

    def _save_key(self, d: Path, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        """Keep the TSA's new key in ``d`` (the folder or its stage): a file, or the token's record."""
        if isinstance(key, TokenKey):
            record = {"label": key.token.label, "id": key.key_id.hex(), "serial": str(cert.serial_number)}
            write_atomic(d / "tsa.token", json.dumps(record).encode())
        else:
            self.keys.save(self.folder.name(d / "tsa.key"), key)

    def _token_record(self, cert: x509.Certificate) -> dict[str, str] | None:
        """The token's record of the key of ``cert``, if that key lives in the token."""
        try:
            record: dict[str, str] = json.loads((self.dir / "tsa.token").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return record if record.get("serial") == str(cert.serial_number) else None

    def key_location(self) -> str:
        """Where the current TSA key lives, in Chinese (``docsign pki status``)."""
        record = self._token_record(self.certificate())
        if record is not None:
            return f"PKCS#11 令牌「{record['label']}」（私钥不出令牌）"
        return self.keys.where(self.folder.name(self.dir / "tsa.key"))

    def current(self) -> tuple[x509.Certificate, PrivateKeyTypes]:
        """The current TSA certificate and key; reloaded when another process has rolled them over."""
        seen = stamp(self.dir / "tsa.crt")
        with self.folder.lock:
            cached = self._cache
        if cached is not None and seen is not None and cached[0] == seen:
            return cached[1], cached[2]
        self.authority.require()
        with self.folder.locked():
            return self._load()

    def _load(self) -> tuple[x509.Certificate, PrivateKeyTypes]:
        """Read the TSA's files; under the lock, so never halfway through a rollover."""
        self.folder.commit(self.dir, TSA_FILES, "tsa.crt")
        cert = load_cert(self.dir / "tsa.crt")
        record = self._token_record(cert)
        if record is not None:
            public = cert.public_key()
            assert isinstance(public, rsa.RSAPublicKey)
            key: PrivateKeyTypes = self._token().key(bytes.fromhex(record["id"]), public)
        else:
            key = self.keys.load(self.folder.name(self.dir / "tsa.key"))
        seen = stamp(self.dir / "tsa.crt")
        assert seen is not None
        self._cache = (seen, cert, key)
        return cert, key

    def certificate(self) -> x509.Certificate:
        """The current TSA certificate as written (a rollover a crash interrupted left unfinished)."""
        return load_cert(self.dir / "tsa.crt")

    def certificates(self) -> list[x509.Certificate]:
        """Every TSA certificate this PKI has used, oldest first; the last is the current one."""
        self.authority.require()
        return history(self.dir, self.dir / "tsa.crt")

    def reach(self, cert: x509.Certificate) -> dt.datetime:
        """Until when tokens signed with ``cert``'s key stay provable: its useful life, or its CAs'."""
        return min(useful_until(cert), *(useful_until(c) for c in self.authority.chain_for(cert)))

    def renews_from(self, cert: x509.Certificate) -> dt.datetime:
        """When :meth:`rollover` replaces ``cert`` unless the issuing CA is replaced first."""
        return min(cert.not_valid_before_utc + TSA_KEY_USE, self.reach(cert) - TSA_MIN_REACH)

    def rollover(
        self,
        key_use: dt.timedelta = TSA_KEY_USE,
        *,
        now: dt.datetime | None = None,
        min_reach: dt.timedelta = TSA_MIN_REACH,
        force: bool = False,
    ) -> TsaRollover | None:
        """Give the TSA a new key and certificate once its key has signed for ``key_use``, or when
        what it signs would stop protecting within ``min_reach`` (its certificate ends with its CA,
        or its key weakens) while the current issuing CA can give it longer; None when not due.
        New tokens use the new key; the old certificate, still valid, moves to ``tsa/history/`` and
        stays in every document whose token it signed. The new certificate ends with the issuing CA
        at the latest (see :func:`service.pki.certificates.build`); when that CA has expired this
        raises :class:`IssuingCaExpiring`."""
        self.authority.require()
        at = now or self._now()
        with self.folder.locked():
            current, current_key = self._load()
            issuing, issuing_key = self.authority.current()
            reach = self.reach(current)
            short = reach - at <= min_reach and useful_until(issuing) > reach
            if not force and not short and at - current.not_valid_before_utc < key_use:
                return None
            new_key = self._new_key()
            cert = build(
                current.subject,
                new_key.public_key(),
                issuing,
                issuing_key,
                years(TSA_YEARS),
                at=at,
                ca=False,
                eku=[ExtendedKeyUsageOID.TIME_STAMPING],
                crl=self.authority.crl_url(self.authority.issuing_name()),
            )
            stage = self.folder.stage(self.dir)
            self._save_key(stage, new_key, cert)
            save_cert(stage / "tsa.crt", cert)
            write_atomic(stage / READY, b"")
            self.folder.commit(self.dir, TSA_FILES, "tsa.crt")
            # the old key is not kept: a file the new key does not replace, a key in the token
            (self.dir / ("tsa.key" if isinstance(new_key, TokenKey) else "tsa.token")).unlink(missing_ok=True)
            if isinstance(current_key, TokenKey):
                current_key.token.destroy(current_key.key_id)
            self._cache = None
        return TsaRollover(current.serial_number, cert.serial_number, cert.not_valid_after_utc)
