"""The local PKI under ``certs/``: root CA -> issuing CA -> one signing certificate per unit, a TSA
certificate, and a CRL from each CA; and its upkeep, so that it keeps itself alive.

Layout (private keys are PKCS#8, encrypted with the passphrase from settings, mode 0600, and
git-ignored; see certs/README.md)::

    certs/root/ca.crt, ca.key          root CA (20 years)
    certs/issuing/ca.crt, ca.key       issuing CA (10 years), signs unit and TSA certificates
    certs/tsa/tsa.crt, tsa.key         time-stamping authority (RFC 3161 tokens), the current one
    certs/tsa/history/<serial>.crt     earlier TSA certificates, kept to check the tokens they signed
    certs/crl/root.crl, issuing.crl    revocation lists, re-published before they go stale
    certs/units/<key>/cert.crt, key.pem, chain.pem, unit.json      a unit's current certificate
    certs/units/<key>/history/<serial>.crt                          its earlier certificates
    certs/trust/*.crt                  extra trusted roots (for imported PKCS#12 certificates)
    certs/revoked.json                 serials revoked by the issuing CA

A unit's key is a short identifier (``bureau``, ``office-wangsheren``); its certificate carries the
unit's name as printed on the seal.

Upkeep (:meth:`Pki.maintain`, run by a scheduled job): CRLs are re-signed before their nextUpdate,
unit certificates are renewed (new key, same subject) before they expire, and the TSA gets a new key
and certificate every :data:`TSA_KEY_USE`. A replaced certificate moves to ``history/``; its private
key is not kept. Several processes may share ``certs/``: every change is made under a lock file, and
a new key with its certificate is staged in ``.next/`` and moved into place by a commit that the
next process to take the lock finishes if a crash interrupted it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from asn1crypto import keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from service.pki.errors import (
    CertificateExpired,
    CertificateNotRenewable,
    CertificateRevoked,
    IssuingCaExpiring,
    Pkcs12Invalid,
    PkiNotInitialized,
    PkiPassphraseWrong,
    RevocationInvalid,
    UnitCertificateMissing,
    UnitKeyInvalid,
    UnitNameMismatch,
)
from service.pki.sunsets import DEFAULT_SUNSETS, AlgorithmSunsets

UNIT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: RSA everywhere: pdfsig, Adobe and WPS all verify it, and pyHanko's local TSA signs only with RSA.
#: Unit keys live three years, so 2048 bits (112-bit security, acceptable through 2030) serve them;
#: the CAs' and the TSA's signatures must stay strong for as long as documents are kept, so theirs
#: are 3072 bits (128-bit security, NIST SP 800-57 Part 1: acceptable beyond 2030).
KEY_BITS = 2048
CA_KEY_BITS = 3072
ROOT_YEARS, ISSUING_YEARS, LEAF_YEARS = 20, 10, 3
#: The TSA's certificate lives as long as the issuing CA lets it: the tokens a TSA key signed can be
#: checked for as long as its certificate is valid, so that should be long.
TSA_YEARS = 10
#: A CRL is valid this long. Relying parties (pdfsig, Acrobat) keep the last one they fetched until
#: its nextUpdate, so a revocation reaches them within this time.
CRL_DAYS = 30
ROOT_CRL_DAYS = 365
#: Certificates start a little in the past, so a machine whose clock is a few minutes behind still
#: accepts one made this minute.
BACKDATE = dt.timedelta(minutes=5)

#: Re-publish a CRL when its nextUpdate is this close: half the issuing CA's 30-day CRL, so a daily
#: job that fails has two weeks of retries before a relying party's copy goes stale.
CRL_REFRESH_MARGIN = dt.timedelta(days=15)
#: Renew a unit certificate this long before it expires: longer than the dashboard's warning
#: (:data:`WARN_WITHIN`), so a certificate reaches the warning only when the scheduled job has stopped
#: renewing, and the bureau then still has 90 days to notice.
UNIT_RENEW_MARGIN = dt.timedelta(days=120)
#: A TSA key signs tokens for three years, then a new key and certificate take over while the old
#: certificate, valid for years more, keeps the tokens it signed checkable. Public TSAs do the same
#: (RFC 3628, ETSI EN 319 421: a TSU key's usage period ends well before its certificate does), and a
#: key used for less time is a smaller loss if it leaks.
TSA_KEY_USE = dt.timedelta(days=3 * 365)
#: A new issuing CA takes over when the current one's useful life (its expiry, or the day its key
#: weakens) is this close. The TSA's and units' certificates never outlive their CA, so a CA near its
#: end would leave archive timestamps nothing to reach for; three years leave a new TSA certificate
#: well past the one-year archive-timestamp margin.
ISSUING_ROLLOVER = dt.timedelta(days=3 * 365)
#: The TSA also rolls over when what it signs would stop protecting within this (its certificate
#: ends with its CA, or its key weakens): an archive timestamp must reach further than the one it renews.
TSA_MIN_REACH = dt.timedelta(days=2 * 365)
#: The bureau dashboard (and ``docsign pki status``) warns about a certificate this long before it expires.
WARN_WITHIN = dt.timedelta(days=90)

CA_LABELS = {"root": "根证书", "issuing": "签发中心证书"}
#: The first issuing CA publishes ``issuing.crl``; each one after it ``issuing-<n>.crl``.
FIRST_ISSUING = "issuing"
CA_NAME = re.compile(r"^(root|issuing(-[0-9]{1,4})?)$")
ISSUING_FILES = ("ca.key", "name", "ca.crt")
#: Revocation reasons ``docsign pki revoke --reason`` accepts, with the words people read.
REVOCATION_REASONS: dict[str, tuple[x509.ReasonFlags, str]] = {
    "unspecified": (x509.ReasonFlags.unspecified, "未说明原因"),
    "key_compromise": (x509.ReasonFlags.key_compromise, "私钥泄露"),
    "affiliation_changed": (x509.ReasonFlags.affiliation_changed, "单位信息变更"),
    "superseded": (x509.ReasonFlags.superseded, "证书已被替换"),
    "cessation_of_operation": (x509.ReasonFlags.cessation_of_operation, "单位停止使用"),
}
UNIT_FILES = ("key.pem", "chain.pem", "cert.crt", "unit.json")
TSA_FILES = ("tsa.key", "tsa.crt")
_STAGE, _READY = ".next", ".ready"

#: Files changed by atomic replacement get a new inode: (inode, mtime, size) tells a process that
#: another one has renewed what it keeps in memory.
_Stamp = tuple[int, int, int]


def _system_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _years(n: int) -> dt.timedelta:
    return dt.timedelta(days=365 * n)


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _name(common_name: str, organization: str, unit: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
    ]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def useful_until(cert: x509.Certificate, sunsets: AlgorithmSunsets = DEFAULT_SUNSETS) -> dt.datetime:
    """Until when what ``cert``'s key signs stays provable: its expiry, or the day its key size
    becomes weak (SHA-256 signatures), whichever comes first."""
    info = keys.PublicKeyInfo.load(
        cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    weak = sunsets.weak_from("sha256", info)
    return min(cert.not_valid_after_utc, weak[0]) if weak else cert.not_valid_after_utc


def _common_name(cert: x509.Certificate) -> str:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else cert.subject.rfc4514_string()


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


def _ca_label(name: str) -> str:
    """根证书, 签发中心证书, or 第2代签发中心证书 for ``issuing-2``."""
    if name.startswith("issuing-"):
        return f"第{name.split('-', 1)[1]}代{CA_LABELS['issuing']}"
    return CA_LABELS[name]


def _date(when: dt.datetime) -> str:
    """A time as people here read it: local date and minute."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


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


