"""The certificate authorities: the root, and the generations of issuing CAs under it that issue
every other certificate. Files (under ``certs/``)::

    root/ca.crt, ca.key                     the root CA (20 years); replaced only by a person. Its
                                            key may be exported and taken offline (no ca.key): it is
                                            then handed in for a rollover (:meth:`Authority.unlock_root`)
    issuing/ca.crt, ca.key, name            the current issuing CA (10 years) and the name of its CRL
    issuing/ca.token                        instead of ca.key, when the issuing CA's key lives in the
                                            PKCS#11 token (``DOCSIGN_PKCS11_CA``): the token's label,
                                            the key's id, the serial of the certificate it belongs to
    issuing/history/<serial>.crt            the certificates of the issuing CAs before it
    issuing/retired/<name>/ca.crt, ca.key   a replaced issuing CA: it issues nothing more, but signs
                                            its CRL until it expires (ca.token: its key in the token)
    trust/*.crt                             extra trusted roots (for imported PKCS#12 certificates)

The first issuing CA publishes ``issuing.crl``; each one after a rollover ``issuing-<n>.crl``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PrivateKeyTypes

from service.pki.certificates import CA_KEY_BITS, build, shown, subject_name, useful_until, years
from service.pki.errors import (
    IssuingCaExpiring,
    PkiNotInitialized,
    RootKeyInvalid,
    RootKeyOffline,
    TokenNotConfigured,
)
from service.pki.files import READY, STAGE, CertsFolder, Stamp, history, load_cert, save_cert, stamp, write_atomic
from service.pki.keys import KeyStore
from service.pki.token import Token, TokenKey

ROOT_YEARS, ISSUING_YEARS = 20, 10
#: A new issuing CA takes over when the current one's useful life (its expiry, or the day its key
#: weakens) is this close. The TSA's and units' certificates never outlive their CA, so a CA near its
#: end would leave archive timestamps nothing to reach for; three years leave a new TSA certificate
#: well past the one-year archive-timestamp margin.
ISSUING_ROLLOVER = dt.timedelta(days=3 * 365)

CA_LABELS = {"root": "根证书", "issuing": "签发中心证书"}
#: The first issuing CA publishes ``issuing.crl``; each one after it ``issuing-<n>.crl``.
FIRST_ISSUING = "issuing"
CA_NAME = re.compile(r"^(root|issuing(-[0-9]{1,4})?)$")
ISSUING_FILES = ("ca.key", "ca.token", "name", "ca.crt")
#: The label of an issuing CA's key in the token.
TOKEN_KEY_LABEL = "docsign-issuing-ca"


def ca_label(name: str) -> str:
    """根证书, 签发中心证书, or 第2代签发中心证书 for ``issuing-2``."""
    if name.startswith("issuing-"):
        return f"第{name.split('-', 1)[1]}代{CA_LABELS['issuing']}"
    return CA_LABELS[name]


@dataclass(frozen=True)
class IssuingRollover:
    """A new issuing CA; the one it replaces keeps publishing its CRL until it expires."""

    old_name: str
    new_name: str
    new_serial: int
    expires: dt.datetime


@dataclass(frozen=True)
class FirstAuthorities:
    """A new PKI's root and issuing CA, made by :meth:`Authority.make` and not yet saved."""

    root: x509.Certificate
    root_key: rsa.RSAPrivateKey
    issuing: x509.Certificate
    issuing_key: rsa.RSAPrivateKey


