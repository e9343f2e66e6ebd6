"""Units' signing credentials: issued by the local issuing CA or imported from a PKCS#12 file,
renewed before they expire, revoked. Files (under ``certs/``)::

    units/<key>/cert.crt, key.pem, chain.pem, unit.json    a unit's current certificate, key, the
                                                            CAs above it, and its name and source
    units/<key>/history/<serial>.crt                        its earlier certificates (keys not kept)

A unit's key is a short identifier (``bureau``, ``office-wangsheren``); its certificate carries the
unit's name as printed on the seal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from service.pki.authority import Authority
from service.pki.certificates import KEY_BITS, build, shown, subject_name, years
from service.pki.crls import REVOCATION_REASONS, Revocations
from service.pki.errors import (
    CertificateExpired,
    CertificateNotRenewable,
    CertificateRevoked,
    IssuingCaExpiring,
    Pkcs12Invalid,
    RevocationInvalid,
    TokenNotConfigured,
    UnitCertificateMissing,
    UnitKeyInvalid,
    UnitNameMismatch,
)
from service.pki.files import READY, CertsFolder, Stamp, history, load_cert, save_cert, stamp, write_atomic
from service.pki.keys import KeyStore
from service.pki.token import Token, TokenKey

UNIT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LEAF_YEARS = 3
#: Renew a unit certificate this long before it expires: longer than the dashboard's warning
#: (:data:`service.pki.status.WARN_WITHIN`), so a certificate reaches the warning only when the
#: scheduled job has stopped renewing, and the bureau then still has 90 days to notice.
UNIT_RENEW_MARGIN = dt.timedelta(days=120)
UNIT_FILES = ("key.pem", "chain.pem", "cert.crt", "unit.json")


@dataclass
class UnitCredentials:
    """What signing for a unit needs: its certificate, its key (parsed once) and the chain above it."""

    key: str
    name: str
    certificate: x509.Certificate
    private_key: PrivateKeyTypes
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def in_token(self) -> bool:
        """The key lives in a PKCS#11 token: it signs there and cannot be exported."""
        return isinstance(self.private_key, TokenKey)


@dataclass(frozen=True)
class RenewedUnit:
    """A unit certificate replaced by a new key and certificate with the same subject."""

    key: str
    name: str
    old_serial: int
    new_serial: int
    expires: dt.datetime


def _meta(d: Path) -> dict[str, Any]:
    """A unit's ``unit.json``: its key, name, source (``local`` or ``pkcs12``) and serial."""
    meta: dict[str, Any] = json.loads((d / "unit.json").read_text(encoding="utf-8"))
    return meta