@dataclass(frozen=True)
class PublishedCrl:
    """A CRL re-signed by :meth:`Pki.refresh_crls`."""

    which: str
    number: int
    this_update: dt.datetime
    next_update: dt.datetime


@dataclass(frozen=True)
class Revocation:
    """One revoked certificate as ``revoked.json`` keeps it."""

    serial: int
    #: The revocation time the CRL lists: when it was revoked, or for a key compromise the time the
    #: key is known to have been out of control since (signatures after it fail).
    at: dt.datetime
    reason: str  # a key of REVOCATION_REASONS
    #: Which CA's CRL lists it (the issuing CA that issued the certificate).
    ca: str

    @classmethod
    def load(cls, serial: str, value: str | dict[str, str]) -> Revocation:
        if isinstance(value, str):  # written before reasons were kept: the first issuing CA's
            return cls(int(serial), dt.datetime.fromisoformat(value), "unspecified", FIRST_ISSUING)
        return cls(int(serial), dt.datetime.fromisoformat(value["at"]), value["reason"], value["ca"])

    def dump(self) -> dict[str, str]:
        return {"at": self.at.isoformat(), "reason": self.reason, "ca": self.ca}


@dataclass(frozen=True)
class IssuingRollover:
    """A new issuing CA; the one it replaces keeps publishing its CRL until it expires."""

    old_name: str
    new_name: str
    new_serial: int
    expires: dt.datetime


@dataclass(frozen=True)
class RenewedUnit:
    """A unit certificate replaced by a new key and certificate with the same subject."""

    key: str
    name: str
    old_serial: int
    new_serial: int
    expires: dt.datetime


@dataclass(frozen=True)
class TsaRollover:
    """The TSA's new key and certificate; the old certificate stays in ``tsa/history/``."""

    old_serial: int
    new_serial: int
    expires: dt.datetime


@dataclass(frozen=True)
class StatusItem:
    """One thing that expires: a certificate (``valid_from``/``expires`` are notBefore/notAfter) or a
    CRL (thisUpdate/nextUpdate)."""

    kind: str  # "root", "issuing", "tsa", "unit" or "crl"
    label: str  # what it is, in Chinese: 根证书, 签发中心证书, 时间戳证书, 单位签章证书, 吊销列表
    name: str  # the certificate's common name, or whose CRL it is
    key: str | None  # a unit's key; "root" or "issuing" for a CRL
    serial: int | None  # certificate serial, or CRL number
    valid_from: dt.datetime
    expires: dt.datetime
    #: When :meth:`Pki.maintain` replaces it; None when nothing here does (CAs, imported or revoked
    #: certificates).
    renews_from: dt.datetime | None
    days_left: int
    #: The dashboard should warn: a certificate expires within :data:`WARN_WITHIN`, or a CRL is
    #: within :data:`CRL_REFRESH_MARGIN` of its nextUpdate (a 30-day CRL is always within 90 days;
    #: inside the margin it means nobody re-published it).
    warn: bool
    revoked: bool = False
    note: str = ""


@dataclass(frozen=True)
class PkiStatus:
    at: dt.datetime
    items: list[StatusItem]

    @property
    def warnings(self) -> list[StatusItem]:
        return [i for i in self.items if i.warn]