class Authority:
    """The root and the issuing CAs; thread-safe, and safe for several processes sharing ``certs/``."""

    def __init__(
        self,
        folder: CertsFolder,
        keys: KeyStore,
        organization: str,
        public_base_url: str,
        now: Callable[[], dt.datetime],
        token: Token | None = None,
        in_token: bool = False,
    ) -> None:
        self.folder = folder
        self.dir = folder.dir
        self.keys = keys
        self.token = token
        #: New issuing CA keys are made in the token (a new PKI's, and each rollover's); the root's
        #: never is.
        self.in_token = in_token
        self.organization = organization
        self.public_base_url = public_base_url.rstrip("/")
        self._now = now
        self._cache: dict[str, tuple[Stamp, x509.Certificate, CertificateIssuerPrivateKeyTypes]] = {}
        #: The root's key handed in from its offline file (kept in memory only, for this process).
        self._root_key: rsa.RSAPrivateKey | None = None

    @property
    def exists(self) -> bool:
        issuing = self.dir / "issuing"
        return (self.dir / "root" / "ca.crt").exists() and (
            self.keys.exists("issuing/ca.key") or (issuing / "ca.token").exists()
        )

    def require(self) -> None:
        if not self.exists:
            raise PkiNotInitialized(f"本地证书尚未创建（{self.dir}），请先运行 docsign init。")

    @property
    def root_offline(self) -> bool:
        """The root's key is not in ``certs/`` (exported with ``docsign init --export-root-key``)."""
        return not self.keys.exists("root/ca.key")

    @property
    def root_available(self) -> bool:
        """The root's key can sign here: in ``certs/``, or handed in by :meth:`unlock_root`."""
        return self._root_key is not None or not self.root_offline

    def export_root(self) -> rsa.RSAPrivateKey:
        """The root's key, removed from ``certs/``: the caller has written it where the operator
        takes it away. Under the lock."""
        key = self.ca("root")[1]
        assert isinstance(key, rsa.RSAPrivateKey)
        self.keys.remove("root/ca.key")
        with self.folder.lock:
            self._cache.pop(str(self.dir / "root"), None)
        return key

    def unlock_root(self, key: PrivateKeyTypes) -> None:
        """Sign with the root's ``key`` (from its offline file) in this process; refused when it
        is not the key of our root certificate."""
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        ours = self.root_certificate().public_key().public_bytes(serialization.Encoding.DER, spki)
        if (
            not isinstance(key, rsa.RSAPrivateKey)
            or key.public_key().public_bytes(serialization.Encoding.DER, spki) != ours
        ):
            raise RootKeyInvalid("所给的私钥不是本证书中心根证书的私钥。")
        self._root_key = key

    def crl_url(self, which: str) -> str:
        """Where the CRL of the CA named ``which`` is published."""
        return f"{self.public_base_url}/pki/{which}.crl"

    # --- a new PKI ----------------------------------------------------------------------------

    def make(self, at: dt.datetime) -> FirstAuthorities:
        """A new root and a first issuing CA under it, valid from ``at``; nothing is written."""
        org = self.organization
        root_key = rsa.generate_private_key(65537, 3072)
        root = build(
            subject_name("根证书", org),
            root_key.public_key(),
            None,
            root_key,
            years(ROOT_YEARS),
            at=at,
            ca=True,
            path_length=1,
        )
        issuing_key = self._new_key()
        issuing = build(
            subject_name("签章证书签发中心", org),
            issuing_key.public_key(),
            root,
            root_key,
            years(ISSUING_YEARS),
            at=at,
            ca=True,
            path_length=0,
            crl=self.crl_url("root"),
        )
        return FirstAuthorities(root, root_key, issuing, issuing_key)

    def save(self, first: FirstAuthorities) -> None:
        """Write what :meth:`make` made; under the lock. The PKI :attr:`exists` once the issuing
        CA's key is written, so whatever else a new PKI needs is written before this."""
        self.keys.save("root/ca.key", first.root_key)
        save_cert(self.dir / "root" / "ca.crt", first.root)
        self._save_key(self.dir / "issuing", first.issuing_key, first.issuing)
        save_cert(self.dir / "issuing" / "ca.crt", first.issuing)

    # --- where an issuing CA's key is ---------------------------------------------------------

    def _token(self) -> Token:
        if self.token is None:
            raise TokenNotConfigured()
        return self.token

    def _new_key(self) -> rsa.RSAPrivateKey:
        """A new issuing CA's key: in the token (``DOCSIGN_PKCS11_CA``), or here, for a file."""
        if self.in_token:
            return self._token().generate_rsa(TOKEN_KEY_LABEL, CA_KEY_BITS)
        return rsa.generate_private_key(65537, CA_KEY_BITS)

    def _save_key(self, d: Path, key: CertificateIssuerPrivateKeyTypes, cert: x509.Certificate) -> None:
        """Keep an issuing CA's key in ``d`` (its folder, a stage or a retired folder): a file, or
        the token's record of it."""
        if isinstance(key, TokenKey):
            record = {"label": key.token.label, "id": key.key_id.hex(), "serial": str(cert.serial_number)}
            write_atomic(d / "ca.token", json.dumps(record).encode())
        else:
            self.keys.save(self.folder.name(d / "ca.key"), key)

    @staticmethod
    def _token_record(d: Path, cert: x509.Certificate) -> dict[str, str] | None:
        """The token's record of the key of ``cert`` (a CA's in ``d``), if that key lives in the token."""
        try:
            record: dict[str, str] = json.loads((d / "ca.token").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return record if record.get("serial") == str(cert.serial_number) else None

    def key_location(self, which: str) -> str:
        """Where the key of the CA named ``which`` lives, in Chinese (``docsign pki status``)."""
        d = self.ca_dir(which)
        if which == "root" and self.root_offline:
            return "离线（已导出，不在本机）"
        record = self._token_record(d, load_cert(d / "ca.crt"))
        if record is not None:
            return f"PKCS#11 令牌「{record['label']}」（私钥不出令牌）"
        return self.keys.where(self.folder.name(d / "ca.key"))

    # --- the CAs ------------------------------------------------------------------------------

    def root_certificate(self) -> x509.Certificate:
        self.require()
        return load_cert(self.dir / "root" / "ca.crt")

    def issuing_certificate(self) -> x509.Certificate:
        """The current issuing CA's certificate (the one that issues new certificates)."""
        self.require()
        return self.current()[0]

    def issuing_certificates(self) -> list[x509.Certificate]:
        """Every issuing CA certificate this PKI has had, oldest first; the last is the current one.
        Old documents' chains end in the earlier ones."""
        self.require()
        self.issuing_certificate()  # finishes a rollover a crash interrupted
        return history(self.dir / "issuing", self.dir / "issuing" / "ca.crt")

    def chain_for(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """The CA certificates above ``cert`` (its issuing CA, then the root), found by key identifier."""
        try:
            wanted = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        except x509.ExtensionNotFound:
            wanted = None
        for ca in reversed(self.issuing_certificates()):
            ski = x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest  # type: ignore[arg-type]
            if ca.subject == cert.issuer and (wanted is None or wanted == ski):
                return [ca, self.root_certificate()]
        return [self.issuing_certificate(), self.root_certificate()]

    def trust_roots(self) -> list[x509.Certificate]:
        """The local root and any extra roots placed in certs/trust/."""
        roots = [self.root_certificate()]
        trust = self.dir / "trust"
        if trust.is_dir():
            for path in sorted(trust.glob("*.crt")) + sorted(trust.glob("*.pem")):
                roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        return roots

    def issuing_name(self) -> str:
        """The current issuing CA's name: ``issuing``, then ``issuing-2``, ... after each rollover."""
        try:
            return (self.dir / "issuing" / "name").read_text(encoding="utf-8").strip() or FIRST_ISSUING
        except FileNotFoundError:
            return FIRST_ISSUING

    def ca_dir(self, which: str) -> Path:
        """Where a CA's key and certificate are, by the name its CRL is published under: ``root``,
        the current issuing CA's (``issuing/``) or a retired one's (``issuing/retired/<name>/``)."""
        if which == "root":
            return self.dir / "root"
        if which == self.issuing_name():
            return self.dir / "issuing"
        if not CA_NAME.match(which):
            raise KeyError(which)
        d = self.dir / "issuing" / "retired" / which
        if not (d / "ca.crt").exists():
            raise KeyError(which)
        return d

    def ca_names(self) -> list[str]:
        """The CAs that publish a CRL: the root, the current issuing CA and every retired issuing CA
        whose certificate has not expired (certificates it issued may still be in use)."""
        self.require()
        names = ["root", self.issuing_name()]
        retired = self.dir / "issuing" / "retired"
        if retired.is_dir():
            at = self._now()
            for d in sorted(retired.iterdir()):
                live = CA_NAME.match(d.name) and d.name not in names and (d / "ca.crt").exists()
                if live and load_cert(d / "ca.crt").not_valid_after_utc > at:
                    names.append(d.name)
        return names

    def ca_certificate(self, which: str) -> x509.Certificate:
        """A CA's certificate, without its key (which may be offline)."""
        return load_cert(self.ca_dir(which) / "ca.crt")

    def current(self) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
        """The issuing CA that issues new certificates now: its certificate and key."""
        return self.ca(self.issuing_name())

    def ca(self, which: str) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
        """A CA's certificate and key, read again when another process has replaced them."""
        d = self.ca_dir(which)
        if d == self.dir / "issuing" and (d / STAGE).exists():
            with self.folder.locked():
                self.folder.commit(d, ISSUING_FILES, "ca.crt")
        seen = stamp(d / "ca.crt")
        key = str(d)
        with self.folder.lock:
            cached = self._cache.get(key)
        if cached is not None and seen is not None and cached[0] == seen:
            return cached[1], cached[2]
        self.require()
        cert = load_cert(d / "ca.crt")
        if which == "root" and self.root_offline:
            if self._root_key is None:
                raise RootKeyOffline()
            return cert, self._root_key
        record = self._token_record(d, cert)
        if record is not None:
            public = cert.public_key()
            assert isinstance(public, rsa.RSAPublicKey)
            private: rsa.RSAPrivateKey = self._token().key(bytes.fromhex(record["id"]), public)
        else:
            loaded = self.keys.load(self.folder.name(d / "ca.key"))
            assert isinstance(loaded, rsa.RSAPrivateKey)
            private = loaded
        if seen is not None:
            with self.folder.lock:
                self._cache[key] = (seen, cert, private)
        return cert, private

    # --- rollover -----------------------------------------------------------------------------

    def rollover(self, margin: dt.timedelta, at: dt.datetime, *, force: bool = False) -> IssuingRollover | None:
        """Replace the issuing CA once its useful life (expiry or key weakness) is within ``margin``
        of ``at``: a new key and certificate from the root (``签章证书签发中心（第n代）``), named
        ``issuing-<n>``. The old CA's key and certificate move to ``issuing/retired/<name>/``. None
        when not due; :class:`IssuingCaExpiring` when the root cannot give a new CA a useful life.
        Under the lock; the caller then signs the new CA's first CRL (which the old one's keeps
        beside it until it expires). ``force`` replaces it now, whatever its life left."""
        current, current_key = self.current()
        if useful_until(current) - at > margin and not force:
            return None
        root, root_key = self.ca("root")
        if useful_until(root) - at <= margin:
            raise IssuingCaExpiring(
                f"根证书将于 {shown(root.not_valid_after_utc)} 到期，无法再签发新的签发中心证书。"
                "请联系系统管理员更换根证书。"
            )
        old_name = self.issuing_name()
        generation = int(old_name.split("-", 1)[1]) + 1 if "-" in old_name else 2
        new_name = f"{FIRST_ISSUING}-{generation}"
        retired = self.dir / "issuing" / "retired" / old_name
        # the retired CA keeps its key (its CRL): a file, or the record of its key in the token
        self._save_key(retired, current_key, current)
        save_cert(retired / "ca.crt", current)
        new_key = self._new_key()
        try:
            cert = build(
                subject_name(f"签章证书签发中心（第{generation}代）", self.organization),
                new_key.public_key(),
                root,
                root_key,
                years(ISSUING_YEARS),
                at=at,
                ca=True,
                path_length=0,
                crl=self.crl_url("root"),
            )
        except BaseException:
            if isinstance(new_key, TokenKey):  # a key made for a CA that was not made
                new_key.token.destroy(new_key.key_id)
            raise
        d = self.dir / "issuing"
        stage = self.folder.stage(d)
        self._save_key(stage, new_key, cert)
        write_atomic(stage / "name", new_name.encode())
        save_cert(stage / "ca.crt", cert)
        write_atomic(stage / READY, b"")
        self.folder.commit(d, ISSUING_FILES, "ca.crt")
        # what kept the old key here is not the new key's: the retired folder has its own copy
        (d / ("ca.key" if isinstance(new_key, TokenKey) else "ca.token")).unlink(missing_ok=True)
        return IssuingRollover(old_name, new_name, cert.serial_number, cert.not_valid_after_utc)