class Units:
    """Every unit's credentials; thread-safe, and safe for several processes sharing ``certs/``."""

    def __init__(
        self,
        folder: CertsFolder,
        keys: KeyStore,
        authority: Authority,
        revocations: Revocations,
        now: Callable[[], dt.datetime],
        token: Token | None = None,
    ) -> None:
        self.folder = folder
        self.dir = folder.dir / "units"
        self.token = token
        self.keys = keys
        self.authority = authority
        self.revocations = revocations
        self._now = now
        self._cache: dict[str, tuple[Stamp, UnitCredentials]] = {}

    def unit_dir(self, key: str) -> Path:
        if not UNIT_KEY.match(key):
            raise UnitKeyInvalid(f"单位标识「{key}」无效：只能包含小写字母、数字、短横线和下划线。")
        return self.dir / key

    def has(self, key: str) -> bool:
        return (self.unit_dir(key) / "cert.crt").exists()

    def unit_keys(self) -> list[str]:
        """Keys of every unit with a certificate, sorted."""
        if not self.dir.is_dir():
            return []
        return sorted(p.parent.name for p in self.dir.glob("*/cert.crt") if UNIT_KEY.match(p.parent.name))

    def get(self, key: str) -> UnitCredentials:
        """A unit's current credentials, loaded once (again after a renewal, by this process or
        another); refused if the certificate is revoked or expired."""
        d = self.unit_dir(key)
        seen = stamp(d / "unit.json")
        with self.folder.lock:
            cached = self._cache.get(key)
        if cached is not None and seen is not None and cached[0] == seen:
            creds = cached[1]
        else:
            self.authority.require()
            with self.folder.locked():
                creds = self._load(key, d)
        if self.revocations.is_revoked(creds.certificate):
            raise CertificateRevoked(f"单位「{creds.name}」的签章证书已吊销，不能再用于签署。请重新签发证书。")
        if creds.certificate.not_valid_after_utc < self._now():
            raise CertificateExpired(
                f"单位「{creds.name}」的签章证书已于 {creds.certificate.not_valid_after_utc:%Y-%m-%d} 过期。"
            )
        return creds

    def _load(self, key: str, d: Path) -> UnitCredentials:
        """Read a unit's files; under the lock, so never halfway through a renewal."""
        self.folder.commit(d, UNIT_FILES, "cert.crt")
        if not (d / "cert.crt").exists():
            raise UnitCertificateMissing(f"单位「{key}」还没有签章证书，请先签发或导入证书。")
        meta = _meta(d)
        cert = load_cert(d / "cert.crt")
        chain_path = d / "chain.pem"
        chain_pem = chain_path.read_bytes() if chain_path.exists() else b""
        chain = x509.load_pem_x509_certificates(chain_pem) if chain_pem.strip() else []
        in_token = meta.get("token")
        if in_token:
            public = cert.public_key()
            assert isinstance(public, rsa.RSAPublicKey)
            private: PrivateKeyTypes = self._token().key(bytes.fromhex(in_token["id"]), public)
        else:
            private = self.keys.load(self.folder.name(d / "key.pem"))
        creds = UnitCredentials(key, meta["name"], cert, private, chain)
        seen = stamp(d / "unit.json")
        if seen is not None:
            self._cache[key] = (seen, creds)
        return creds

    def certificates(self, key: str) -> list[x509.Certificate]:
        """Every certificate a unit has signed with, oldest first; the last is the current one."""
        d = self.unit_dir(key)
        if not (d / "cert.crt").exists():
            raise UnitCertificateMissing(f"单位「{key}」没有签章证书。")
        return history(d, d / "cert.crt")

    def imported_fingerprints(self) -> frozenset[str]:
        """The SHA-256 (hex, of the DER) of every certificate of every unit that brought its own."""
        found: set[str] = set()
        for key in self.unit_keys():
            d = self.dir / key
            if _meta(d).get("source") == "local":
                continue
            for cert in history(d, d / "cert.crt"):
                found.add(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest())
        return frozenset(found)

    def current_certificate(self, key: str) -> tuple[x509.Certificate, bool]:
        """A unit's current certificate as written, and whether it was imported (not from the local CA)."""
        d = self.dir / key
        return load_cert(d / "cert.crt"), _meta(d).get("source") != "local"

    def key_location(self, key: str) -> str:
        """Where a unit's private key lives, in Chinese (``docsign pki status``)."""
        d = self.unit_dir(key)
        in_token = _meta(d).get("token")
        if in_token:
            return f"PKCS#11 令牌「{in_token['label']}」（私钥不出令牌）"
        return self.keys.where(self.folder.name(d / "key.pem"))

    def _token(self) -> Token:
        if self.token is None:
            raise TokenNotConfigured()
        return self.token

    def _new_key(self, key: str, in_token: bool) -> rsa.RSAPrivateKey:
        """A unit's new key: in the token, or (the default) here, to be kept in a file."""
        if in_token:
            return self._token().generate_rsa(f"docsign-{key}", KEY_BITS)
        return rsa.generate_private_key(65537, KEY_BITS)

    def issue(self, key: str, name: str, *, replace: bool = False, in_token: bool = False) -> UnitCredentials:
        """Issue a signing certificate for a unit from the local issuing CA. With ``replace`` the
        unit gets a new key and certificate under ``name``; the one it replaces moves to history.
        ``in_token`` generates the key inside the PKCS#11 token; the certificate is issued for its
        public key."""
        d = self.unit_dir(key)
        name = name.strip()
        if not name or len(name.encode()) > 64:
            raise UnitKeyInvalid("单位名称不能为空，且不能超过21个汉字（证书名称长度限制）。")
        with self.folder.locked():
            self.folder.commit(d, UNIT_FILES, "cert.crt")
            if (d / "cert.crt").exists() and not replace:
                meta = _meta(d)
                if meta["name"] != name:
                    raise UnitNameMismatch(
                        f"单位标识「{key}」已有证书，证书上的名称是「{meta['name']}」，与「{name}」不一致。"
                    )
            else:
                issuing, issuing_key = self.authority.current()
                key_obj = self._new_key(key, in_token)
                cert = build(
                    subject_name(name, name, "电子签章"),
                    key_obj.public_key(),
                    issuing,
                    issuing_key,
                    years(LEAF_YEARS),
                    at=self._now(),
                    ca=False,
                    crl=self.authority.crl_url(self.authority.issuing_name()),
                    leaf=True,
                )
                chain = [issuing, self.authority.root_certificate()]
                self._store(d, key, name, cert, key_obj, chain, "local")
            self._cache.pop(key, None)
        return self.get(key)

    def ensure(self, key: str, name: str) -> UnitCredentials:
        """A unit's credentials, issued first if it has none; refused if its certificate names
        another unit."""
        if self.has(key):
            creds = self.get(key)
            if creds.name != name.strip():
                raise UnitNameMismatch(f"单位标识「{key}」的证书名称是「{creds.name}」，与文书落款「{name}」不一致。")
            return creds
        return self.issue(key, name)

    def _store(
        self,
        d: Path,
        key: str,
        name: str,
        cert: x509.Certificate,
        private_key: PrivateKeyTypes,
        chain: list[x509.Certificate],
        source: str,
    ) -> None:
        """Stage a unit's new key, chain, certificate and record, then commit them; under the lock.
        A key in the token is named in the record instead of written; the key it replaces (a file,
        or another key in the token) is not kept."""
        replaced = _meta(d).get("token") if (d / "unit.json").exists() else None
        stage = self.folder.stage(d)
        if not isinstance(private_key, TokenKey):
            self.keys.save(self.folder.name(stage / "key.pem"), private_key)
        write_atomic(stage / "chain.pem", b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
        save_cert(stage / "cert.crt", cert)
        meta: dict[str, Any] = {"key": key, "name": name, "source": source, "serial": str(cert.serial_number)}
        if isinstance(private_key, TokenKey):
            meta["token"] = {"label": private_key.token.label, "id": private_key.key_id.hex()}
        write_atomic(stage / "unit.json", json.dumps(meta, ensure_ascii=False, indent=2).encode())
        write_atomic(stage / READY, b"")
        self.folder.commit(d, UNIT_FILES, "cert.crt")
        if isinstance(private_key, TokenKey):
            (d / "key.pem").unlink(missing_ok=True)
        if replaced and self.token is not None:
            self.token.destroy(bytes.fromhex(replaced["id"]))

    def import_pkcs12(
        self, key: str, data: bytes, password: str | None, name: str | None = None, *, to_token: bool = False
    ) -> UnitCredentials:
        """Use a unit's own certificate (from a PKCS#12 file) instead of one from the local CA;
        ``to_token`` puts its key (RSA) into the PKCS#11 token instead of a file."""
        d = self.unit_dir(key)
        try:
            private_key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
        except (ValueError, TypeError) as exc:
            raise Pkcs12Invalid() from exc
        if private_key is None or cert is None:
            raise Pkcs12Invalid("PKCS#12 文件中缺少私钥或证书。")
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        unit_name = name or (str(cn[0].value) if cn else key)
        if to_token:
            if not isinstance(private_key, rsa.RSAPrivateKey):
                raise Pkcs12Invalid("目前只能把 RSA 私钥导入 PKCS#11 令牌；该证书的私钥不是 RSA。")
            private_key = self._token().import_rsa(f"docsign-{key}", private_key)
        with self.folder.locked():
            self.folder.commit(d, UNIT_FILES, "cert.crt")
            self._store(d, key, unit_name, cert, private_key, list(extra or []), "pkcs12")
            self._cache.pop(key, None)
        return self.get(key)

    def revoke(self, key: str, reason: str = "unspecified", *, since: dt.datetime | None = None) -> str:
        """Revoke a unit's current certificate; the issuing CA's CRL lists it at once, with
        ``reason`` (a key of :data:`REVOCATION_REASONS`). For a key compromise, ``since`` backdates
        the revocation to when the key is known to have left the unit's control: signatures made
        after it fail, earlier ones stay genuine. Returns the revoked serial.

        Earlier certificates in the unit's history are not revoked: their keys were discarded when
        they were replaced, so nothing can sign with them any more, and the documents they signed
        stay valid. A revoked unit is not renewed by :meth:`renew_expiring`; :meth:`issue` with
        ``replace`` or :meth:`renew` gives it a new certificate."""
        if reason not in REVOCATION_REASONS:
            allowed = "、".join(f"{k}（{v[1]}）" for k, v in REVOCATION_REASONS.items())
            raise RevocationInvalid(f"吊销原因「{reason}」无效，可选：{allowed}。")
        d = self.unit_dir(key)
        if not (d / "cert.crt").exists():
            raise UnitCertificateMissing(f"单位「{key}」没有签章证书。")
        with self.folder.locked():
            self.folder.commit(d, UNIT_FILES, "cert.crt")
            cert = load_cert(d / "cert.crt")
            now = self._now()
            # CRLs carry whole seconds: round up, so a signature made earlier in this second is
            # not listed as made after the revocation
            at = now.replace(microsecond=0) + dt.timedelta(seconds=1) if now.microsecond else now
            if since is not None:
                if reason != "key_compromise":
                    raise RevocationInvalid("只有因私钥泄露吊销时才能指定泄露开始时间。")
                since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
                if not cert.not_valid_before_utc <= since <= now:
                    raise RevocationInvalid(
                        f"泄露开始时间应在证书生效（{shown(cert.not_valid_before_utc)}）之后、现在之前。"
                    )
                at = since
            self.revocations.revoke(cert, reason, at, now)
            self._cache.pop(key, None)
        return str(cert.serial_number)

    # --- renewal ------------------------------------------------------------------------------

    def renew(self, key: str, *, now: dt.datetime | None = None) -> RenewedUnit:
        """A new key and certificate for a unit, with the same subject, from the local issuing CA.
        New signatures use it; the old certificate moves to ``units/<key>/history/`` and its key is
        discarded. Refused for an imported certificate (:class:`CertificateNotRenewable`) and when
        the issuing CA ends before the new certificate would outlast the old one
        (:class:`IssuingCaExpiring`)."""
        d = self.unit_dir(key)
        self.authority.require()
        at = now or self._now()
        new_key = self._new_key(key, self._in_token(d))
        try:
            with self.folder.locked():
                return self._renew(key, d, new_key, at)
        except BaseException:
            self._discard(new_key)
            raise

    def _discard(self, key: rsa.RSAPrivateKey) -> None:
        """Remove from the token a key made for a renewal that did not happen."""
        if isinstance(key, TokenKey):
            key.token.destroy(key.key_id)

    def _in_token(self, d: Path) -> bool:
        """A unit's current key lives in the token: its renewal makes the new one there too."""
        return (d / "unit.json").exists() and bool(_meta(d).get("token"))

    def _renew(
        self, key: str, d: Path, new_key: rsa.RSAPrivateKey, at: dt.datetime, *, force: bool = False
    ) -> RenewedUnit:
        self.folder.commit(d, UNIT_FILES, "cert.crt")
        if not (d / "cert.crt").exists():
            raise UnitCertificateMissing(f"单位「{key}」没有签章证书。")
        meta = _meta(d)
        current = load_cert(d / "cert.crt")
        if meta.get("source") != "local":
            raise CertificateNotRenewable(
                f"单位「{meta['name']}」使用导入的证书（{current.not_valid_after_utc:%Y-%m-%d} 到期），"
                "本地证书中心不能为其续期。请向发证机构申请新证书后用 docsign pki import 导入。"
            )
        issuing, issuing_key = self.authority.current()
        cert = build(
            current.subject,
            new_key.public_key(),
            issuing,
            issuing_key,
            years(LEAF_YEARS),
            at=at,
            ca=False,
            crl=self.authority.crl_url(self.authority.issuing_name()),
            leaf=True,
        )
        # Refused when it gains nothing: no longer valid than the current one, from the same issuing CA
        # (cut short by that CA's end). One moved to a new issuing CA is renewed even if, made within
        # the second the current one was, both end at the same second.
        same_ca = _key_id(current) == _key_id(cert)
        if same_ca and cert.not_valid_after_utc <= current.not_valid_after_utc and not force:
            raise IssuingCaExpiring(
                f"签发中心证书将于 {shown(issuing.not_valid_after_utc)} 到期，单位「{meta['name']}」的新证书"
                "不能比现有证书有效更久，未续期。请联系系统管理员更换签发中心证书。"
            )
        self._store(d, key, meta["name"], cert, new_key, [issuing, self.authority.root_certificate()], "local")
        self._cache.pop(key, None)
        return RenewedUnit(key, meta["name"], current.serial_number, cert.serial_number, cert.not_valid_after_utc)

    def _renewal_due(self, d: Path, at: dt.datetime, margin: dt.timedelta) -> bool:
        """A unit's current certificate is not revoked and expires within ``margin``, or (for one
        from the local CA) was issued by an issuing CA that has since been replaced."""
        path = d / "cert.crt"
        if not path.exists():
            return False
        cert = load_cert(path)
        if self.revocations.is_revoked(cert):
            return False
        if cert.not_valid_after_utc - at <= margin:
            return True
        return _meta(d).get("source") == "local" and cert.issuer != self.authority.issuing_certificate().subject

    def renew_expiring(self, margin: dt.timedelta, at: dt.datetime) -> tuple[list[RenewedUnit], list[str]]:
        """Renew every unit certificate that expires within ``margin`` of ``at`` or was issued by a
        replaced CA; revoked ones are left alone. Returns the renewals, and what could not be
        renewed here (in Chinese, for a person)."""
        self.authority.require()
        renewed: list[RenewedUnit] = []
        attention: list[str] = []
        for key in self.unit_keys():
            d = self.unit_dir(key)
            if not self._renewal_due(d, at, margin):
                continue
            new_key = self._new_key(key, self._in_token(d))  # outside the lock: signers wait less
            with self.folder.locked():
                self.folder.commit(d, UNIT_FILES, "cert.crt")
                if not self._renewal_due(d, at, margin):
                    self._discard(new_key)
                    continue  # another process renewed it meanwhile
                try:
                    renewed.append(self._renew(key, d, new_key, at, force=True))
                except (CertificateNotRenewable, IssuingCaExpiring) as exc:
                    self._discard(new_key)
                    attention.append(exc.message)
        return renewed, attention


def _key_id(cert: x509.Certificate) -> bytes | None:
    """The authority key identifier: which issuing CA's key signed ``cert``."""
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None