@dataclass(frozen=True)
class MaintenanceReport:
    """What one :meth:`Pki.maintain` run did."""

    at: dt.datetime
    crls: list[PublishedCrl]
    renewed: list[RenewedUnit]
    tsa: TsaRollover | None
    issuing: IssuingRollover | None
    #: Things due that this run could not do, in Chinese (an imported certificate near expiry, the
    #: issuing CA too close to its end); they need a person.
    attention: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.crls or self.renewed or self.tsa or self.issuing)

    def lines(self) -> list[str]:
        """The report in Chinese, a line per action."""
        out = []
        if self.issuing is not None:
            out.append(
                f"已启用新的签发中心证书（{self.issuing.new_name}，序列号 {self.issuing.new_serial:x}），"
                f"有效期至 {_date(self.issuing.expires)}；原签发中心（{self.issuing.old_name}）继续发布吊销列表至其到期"
            )
        out += [
            f"已重新发布{_ca_label(c.which)}的吊销列表（编号 {c.number}），下次更新 {_date(c.next_update)}"
            for c in self.crls
        ]
        out += [
            f"已为单位「{r.name}」（{r.key}）续期签章证书：新序列号 {r.new_serial:x}，有效期至 {_date(r.expires)}；"
            f"旧证书 {r.old_serial:x} 保留，用于验证此前签署的文书"
            for r in self.renewed
        ]
        if self.tsa is not None:
            out.append(
                f"已更换时间戳证书：新序列号 {self.tsa.new_serial:x}，有效期至 {_date(self.tsa.expires)}；"
                f"旧证书 {self.tsa.old_serial:x} 保留，用于验证此前的时间戳"
            )
        out += [f"需要人工处理：{a}" for a in self.attention]
        if not out:
            out.append("无需处理：证书和吊销列表都未到续期时间。")
        return out


