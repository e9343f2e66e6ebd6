"""The local PKI under ``certs/``: root CA -> issuing CA -> one signing certificate per unit, a TSA
certificate, and a CRL from each CA.

Layout (private keys are PKCS#8, encrypted with the passphrase from settings, mode 0600, and
git-ignored; see certs/README.md)::

    certs/root/ca.crt, ca.key          root CA (20 years)
    certs/issuing/ca.crt, ca.key       issuing CA (10 years), signs unit and TSA certificates
    certs/tsa/tsa.crt, tsa.key         time-stamping authority (RFC 3161 tokens)
    certs/crl/root.crl, issuing.crl    revocation lists, refreshed before they go stale
    certs/units/<key>/cert.crt, key.pem, chain.pem, unit.json
    certs/trust/*.crt                  extra trusted roots (for imported PKCS#12 certificates)
    certs/revoked.json                 serials revoked by the issuing CA

A unit's key is a short identifier (``bureau``, ``office-wangsheren``); its certificate carries the
unit's name as printed on the seal.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from service.pki.errors import (
    CertificateExpired,
    CertificateRevoked,
    Pkcs12Invalid,
    PkiNotInitialized,
    PkiPassphraseWrong,
    UnitCertificateMissing,
    UnitKeyInvalid,
    UnitNameMismatch,
)

UNIT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: RSA everywhere: pdfsig, Adobe and WPS all verify it, and pyHanko's local TSA signs only with RSA.
KEY_BITS = 2048
ROOT_YEARS, ISSUING_YEARS, LEAF_YEARS = 20, 10, 3
#: A CRL is valid this long and reissued when less than half of it remains.
CRL_DAYS = 30
ROOT_CRL_DAYS = 365


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str, organization: str, unit: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
    ]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass
class UnitCredentials:
    """What signing for a unit needs: its certificate, its key (parsed once) and the chain above it."""

    key: str
    name: str
    certificate: x509.Certificate
    private_key: PrivateKeyTypes
    chain: list[x509.Certificate] = field(default_factory=list)


@dataclass(frozen=True)
class InitReport:
    created: bool
    certs_dir: Path
    root_subject: str
    root_fingerprint: str


class Pki:
    """The certificate store; thread-safe, and safe for several processes through a lock file."""

    def __init__(self, certs_dir: Path, passphrase: str, organization: str, public_base_url: str) -> None:
        self.dir = Path(certs_dir)
        self._passphrase = passphrase.encode()
        self.organization = organization
        self.public_base_url = public_base_url.rstrip("/")
        self._lock = threading.RLock()
        self._units: dict[str, UnitCredentials] = {}
        self._ca_cache: dict[str, tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]] = {}

    # --- files --------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _save_key(self, path: Path, key: PrivateKeyTypes) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        _write_atomic(path, pem, 0o600)

    def _load_key(self, path: Path) -> PrivateKeyTypes:
        try:
            return serialization.load_pem_private_key(path.read_bytes(), self._passphrase)
        except FileNotFoundError:
            raise PkiNotInitialized() from None
        except (ValueError, TypeError) as exc:
            raise PkiPassphraseWrong() from exc

    @staticmethod
    def _save_cert(path: Path, cert: x509.Certificate) -> None:
        _write_atomic(path, cert.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _load_cert(path: Path) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(path.read_bytes())
        except FileNotFoundError:
            raise PkiNotInitialized() from None

    @property
    def exists(self) -> bool:
        return (self.dir / "root" / "ca.crt").exists() and (self.dir / "issuing" / "ca.key").exists()

    def _require(self) -> None:
        if not self.exists:
            raise PkiNotInitialized(f"本地证书尚未创建（{self.dir}），请先运行 docsign init。")

    # --- creation -----------------------------------------------------------------------------

    def _crl_url(self, which: str) -> str:
        return f"{self.public_base_url}/pki/{which}.crl"

    def _build(
        self,
        subject: x509.Name,
        public_key: rsa.RSAPublicKey,
        issuer: x509.Certificate | None,
        issuer_key: CertificateIssuerPrivateKeyTypes,
        years: int,
        *,
        ca: bool,
        path_length: int | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        crl: str | None = None,
    ) -> x509.Certificate:
        now = _now() - dt.timedelta(minutes=5)
        issuer_name = issuer.subject if issuer is not None else subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        aki_key = issuer.public_key() if issuer is not None else public_key
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_key),  # type: ignore[arg-type]
            critical=False,
        )
        if ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        else:
            usage = x509.KeyUsage(True, True, False, False, False, False, False, False, False)
        builder = builder.add_extension(usage, critical=True)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=True)
        if crl:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(crl)], None, None, None)]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    def init(self) -> InitReport:
        """Create the local PKI unless one exists; never overwrites keys."""
        with self._locked():
            created = False
            if not self.exists:
                created = True
                org = self.organization
                root_key = rsa.generate_private_key(65537, 3072)
                root = self._build(
                    _name("根证书", org), root_key.public_key(), None, root_key, ROOT_YEARS, ca=True, path_length=1
                )
                issuing_key = rsa.generate_private_key(65537, KEY_BITS)
                issuing = self._build(
                    _name("签章证书签发中心", org),
                    issuing_key.public_key(),
                    root,
                    root_key,
                    ISSUING_YEARS,
                    ca=True,
                    path_length=0,
                    crl=self._crl_url("root"),
                )
                tsa_key = rsa.generate_private_key(65537, KEY_BITS)
                tsa = self._build(
                    _name("时间戳服务", org, "时间戳"),
                    tsa_key.public_key(),
                    issuing,
                    issuing_key,
                    ISSUING_YEARS,
                    ca=False,
                    eku=[ExtendedKeyUsageOID.TIME_STAMPING],
                    crl=self._crl_url("issuing"),
                )
                self._save_key(self.dir / "tsa" / "tsa.key", tsa_key)
                self._save_cert(self.dir / "tsa" / "tsa.crt", tsa)
                self._save_key(self.dir / "root" / "ca.key", root_key)
                self._save_cert(self.dir / "root" / "ca.crt", root)
                self._save_key(self.dir / "issuing" / "ca.key", issuing_key)
                self._save_cert(self.dir / "issuing" / "ca.crt", issuing)
                _write_atomic(self.dir / "revoked.json", b"{}\n")
                self._write_crls()
            root = self.root_certificate()
            return InitReport(
                created=created,
                certs_dir=self.dir,
                root_subject=root.subject.rfc4514_string(),
                root_fingerprint=root.fingerprint(hashes.SHA256()).hex(":").upper(),
            )

    # --- CAs, TSA and CRLs --------------------------------------------------------------------

    def root_certificate(self) -> x509.Certificate:
        self._require()
        return self._load_cert(self.dir / "root" / "ca.crt")

    def issuing_certificate(self) -> x509.Certificate:
        self._require()
        return self._load_cert(self.dir / "issuing" / "ca.crt")

    def _ca(self, which: str) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
        if which not in self._ca_cache:
            self._require()
            cert = self._load_cert(self.dir / which / "ca.crt")
            key = self._load_key(self.dir / which / "ca.key")
            assert isinstance(key, rsa.RSAPrivateKey)
            self._ca_cache[which] = (cert, key)
        return self._ca_cache[which]

    def trust_roots(self) -> list[x509.Certificate]:
        """The local root and any extra roots placed in certs/trust/."""
        roots = [self.root_certificate()]
        trust = self.dir / "trust"
        if trust.is_dir():
            for path in sorted(trust.glob("*.crt")) + sorted(trust.glob("*.pem")):
                roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        return roots

    def tsa(self) -> tuple[x509.Certificate, PrivateKeyTypes]:
        with self._lock:
            if "tsa" not in self._units:
                self._require()
                cert = self._load_cert(self.dir / "tsa" / "tsa.crt")
                key = self._load_key(self.dir / "tsa" / "tsa.key")
                self._units["tsa"] = UnitCredentials("tsa", "TSA", cert, key, [self.issuing_certificate()])
            creds = self._units["tsa"]
        return creds.certificate, creds.private_key

    def _revoked(self) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads((self.dir / "revoked.json").read_text())
        except FileNotFoundError:
            data = {}
        return data

    def _write_crls(self) -> None:
        now = _now()
        root, root_key = self._ca("root")
        issuing, issuing_key = self._ca("issuing")
        for which, cert, key, days, revoked in (
            ("root", root, root_key, ROOT_CRL_DAYS, {}),
            ("issuing", issuing, issuing_key, CRL_DAYS, self._revoked()),
        ):
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(cert.subject)
                .last_update(now - dt.timedelta(minutes=5))
                .next_update(now + dt.timedelta(days=days))
                .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(cert.public_key()),  # type: ignore[arg-type]
                    critical=False,
                )
            )
            for serial, when in revoked.items():
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(serial))
                    .revocation_date(dt.datetime.fromisoformat(when))
                    .build()
                )
            crl = builder.sign(key, hashes.SHA256())
            _write_atomic(self.dir / "crl" / f"{which}.crl", crl.public_bytes(serialization.Encoding.DER))

    def crls(self) -> list[x509.CertificateRevocationList]:
        """Current CRLs of both CAs, reissued first when less than half their validity remains."""
        self._require()
        paths = [self.dir / "crl" / "root.crl", self.dir / "crl" / "issuing.crl"]
        crls = [x509.load_der_x509_crl(p.read_bytes()) for p in paths if p.exists()]
        now = _now()
        stale = len(crls) < 2 or any(
            c.next_update_utc is None or (c.next_update_utc - now) < (c.next_update_utc - c.last_update_utc) / 2
            for c in crls
        )
        if stale:
            with self._locked():
                self._write_crls()
            crls = [x509.load_der_x509_crl(p.read_bytes()) for p in paths]
        return crls

    # --- units --------------------------------------------------------------------------------

    def _unit_dir(self, key: str) -> Path:
        if not UNIT_KEY.match(key):
            raise UnitKeyInvalid(f"单位标识「{key}」无效：只能包含小写字母、数字、短横线和下划线。")
        return self.dir / "units" / key

    def has_unit(self, key: str) -> bool:
        return (self._unit_dir(key) / "cert.crt").exists()

    def unit(self, key: str) -> UnitCredentials:
        """A unit's credentials, loaded once; refused if the certificate is revoked or expired."""
        with self._lock:
            creds = self._units.get(key)
            if creds is None:
                self._require()
                d = self._unit_dir(key)
                if not (d / "cert.crt").exists():
                    raise UnitCertificateMissing(f"单位「{key}」还没有签章证书，请先签发或导入证书。")
                meta = json.loads((d / "unit.json").read_text(encoding="utf-8"))
                cert = self._load_cert(d / "cert.crt")
                chain_path = d / "chain.pem"
                chain_pem = chain_path.read_bytes() if chain_path.exists() else b""
                chain = x509.load_pem_x509_certificates(chain_pem) if chain_pem.strip() else []
                creds = UnitCredentials(key, meta["name"], cert, self._load_key(d / "key.pem"), chain)
                self._units[key] = creds
        if str(creds.certificate.serial_number) in self._revoked():
            raise CertificateRevoked(f"单位「{creds.name}」的签章证书已吊销，不能再用于签署。请重新签发证书。")
        if creds.certificate.not_valid_after_utc < _now():
            raise CertificateExpired(
                f"单位「{creds.name}」的签章证书已于 {creds.certificate.not_valid_after_utc:%Y-%m-%d} 过期。"
            )
        return creds

    def issue_unit(self, key: str, name: str, *, replace: bool = False) -> UnitCredentials:
        """Issue a signing certificate for a unit from the local issuing CA."""
        d = self._unit_dir(key)
        name = name.strip()
        if not name or len(name.encode()) > 64:
            raise UnitKeyInvalid("单位名称不能为空，且不能超过21个汉字（证书名称长度限制）。")
        with self._locked():
            if (d / "cert.crt").exists() and not replace:
                meta = json.loads((d / "unit.json").read_text(encoding="utf-8"))
                if meta["name"] != name:
                    raise UnitNameMismatch(
                        f"单位标识「{key}」已有证书，证书上的名称是「{meta['name']}」，与「{name}」不一致。"
                    )
            else:
                issuing, issuing_key = self._ca("issuing")
                key_obj = rsa.generate_private_key(65537, KEY_BITS)
                cert = self._build(
                    _name(name, name, "电子签章"),
                    key_obj.public_key(),
                    issuing,
                    issuing_key,
                    LEAF_YEARS,
                    ca=False,
                    crl=self._crl_url("issuing"),
                )
                self._store_unit(d, key, name, cert, key_obj, [issuing, self.root_certificate()], "local")
            self._units.pop(key, None)
        return self.unit(key)

    def ensure_unit(self, key: str, name: str) -> UnitCredentials:
        if self.has_unit(key):
            creds = self.unit(key)
            if creds.name != name.strip():
                raise UnitNameMismatch(f"单位标识「{key}」的证书名称是「{creds.name}」，与文书落款「{name}」不一致。")
            return creds
        return self.issue_unit(key, name)

    def _store_unit(
        self,
        d: Path,
        key: str,
        name: str,
        cert: x509.Certificate,
        private_key: PrivateKeyTypes,
        chain: list[x509.Certificate],
        source: str,
    ) -> None:
        self._save_key(d / "key.pem", private_key)
        _write_atomic(d / "chain.pem", b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
        self._save_cert(d / "cert.crt", cert)
        meta = {"key": key, "name": name, "source": source, "serial": str(cert.serial_number)}
        _write_atomic(d / "unit.json", json.dumps(meta, ensure_ascii=False, indent=2).encode())

    def import_pkcs12(self, key: str, data: bytes, password: str | None, name: str | None = None) -> UnitCredentials:
        """Use a unit's own certificate (from a PKCS#12 file) instead of one from the local CA."""
        d = self._unit_dir(key)
        try:
            private_key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
        except (ValueError, TypeError) as exc:
            raise Pkcs12Invalid() from exc
        if private_key is None or cert is None:
            raise Pkcs12Invalid("PKCS#12 文件中缺少私钥或证书。")
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        unit_name = name or (str(cn[0].value) if cn else key)
        with self._locked():
            self._store_unit(d, key, unit_name, cert, private_key, list(extra or []), "pkcs12")
            self._units.pop(key, None)
        return self.unit(key)

    def revoke_unit(self, key: str) -> str:
        """Revoke a unit's certificate; the next CRL lists it. Returns the revoked serial."""
        d = self._unit_dir(key)
        if not (d / "cert.crt").exists():
            raise UnitCertificateMissing(f"单位「{key}」没有签章证书。")
        cert = self._load_cert(d / "cert.crt")
        with self._locked():
            revoked = self._revoked()
            revoked[str(cert.serial_number)] = _now().isoformat()
            _write_atomic(self.dir / "revoked.json", json.dumps(revoked, indent=2).encode())
            self._write_crls()
            self._units.pop(key, None)
        return str(cert.serial_number)