class Pki:
    """The certificate store; thread-safe, and safe for several processes through a lock file."""

    def __init__(
        self,
        certs_dir: Path,
        passphrase: str,
        organization: str,
        public_base_url: str,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.dir = Path(certs_dir)
        self._passphrase = passphrase.encode()
        self.organization = organization
        self.public_base_url = public_base_url.rstrip("/")
        #: The time every certificate, CRL and expiry check uses; tests move it by years.
        self._now = now or _system_now
        self._lock = threading.RLock()
        self._depth = 0
        self._units: dict[str, tuple[_Stamp, UnitCredentials]] = {}
        self._tsa: tuple[_Stamp, UnitCredentials] | None = None
        self._ca_cache: dict[str, tuple[_Stamp, x509.Certificate, CertificateIssuerPrivateKeyTypes]] = {}

    # --- files --------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This thread alone, and this process alone among those sharing ``certs/``; re-entrant."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.dir / ".lock", "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
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

    @staticmethod
    def _stage(d: Path) -> Path:
        """An empty ``.next/`` in ``d`` for a new key and certificate; under the lock."""
        stage = d / _STAGE
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        os.chmod(d, 0o700)
        os.chmod(stage, 0o700)
        return stage

    def _commit(self, d: Path, files: Sequence[str], cert_name: str) -> None:
        """Move a staged key and certificate into place, the certificate they replace into
        ``history/``; under the lock. A stage is complete once ``.ready`` is written; a complete one
        that a crash left behind is finished here, an incomplete one thrown away, so a reader never
        pairs a new key with an old certificate. ``files`` are moved in order: the last one is what
        other processes watch for a change."""
        stage = d / _STAGE
        if not stage.is_dir():
            return
        if not (stage / _READY).exists():
            shutil.rmtree(stage)
            return
        staged, current = stage / cert_name, d / cert_name
        if staged.exists() and current.exists():
            old = self._load_cert(current)
            if old.serial_number != self._load_cert(staged).serial_number:
                kept = d / "history" / f"{old.serial_number}.crt"
                if not kept.exists():
                    self._save_cert(kept, old)
        for name in files:
            if (stage / name).exists():
                os.replace(stage / name, d / name)
        (stage / _READY).unlink()
        stage.rmdir()

    @staticmethod
    def _history(d: Path, current: Path) -> list[x509.Certificate]:
        """Certificates kept in ``d/history/`` and the current one, oldest first."""
        certs = [x509.load_pem_x509_certificate(p.read_bytes()) for p in (d / "history").glob("*.crt")]
        if current.exists():
            certs.append(x509.load_pem_x509_certificate(current.read_bytes()))
        return sorted(certs, key=lambda c: (c.not_valid_before_utc, c.serial_number))

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
        life: dt.timedelta,
        *,
        at: dt.datetime,
        ca: bool,
        path_length: int | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        crl: str | None = None,
        leaf: bool = False,
    ) -> x509.Certificate:
        """A certificate valid from ``at`` for ``life``, but never past its issuer's notAfter: a chain
        is no longer valid than its shortest link, and the status should say so."""
        start = at - BACKDATE
        end = start + life
        if leaf:
            # A unit's certificate never starts after the moment it is really made: a service whose
            # clock runs ahead (a test's, moved days on) signs with it today as well.
            start = min(at, _system_now()) - BACKDATE
        issuer_name = subject
        if issuer is not None:
            if issuer.not_valid_after_utc <= at:
                raise IssuingCaExpiring(
                    f"签发中心证书已于 {_date(issuer.not_valid_after_utc)} 到期，不能再签发证书。"
                    "请联系系统管理员更换签发中心证书。"
                )
            end = min(end, issuer.not_valid_after_utc)
            issuer_name = issuer.subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
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
                at = self._now()
                org = self.organization
                root_key = rsa.generate_private_key(65537, 3072)
                root = self._build(
                    _name("根证书", org),
                    root_key.public_key(),
                    None,
                    root_key,
                    _years(ROOT_YEARS),
                    at=at,
                    ca=True,
                    path_length=1,
                )
                issuing_key = rsa.generate_private_key(65537, CA_KEY_BITS)
                issuing = self._build(
                    _name("签章证书签发中心", org),
                    issuing_key.public_key(),
                    root,
                    root_key,
                    _years(ISSUING_YEARS),
                    at=at,
                    ca=True,
                    path_length=0,
                    crl=self._crl_url("root"),
                )
                tsa_key = rsa.generate_private_key(65537, CA_KEY_BITS)
                tsa = self._build(
                    _name("时间戳服务", org, "时间戳"),
                    tsa_key.public_key(),
                    issuing,
                    issuing_key,
                    _years(TSA_YEARS),
                    at=at,
                    ca=False,
                    eku=[ExtendedKeyUsageOID.TIME_STAMPING],
                    crl=self._crl_url(FIRST_ISSUING),
                )
                self._save_key(self.dir / "tsa" / "tsa.key", tsa_key)
                self._save_cert(self.dir / "tsa" / "tsa.crt", tsa)
                self._save_key(self.dir / "root" / "ca.key", root_key)
                self._save_cert(self.dir / "root" / "ca.crt", root)
                self._save_key(self.dir / "issuing" / "ca.key", issuing_key)
                self._save_cert(self.dir / "issuing" / "ca.crt", issuing)
                _write_atomic(self.dir / "revoked.json", b"{}\n")
                for which in ("root", FIRST_ISSUING):
                    self._sign_crl(which, at)
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
        """The current issuing CA's certificate (the one that issues new certificates)."""
        self._require()
        return self._current_ca()[0]

    def issuing_certificates(self) -> list[x509.Certificate]:
        """Every issuing CA certificate this PKI has had, oldest first; the last is the current one.
        Old documents' chains end in the earlier ones."""
        self._require()
        self.issuing_certificate()  # finishes a rollover a crash interrupted
        return self._history(self.dir / "issuing", self.dir / "issuing" / "ca.crt")

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

    def _issuing_name(self) -> str:
        """The current issuing CA's name: ``issuing``, then ``issuing-2``, ... after each rollover."""
        try:
            return (self.dir / "issuing" / "name").read_text(encoding="utf-8").strip() or FIRST_ISSUING
        except FileNotFoundError:
            return FIRST_ISSUING

    def _ca_dir(self, which: str) -> Path:
        """Where a CA's key and certificate are, by the name its CRL is published under: ``root``,
        the current issuing CA's (``issuing/``) or a retired one's (``issuing/retired/<name>/``)."""
        if which == "root":
            return self.dir / "root"
        if which == self._issuing_name():
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
        self._require()
        names = ["root", self._issuing_name()]
        retired = self.dir / "issuing" / "retired"
        if retired.is_dir():
            at = self._now()
            for d in sorted(retired.iterdir()):
                live = CA_NAME.match(d.name) and d.name not in names and (d / "ca.crt").exists()
                if live and self._load_cert(d / "ca.crt").not_valid_after_utc > at:
                    names.append(d.name)
        return names

    def _current_ca(self) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
        """The issuing CA that issues new certificates now."""
        return self._ca(self._issuing_name())

    def _ca(self, which: str) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
        """A CA's certificate and key, read again when another process has replaced them."""
        d = self._ca_dir(which)
        if d == self.dir / "issuing" and (d / _STAGE).exists():
            with self._locked():
                self._commit(d, ISSUING_FILES, "ca.crt")
        stamp = _stamp(d / "ca.crt")
        key = str(d)
        with self._lock:
            cached = self._ca_cache.get(key)
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1], cached[2]
        self._require()
        cert = self._load_cert(d / "ca.crt")
        private = self._load_key(d / "ca.key")
        assert isinstance(private, rsa.RSAPrivateKey)
        if stamp is not None:
            with self._lock:
                self._ca_cache[key] = (stamp, cert, private)
        return cert, private

    def trust_roots(self) -> list[x509.Certificate]:
        """The local root and any extra roots placed in certs/trust/."""
        roots = [self.root_certificate()]
        trust = self.dir / "trust"
        if trust.is_dir():
            for path in sorted(trust.glob("*.crt")) + sorted(trust.glob("*.pem")):
                roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        return roots

    def tsa(self) -> tuple[x509.Certificate, PrivateKeyTypes]:
        """The current TSA certificate and key; reloaded when another process has rolled them over."""
        stamp = _stamp(self.dir / "tsa" / "tsa.crt")
        with self._lock:
            cached = self._tsa
        if cached is not None and stamp is not None and cached[0] == stamp:
            creds = cached[1]
        else:
            self._require()
            with self._locked():
                creds = self._load_tsa()
        return creds.certificate, creds.private_key

    def _load_tsa(self) -> UnitCredentials:
        d = self.dir / "tsa"
        self._commit(d, TSA_FILES, "tsa.crt")
        cert = self._load_cert(d / "tsa.crt")
        creds = UnitCredentials("tsa", "TSA", cert, self._load_key(d / "tsa.key"), self.chain_for(cert))
        stamp = _stamp(d / "tsa.crt")
        assert stamp is not None
        self._tsa = (stamp, creds)
        return creds

    def tsa_certificates(self) -> list[x509.Certificate]:
        """Every TSA certificate this PKI has used, oldest first; the last is the current one."""
        self._require()
        return self._history(self.dir / "tsa", self.dir / "tsa" / "tsa.crt")

    def rollover_tsa(
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
        at the latest (see :meth:`_build`); when that CA has expired this raises
        :class:`IssuingCaExpiring`."""
        self._require()
        at = now or self._now()
        with self._locked():
            current = self._load_tsa().certificate
            issuing, issuing_key = self._current_ca()
            reach = min(useful_until(current), *(useful_until(c) for c in self.chain_for(current)))
            short = reach - at <= min_reach and useful_until(issuing) > reach
            if not force and not short and at - current.not_valid_before_utc < key_use:
                return None
            new_key = rsa.generate_private_key(65537, CA_KEY_BITS)
            cert = self._build(
                current.subject,
                new_key.public_key(),
                issuing,
                issuing_key,
                _years(TSA_YEARS),
                at=at,
                ca=False,
                eku=[ExtendedKeyUsageOID.TIME_STAMPING],
                crl=self._crl_url(self._issuing_name()),
            )
            d = self.dir / "tsa"
            stage = self._stage(d)
            self._save_key(stage / "tsa.key", new_key)
            self._save_cert(stage / "tsa.crt", cert)
            _write_atomic(stage / _READY, b"")
            self._commit(d, TSA_FILES, "tsa.crt")
            self._tsa = None
        return TsaRollover(current.serial_number, cert.serial_number, cert.not_valid_after_utc)

    def rollover_issuing(
        self, margin: dt.timedelta = ISSUING_ROLLOVER, *, now: dt.datetime | None = None
    ) -> IssuingRollover | None:
        """Replace the issuing CA once its useful life (expiry or key weakness) is within
        ``margin``: a new key and certificate from the root (``签章证书签发中心（第n代）``), whose CRL
        is published as ``issuing-<n>.crl``. The old CA's key and certificate move to
        ``issuing/retired/<name>/``; it keeps publishing its CRL (revocations of what it issued)
        until it expires. None when not due; :class:`IssuingCaExpiring` when the root cannot give
        a new CA a useful life (a person must replace the root)."""
        self._require()
        at = now or self._now()
        with self._locked():
            current, current_key = self._current_ca()
            if useful_until(current) - at > margin:
                return None
            root, root_key = self._ca("root")
            if useful_until(root) - at <= margin:
                raise IssuingCaExpiring(
                    f"根证书将于 {_date(root.not_valid_after_utc)} 到期，无法再签发新的签发中心证书。"
                    "请联系系统管理员更换根证书。"
                )
            old_name = self._issuing_name()
            generation = int(old_name.split("-", 1)[1]) + 1 if "-" in old_name else 2
            new_name = f"{FIRST_ISSUING}-{generation}"
            retired = self.dir / "issuing" / "retired" / old_name
            self._save_key(retired / "ca.key", current_key)
            self._save_cert(retired / "ca.crt", current)
            new_key = rsa.generate_private_key(65537, CA_KEY_BITS)
            cert = self._build(
                _name(f"签章证书签发中心（第{generation}代）", self.organization),
                new_key.public_key(),
                root,
                root_key,
                _years(ISSUING_YEARS),
                at=at,
                ca=True,
                path_length=0,
                crl=self._crl_url("root"),
            )
            d = self.dir / "issuing"
            stage = self._stage(d)
            self._save_key(stage / "ca.key", new_key)
            _write_atomic(stage / "name", new_name.encode())
            self._save_cert(stage / "ca.crt", cert)
            _write_atomic(stage / _READY, b"")
            self._commit(d, ISSUING_FILES, "ca.crt")
            self._sign_crl(new_name, at)
        return IssuingRollover(old_name, new_name, cert.serial_number, cert.not_valid_after_utc)

    def _revoked(self) -> dict[str, Revocation]:
        try:
            data: dict[str, str | dict[str, str]] = json.loads((self.dir / "revoked.json").read_text())
        except FileNotFoundError:
            data = {}
        return {serial: Revocation.load(serial, value) for serial, value in data.items()}

    def _read_crl(self, which: str) -> x509.CertificateRevocationList | None:
        try:
            return x509.load_der_x509_crl((self.dir / "crl" / f"{which}.crl").read_bytes())
        except FileNotFoundError:
            return None

    def crl(self, which: str) -> x509.CertificateRevocationList | None:
        """The CRL published as ``/pki/<which>.crl``, or None for a name no CA of ours has."""
        if not CA_NAME.match(which) or which not in self.ca_names():
            return None
        self.crls()  # re-signed first when stale
        return self._read_crl(which)

    def _sign_crl(self, which: str, at: dt.datetime) -> PublishedCrl:
        """Re-sign one CA's CRL at ``at`` with the revoked serials it must list (with their reasons)
        and a CRL number above the last one's; under the lock."""
        cert, key = self._ca(which)
        if which == "root":
            days, revoked = ROOT_CRL_DAYS, []
        else:
            days, revoked = CRL_DAYS, [r for r in self._revoked().values() if r.ca == which]
        number = int(at.timestamp())
        previous = self._read_crl(which)
        if previous is not None:
            with suppress(x509.ExtensionNotFound):  # a CRL without a number: any number is above it
                number = max(number, previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1)
        this_update, next_update = at - BACKDATE, at + dt.timedelta(days=days)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        for r in revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(r.at)
            if r.reason != "unspecified":  # RFC 5280: leave the reason out rather than say unspecified
                entry = entry.add_extension(x509.CRLReason(REVOCATION_REASONS[r.reason][0]), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(key, hashes.SHA256())
        _write_atomic(self.dir / "crl" / f"{which}.crl", crl.public_bytes(serialization.Encoding.DER))
        return PublishedCrl(which, number, this_update, next_update)

    def _crl_due(
        self, which: str, crl: x509.CertificateRevocationList | None, at: dt.datetime, margin: dt.timedelta | None
    ) -> bool:
        """Whether a CRL must be re-signed: missing, within ``margin`` of its nextUpdate (None: less
        than half its validity left), or not listing every revoked serial (a revocation a crash
        interrupted before the CRL was written)."""
        if crl is None or crl.next_update_utc is None:
            return True
        left = crl.next_update_utc - at
        if left <= (margin if margin is not None else (crl.next_update_utc - crl.last_update_utc) / 2):
            return True
        if margin is not None and which != "root":
            listed = {r.serial_number for r in crl}
            return {r.serial for r in self._revoked().values() if r.ca == which} != listed
        return False

    def crls(self) -> list[x509.CertificateRevocationList]:
        """Current CRLs of every CA that publishes one (root, issuing CAs), re-signed first when
        less than half their validity remains: signing keeps them fresh even where no scheduled job
        runs."""
        self._require()
        at = self._now()
        names = self.ca_names()
        crls = [self._read_crl(w) for w in names]
        if any(self._crl_due(w, c, at, None) for w, c in zip(names, crls, strict=True)):
            with self._locked():
                for w in names:
                    if self._crl_due(w, self._read_crl(w), at, None):
                        self._sign_crl(w, at)
                crls = [self._read_crl(w) for w in names]
        return [c for c in crls if c is not None]

    def refresh_crls(
        self, margin: dt.timedelta = CRL_REFRESH_MARGIN, *, now: dt.datetime | None = None
    ) -> list[PublishedCrl]:
        """Re-sign each CA's CRL whose nextUpdate is within ``margin`` (same revoked entries, new
        thisUpdate/nextUpdate, a higher CRL number); the files stay where ``/pki/{which}.crl``
        serves them. Returns the CRLs re-signed, none when nothing was due."""
        self._require()
        at = now or self._now()
        with self._locked():
            return [self._sign_crl(w, at) for w in self.ca_names() if self._crl_due(w, self._read_crl(w), at, margin)]

    # --- units --------------------------------------------------------------------------------

    def _unit_dir(self, key: str) -> Path:
        if not UNIT_KEY.match(key):
            raise UnitKeyInvalid(f"单位标识「{key}」无效：只能包含小写字母、数字、短横线和下划线。")
        return self.dir / "units" / key

    def has_unit(self, key: str) -> bool:
        return (self._unit_dir(key) / "cert.crt").exists()

    def unit_keys(self) -> list[str]:
        """Keys of every unit with a certificate, sorted."""
        units = self.dir / "units"
        if not units.is_dir():
            return []
        return sorted(p.parent.name for p in units.glob("*/cert.crt") if UNIT_KEY.match(p.parent.name))

    def unit(self, key: str) -> UnitCredentials:
        """A unit's current credentials, loaded once (again after a renewal, by this process or
        another); refused if the certificate is revoked or expired."""
        d = self._unit_dir(key)
        stamp = _stamp(d / "unit.json")
        with self._lock:
            cached = self._units.get(key)
        if cached is not None and stamp is not None and cached[0] == stamp:
            creds = cached[1]
        else:
            self._require()
            with self._locked():
                creds = self._load_unit(key, d)
        if str(creds.certificate.serial_number) in self._revoked():
            raise CertificateRevoked(f"单位「{creds.name}」的签章证书已吊销，不能再用于签署。请重新签发证书。")
        if creds.certificate.not_valid_after_utc < self._now():
            raise CertificateExpired(
                f"单位「{creds.name}」的签章证书已于 {creds.certificate.not_valid_after_utc:%Y-%m-%d} 过期。"
            )
        return creds

    def _load_unit(self, key: str, d: Path) -> UnitCredentials:
        """Read a unit's files; under the lock, so never halfway through a renewal."""
        self._commit(d, UNIT_FILES, "cert.crt")
        if not (d / "cert.crt").exists():
            raise UnitCertificateMissing(f"单位「{key}」还没有签章证书，请先签发或导入证书。")
        meta = json.loads((d / "unit.json").read_text(encoding="utf-8"))
        cert = self._load_cert(d / "cert.crt")
        chain_path = d / "chain.pem"
        chain_pem = chain_path.read_bytes() if chain_path.exists() else b""
        chain = x509.load_pem_x509_certificates(chain_pem) if chain_pem.strip() else []
        creds = UnitCredentials(key, meta["name"], cert, self._load_key(d / "key.pem"), chain)
        stamp = _stamp(d / "unit.json")
        if stamp is not None:
            self._units[key] = (stamp, creds)
        return creds

    def unit_certificates(self, key: str) -> list[x509.Certificate]:
        """Every certificate a unit has signed with, oldest first; the last is the current one."""
        d = self._unit_dir(key)
        if not (d / "cert.crt").exists():
            raise UnitCertificateMissing(f"单位「{key}」没有签章证书。")
        return self._history(d, d / "cert.crt")

    def issue_unit(self, key: str, name: str, *, replace: bool = False) -> UnitCredentials:
        """Issue a signing certificate for a unit from the local issuing CA. With ``replace`` the
        unit gets a new key and certificate under ``name``; the one it replaces moves to history."""
        d = self._unit_dir(key)
        name = name.strip()
        if not name or len(name.encode()) > 64:
            raise UnitKeyInvalid("单位名称不能为空，且不能超过21个汉字（证书名称长度限制）。")
        with self._locked():
            self._commit(d, UNIT_FILES, "cert.crt")
            if (d / "cert.crt").exists() and not replace:
                meta = json.loads((d / "unit.json").read_text(encoding="utf-8"))
                if meta["name"] != name:
                    raise UnitNameMismatch(
                        f"单位标识「{key}」已有证书，证书上的名称是「{meta['name']}」，与「{name}」不一致。"
                    )
            else:
                issuing, issuing_key = self._current_ca()
                key_obj = rsa.generate_private_key(65537, KEY_BITS)
                cert = self._build(
                    _name(name, name, "电子签章"),
                    key_obj.public_key(),
                    issuing,
                    issuing_key,
                    _years(LEAF_YEARS),
                    at=self._now(),
                    ca=False,
                    crl=self._crl_url(self._issuing_name()),
                    leaf=True,
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
        """Stage a unit's new key, chain, certificate and record, then commit them; under the lock."""
        stage = self._stage(d)
        self._save_key(stage / "key.pem", private_key)
        _write_atomic(stage / "chain.pem", b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
        self._save_cert(stage / "cert.crt", cert)
        meta = {"key": key, "name": name, "source": source, "serial": str(cert.serial_number)}
        _write_atomic(stage / "unit.json", json.dumps(meta, ensure_ascii=False, indent=2).encode())
        _write_atomic(stage / _READY, b"")
        self._commit(d, UNIT_FILES, "cert.crt")

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
            self._commit(d, UNIT_FILES, "cert.crt")
            self._store_unit(d, key, unit_name, cert, private_key, list(extra or []), "pkcs12")
            self._units.pop(key, None)
        return self.unit(key)

    def revoke_unit(self, key: str, reason: str = "unspecified", *, since: dt.datetime | None = None) -> str:
        """Revoke a unit's current certificate; the issuing CA's CRL lists it at once, with
        ``reason`` (a key of :data:`REVOCATION_REASONS`). For a key compromise, ``since`` backdates
        the revocation to when the key is known to have left the unit's control: signatures made
        after it fail, earlier ones stay genuine. Returns the revoked serial.

        Earlier certificates in the unit's history are not revoked: their keys were discarded when
        they were replaced, so nothing can sign with them any more, and the documents they signed
        stay valid. A revoked unit is not renewed by :meth:`maintain`; :meth:`issue_unit` with
        ``replace`` or :meth:`renew_unit` gives it a new certificate."""
        if reason not in REVOCATION_REASONS:
            allowed = "、".join(f"{k}（{v[1]}）" for k, v in REVOCATION_REASONS.items())
            raise RevocationInvalid(f"吊销原因「{reason}」无效，可选：{allowed}。")
        d = self._unit_dir(key)
        if not (d / "cert.crt").exists():
            raise UnitCertificateMissing(f"单位「{key}」没有签章证书。")
        with self._locked():
            self._commit(d, UNIT_FILES, "cert.crt")
            cert = self._load_cert(d / "cert.crt")
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
                        f"泄露开始时间应在证书生效（{_date(cert.not_valid_before_utc)}）之后、现在之前。"
                    )
                at = since
            issuer = next(
                (n for n in self.ca_names()[1:] if self._ca(n)[0].subject == cert.issuer), self._issuing_name()
            )
            revoked = {s: r.dump() for s, r in self._revoked().items()}
            revoked.setdefault(str(cert.serial_number), Revocation(cert.serial_number, at, reason, issuer).dump())
            _write_atomic(self.dir / "revoked.json", json.dumps(revoked, indent=2).encode())
            self._sign_crl(issuer, now)
            self._units.pop(key, None)
        return str(cert.serial_number)

    def renew_unit(self, key: str, *, now: dt.datetime | None = None) -> RenewedUnit:
        """A new key and certificate for a unit, with the same subject, from the local issuing CA.
        New signatures use it; the old certificate moves to ``units/<key>/history/`` and its key is
        discarded. Refused for an imported certificate (:class:`CertificateNotRenewable`) and when
        the issuing CA ends before the new certificate would outlast the old one
        (:class:`IssuingCaExpiring`)."""
        d = self._unit_dir(key)
        self._require()
        at = now or self._now()
        new_key = rsa.generate_private_key(65537, KEY_BITS)
        with self._locked():
            return self._renew(key, d, new_key, at)

    def _renew(
        self, key: str, d: Path, new_key: rsa.RSAPrivateKey, at: dt.datetime, *, force: bool = False
    ) -> RenewedUnit:
        self._commit(d, UNIT_FILES, "cert.crt")
        if not (d / "cert.crt").exists():
            raise UnitCertificateMissing(f"单位「{key}」没有签章证书。")
        meta = json.loads((d / "unit.json").read_text(encoding="utf-8"))
        current = self._load_cert(d / "cert.crt")
        if meta.get("source") != "local":
            raise CertificateNotRenewable(
                f"单位「{meta['name']}」使用导入的证书（{current.not_valid_after_utc:%Y-%m-%d} 到期），"
                "本地证书中心不能为其续期。请向发证机构申请新证书后用 docsign pki import 导入。"
            )
        issuing, issuing_key = self._current_ca()
        cert = self._build(
            current.subject,
            new_key.public_key(),
            issuing,
            issuing_key,
            _years(LEAF_YEARS),
            at=at,
            ca=False,
            crl=self._crl_url(self._issuing_name()),
            leaf=True,
        )
        if cert.not_valid_after_utc <= current.not_valid_after_utc and not force:
            raise IssuingCaExpiring(
                f"签发中心证书将于 {_date(issuing.not_valid_after_utc)} 到期，单位「{meta['name']}」的新证书"
                "不能比现有证书有效更久，未续期。请联系系统管理员更换签发中心证书。"
            )
        self._store_unit(d, key, meta["name"], cert, new_key, [issuing, self.root_certificate()], "local")
        self._units.pop(key, None)
        return RenewedUnit(key, meta["name"], current.serial_number, cert.serial_number, cert.not_valid_after_utc)

    def _renewal_due(self, d: Path, at: dt.datetime, margin: dt.timedelta) -> bool:
        """A unit's current certificate is not revoked and expires within ``margin``, or (for one
        from the local CA) was issued by an issuing CA that has since been replaced."""
        path = d / "cert.crt"
        if not path.exists():
            return False
        cert = self._load_cert(path)
        if str(cert.serial_number) in self._revoked():
            return False
        if cert.not_valid_after_utc - at <= margin:
            return True
        meta = json.loads((d / "unit.json").read_text(encoding="utf-8"))
        return meta.get("source") == "local" and cert.issuer != self.issuing_certificate().subject

    def renew_expiring(
        self, margin: dt.timedelta = UNIT_RENEW_MARGIN, *, now: dt.datetime | None = None
    ) -> list[RenewedUnit]:
        """Renew every unit certificate that expires within ``margin`` (see :meth:`renew_unit`);
        revoked ones are left alone, and those that cannot be renewed here are skipped (listed
        by :meth:`maintain`). Running it again renews nothing."""
        return self._renew_expiring(margin, now or self._now())[0]

    def _renew_expiring(self, margin: dt.timedelta, at: dt.datetime) -> tuple[list[RenewedUnit], list[str]]:
        self._require()
        renewed: list[RenewedUnit] = []
        attention: list[str] = []
        for key in self.unit_keys():
            d = self._unit_dir(key)
            if not self._renewal_due(d, at, margin):
                continue
            new_key = rsa.generate_private_key(65537, KEY_BITS)  # outside the lock: signers wait less
            with self._locked():
                self._commit(d, UNIT_FILES, "cert.crt")
                if not self._renewal_due(d, at, margin):
                    continue  # another process renewed it meanwhile
                try:
                    renewed.append(self._renew(key, d, new_key, at, force=True))
                except (CertificateNotRenewable, IssuingCaExpiring) as exc:
                    attention.append(exc.message)
        return renewed, attention

    # --- upkeep -------------------------------------------------------------------------------

    def maintain(self, now: dt.datetime | None = None) -> MaintenanceReport:
        """Everything the PKI needs to stay alive, once: replace the issuing CA near the end of its
        useful life (:data:`ISSUING_ROLLOVER`), re-publish CRLs near their nextUpdate
        (:data:`CRL_REFRESH_MARGIN`), renew unit certificates near expiry (:data:`UNIT_RENEW_MARGIN`)
        or issued by a replaced CA, roll the TSA over (:data:`TSA_KEY_USE`, :data:`TSA_MIN_REACH`,
        and at once after a new issuing CA). Idempotent: a second run finds nothing due. Meant for
        a scheduled job (daily); safe while other processes sign."""
        self._require()
        at = now or self._now()
        attention: list[str] = []
        issuing = None
        try:
            issuing = self.rollover_issuing(ISSUING_ROLLOVER, now=at)
        except IssuingCaExpiring as exc:
            attention.append(exc.message)
        crls = self.refresh_crls(CRL_REFRESH_MARGIN, now=at)
        renewed, unrenewed = self._renew_expiring(UNIT_RENEW_MARGIN, at)
        attention += unrenewed
        tsa = None
        try:
            tsa = self.rollover_tsa(TSA_KEY_USE, now=at, force=issuing is not None)
        except IssuingCaExpiring as exc:
            attention.append(exc.message)
        return MaintenanceReport(at, crls, renewed, tsa, issuing, attention)

    def status(self, now: dt.datetime | None = None, *, warn_within: dt.timedelta = WARN_WITHIN) -> PkiStatus:
        """What expires when: the two CAs, the TSA, both CRLs (nextUpdate), then every unit's current
        certificate, soonest first; ``warn`` marks what the dashboard should warn about."""
        self._require()
        at = now or self._now()

        def item(
            kind: str,
            label: str,
            cert: x509.Certificate,
            key: str | None,
            renews_from: dt.datetime | None,
            revoked: bool = False,
            note: str = "",
        ) -> StatusItem:
            expires = cert.not_valid_after_utc
            return StatusItem(
                kind=kind,
                label=label,
                name=_common_name(cert),
                key=key,
                serial=cert.serial_number,
                valid_from=cert.not_valid_before_utc,
                expires=expires,
                renews_from=renews_from,
                days_left=(expires - at).days,
                warn=not revoked and expires - at <= warn_within,
                revoked=revoked,
                note=note,
            )

        issuing = self.issuing_certificate()
        items = [
            item("root", CA_LABELS["root"], self.root_certificate(), None, None, note="到期前需人工更换"),
            item("issuing", CA_LABELS["issuing"], issuing, None, useful_until(issuing) - ISSUING_ROLLOVER),
        ]
        for name in self.ca_names()[2:]:
            retired = self._ca(name)[0]
            items.append(item("issuing", _ca_label(name), retired, name, None, note="已停止签发，仍发布吊销列表"))
        tsa = self._load_cert(self.dir / "tsa" / "tsa.crt")
        reach = min(useful_until(tsa), *(useful_until(c) for c in self.chain_for(tsa)))
        items.append(
            item("tsa", "时间戳证书", tsa, None, min(tsa.not_valid_before_utc + TSA_KEY_USE, reach - TSA_MIN_REACH))
        )
        for which in self.ca_names():
            crl = self._read_crl(which)
            if crl is None or crl.next_update_utc is None:
                continue
            try:
                number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            except x509.ExtensionNotFound:
                number = None
            republish = crl.next_update_utc - CRL_REFRESH_MARGIN
            items.append(
                StatusItem(
                    kind="crl",
                    label="吊销列表",
                    name=f"{_ca_label(which)}的吊销列表",
                    key=which,
                    serial=number,
                    valid_from=crl.last_update_utc,
                    expires=crl.next_update_utc,
                    renews_from=republish,
                    days_left=(crl.next_update_utc - at).days,
                    warn=at >= republish,
                )
            )
        revoked = self._revoked()
        units = []
        for key in self.unit_keys():
            d = self.dir / "units" / key
            meta = json.loads((d / "unit.json").read_text(encoding="utf-8"))
            cert = self._load_cert(d / "cert.crt")
            is_revoked = str(cert.serial_number) in revoked
            imported = meta.get("source") != "local"
            note = "已吊销" if is_revoked else "导入的证书，需向发证机构申请新证书" if imported else ""
            renews_from = None if is_revoked or imported else cert.not_valid_after_utc - UNIT_RENEW_MARGIN
            units.append(item("unit", "单位签章证书", cert, key, renews_from, is_revoked, note))
        units.sort(key=lambda i: (i.expires, i.key or ""))
        return PkiStatus(at, items + units)
