"""The local PKI under ``certs/``: root CA -> issuing CA -> one signing certificate per unit, a TSA
certificate, and a CRL from each CA; and its upkeep, so that it keeps itself alive.

:class:`Pki` is the one door the rest of the service uses. Behind it each part keeps its own files
(see certs/README.md for the whole folder)::

    authority.Authority        root/, issuing/ (generations, retired/), trust/   the CAs
    tsa.TimeStamping           tsa/                                               the TSA's key and certificate
    units.Units                units/<key>/                                       units' credentials
    crls.Revocations           revoked.json, crl/                                 revocations and CRLs
    keys.FileKeyStore          every *.key / key.pem above                        private keys, by name
    files.CertsFolder          .lock, .next/ stages, history/                     atomic, locked changes
    status                     (reads them all)                                   what expires when

Private keys are PKCS#8, encrypted with the passphrase from settings, mode 0600, and git-ignored.
The parts receive the key store instead of opening key files themselves.

Upkeep (:meth:`Pki.maintain`, run by a scheduled job): CRLs are re-signed before their nextUpdate,
unit certificates are renewed (new key, same subject) before they expire, the TSA gets a new key
and certificate every :data:`~service.pki.tsa.TSA_KEY_USE`, and a new issuing CA takes over before
the current one's end. A replaced certificate moves to ``history/``; its private key is not kept.
Several processes may share ``certs/``: every change is made under a lock file, and a new key with
its certificate is staged in ``.next/`` and moved into place by a commit that the next process to
take the lock finishes if a crash interrupted it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from service.pki.authority import ISSUING_ROLLOVER, Authority, IssuingRollover
from service.pki.certificates import shown, system_now
from service.pki.crls import CRL_REFRESH_MARGIN, PublishedCrl, Revocations
from service.pki.errors import (
    IssuingCaExpiring,
    RootKeyInvalid,
    RootKeyOffline,
    TokenNotConfigured,
    TokenUnavailable,
)
from service.pki.files import CertsFolder, write_atomic
from service.pki.keys import KDF_ROUNDS, FileKeyStore, KeyStore, wrap
from service.pki.status import WARN_WITHIN, MaintenanceReport, PkiStatus, status
from service.pki.token import Token, TokenKey, TokenSettings
from service.pki.tsa import TSA_KEY_USE, TSA_MIN_REACH, TimeStamping, TsaRollover
from service.pki.units import UNIT_RENEW_MARGIN, RenewedUnit, UnitCredentials, Units
from service.settings import Settings

#: With the root's key offline, the maintenance report asks a person to re-publish the root's CRL
#: this long before its nextUpdate: time to fetch the key from where it is kept.
ROOT_CRL_NOTICE = dt.timedelta(days=60)


def token_settings(settings: Settings) -> TokenSettings | None:
    """The PKCS#11 token the settings name, with its PIN read from the file when given there."""
    if not settings.pkcs11_module:
        return None
    pin = settings.pkcs11_pin.get_secret_value()
    if not pin and settings.pkcs11_pin_file is not None:
        try:
            pin = settings.pkcs11_pin_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenUnavailable(f"无法读取 PKCS#11 PIN 文件 {settings.pkcs11_pin_file}：{exc.strerror}。") from exc
    if not settings.pkcs11_token or not pin:
        raise TokenNotConfigured()
    return TokenSettings(settings.pkcs11_module, settings.pkcs11_token, pin)


@dataclass(frozen=True)
class InitReport:
    created: bool
    certs_dir: Path
    root_subject: str
    root_fingerprint: str


class Pki:
    """The certificate store; thread-safe, and safe for several processes through a lock file."""

    def __init__(
        self,
        certs_dir: Path,
        passphrase: str,
        organization: str,
        public_base_url: str,
        now: Callable[[], dt.datetime] | None = None,
        *,
        kdf_rounds: int = KDF_ROUNDS,
        token: TokenSettings | None = None,
        tsa_in_token: bool = False,
        ca_in_token: bool = False,
    ) -> None:
        self.dir = Path(certs_dir)
        self.organization = organization
        self.public_base_url = public_base_url.rstrip("/")
        #: The time every certificate, CRL and expiry check uses; tests move it by years.
        self._now = now or system_now
        self.folder = CertsFolder(self.dir)
        self.files = FileKeyStore(self.dir, passphrase, kdf_rounds)
        self.keys: KeyStore = self.files
        #: The PKCS#11 token unit keys (and the TSA's, with ``tsa_in_token``, and the issuing CA's,
        #: with ``ca_in_token``) may live in; opened by this process on first use.
        self.token = Token(token) if token is not None else None
        self.authority = Authority(
            self.folder, self.keys, organization, public_base_url, self._now, self.token, ca_in_token
        )
        self.revocations = Revocations(self.folder, self.authority, self._now)
        self.timestamping = TimeStamping(self.folder, self.keys, self.authority, self._now, self.token, tsa_in_token)
        self.units = Units(self.folder, self.keys, self.authority, self.revocations, self._now, self.token)

    @classmethod
    def from_settings(cls, settings: Settings, now: Callable[[], dt.datetime] | None = None) -> Pki:
        """The PKI of ``settings``: what the service, the command line and every worker open."""
        return cls(
            settings.certs_dir,
            settings.pki_passphrase.get_secret_value(),
            settings.pki_organization,
            settings.public_base_url,
            now,
            kdf_rounds=settings.pki_kdf_rounds,
            token=token_settings(settings),
            tsa_in_token=settings.pkcs11_tsa,
            ca_in_token=settings.pkcs11_ca,
        )

    @property
    def exists(self) -> bool:
        return self.authority.exists

    def export_root_key(self, path: Path, passphrase: str) -> None:
        """Write the root CA's key to ``path`` (encrypted with ``passphrase``, as every key file)
        for the operator to take away, and remove it from ``certs/``: the service and its workers
        sign, issue, publish the issuing CAs' CRLs and timestamp without it; a rollover of the
        issuing CA and the root's yearly CRL ask for it (:meth:`unlock_root`). The root's CRL is
        re-signed first, so it stays valid for a year without the key."""
        self.authority.require()
        if self.authority.root_offline:
            raise RootKeyOffline("根证书私钥已经导出并从本机删除，无需再次导出。")
        with self.folder.locked():
            self.revocations.sign("root", self._now())
            _, key = self.authority.ca("root")
            path = Path(path)
            write_atomic(path, wrap(key, passphrase.encode(), self.files.rounds), 0o600)
            if not isinstance(serialization.load_pem_private_key(path.read_bytes(), passphrase.encode()), type(key)):
                raise RootKeyInvalid("导出的根证书私钥文件读回时与原私钥不一致，未删除本机的根证书私钥。")
            self.authority.export_root()

    def unlock_root(self, data: bytes, passphrase: str) -> None:
        """Hand in the root CA's key from its exported file, for this process (a rollover of the
        issuing CA, the root's CRL); :class:`RootKeyInvalid` when it does not open or is not ours."""
        self.authority.require()
        try:
            key = serialization.load_pem_private_key(data, passphrase.encode())
        except (ValueError, TypeError) as exc:
            raise RootKeyInvalid() from exc
        self.authority.unlock_root(key)

    def rewrap_keys(self) -> list[str]:
        """Encrypt again every key file protected by fewer PBKDF2 rounds than this PKI writes (files
        of older versions: 2,048); the names of the keys re-wrapped, for the audit log. Run at every
        start (:meth:`service.container.Services.prepare`, ``docsign init``); finds nothing the
        second time."""
        with self.folder.locked():
            return self.files.rewrap()

    def init(self) -> InitReport:
        """Create the local PKI unless one exists; never overwrites keys."""
        with self.folder.locked():
            created = False
            if not self.exists:
                created = True
                at = self._now()
                first = self.authority.make(at)
                try:
                    # the TSA's files first: the PKI exists once the CAs' are written
                    self.timestamping.create(first.issuing, first.issuing_key, at)
                    self.authority.save(first)
                    self.revocations.create(at)
                except BaseException:
                    made = first.issuing_key
                    if isinstance(made, TokenKey) and not self.exists:
                        made.token.destroy(made.key_id)  # the key of a CA that was not made
                    raise
            root = self.root_certificate()
            return InitReport(
                created=created,
                certs_dir=self.dir,
                root_subject=root.subject.rfc4514_string(),
                root_fingerprint=root.fingerprint(hashes.SHA256()).hex(":").upper(),
            )

    # --- CAs ----------------------------------------------------------------------------------

    def root_certificate(self) -> x509.Certificate:
        return self.authority.root_certificate()

    def issuing_certificate(self) -> x509.Certificate:
        """The current issuing CA's certificate (the one that issues new certificates)."""
        return self.authority.issuing_certificate()

    def issuing_certificates(self) -> list[x509.Certificate]:
        """Every issuing CA certificate this PKI has had, oldest first; the last is the current one."""
        return self.authority.issuing_certificates()

    def chain_for(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """The CA certificates above ``cert`` (its issuing CA, then the root)."""
        return self.authority.chain_for(cert)

    def ca_names(self) -> list[str]:
        """The CAs that publish a CRL (root, the current issuing CA, retired ones not yet expired)."""
        return self.authority.ca_names()

    def trust_roots(self) -> list[x509.Certificate]:
        """The local root and any extra roots placed in certs/trust/."""
        return self.authority.trust_roots()

    def imported_fingerprints(self) -> frozenset[str] | None:
        """The SHA-256 of every certificate imported for a unit (its history too): all that the
        extra roots of certs/trust/ may vouch for. None when there is no extra root."""
        if len(self.trust_roots()) == 1:
            return None
        return self.units.imported_fingerprints()

    def rollover_issuing(
        self, margin: dt.timedelta = ISSUING_ROLLOVER, *, now: dt.datetime | None = None, force: bool = False
    ) -> IssuingRollover | None:
        """Replace the issuing CA once its useful life (expiry or key weakness) is within
        ``margin``: a new key and certificate from the root (``签章证书签发中心（第n代）``), whose CRL
        is published as ``issuing-<n>.crl``. The old CA's key and certificate move to
        ``issuing/retired/<name>/``; it keeps publishing its CRL (revocations of what it issued)
        until it expires. None when not due; :class:`IssuingCaExpiring` when the root cannot give
        a new CA a useful life (a person must replace the root). ``force`` replaces it now;
        :class:`RootKeyOffline` when the root's key is offline and was not handed in."""
        self.authority.require()
        at = now or self._now()
        with self.folder.locked():
            rollover = self.authority.rollover(margin, at, force=force)
            if rollover is not None:
                self.revocations.sign(rollover.new_name, at)
        return rollover

    # --- TSA ----------------------------------------------------------------------------------

    def tsa(self) -> tuple[x509.Certificate, PrivateKeyTypes]:
        """The current TSA certificate and key; reloaded when another process has rolled them over."""
        return self.timestamping.current()

    def tsa_certificates(self) -> list[x509.Certificate]:
        """Every TSA certificate this PKI has used, oldest first; the last is the current one."""
        return self.timestamping.certificates()

    def rollover_tsa(
        self,
        key_use: dt.timedelta = TSA_KEY_USE,
        *,
        now: dt.datetime | None = None,
        min_reach: dt.timedelta = TSA_MIN_REACH,
        force: bool = False,
    ) -> TsaRollover | None:
        """Give the TSA a new key and certificate when due (see :meth:`TimeStamping.rollover`)."""
        return self.timestamping.rollover(key_use, now=now, min_reach=min_reach, force=force)

    # --- CRLs ---------------------------------------------------------------------------------

    def crl(self, which: str) -> x509.CertificateRevocationList | None:
        """The CRL published as ``/pki/<which>.crl``, or None for a name no CA of ours has."""
        return self.revocations.crl(which)

    def crls(self) -> list[x509.CertificateRevocationList]:
        """Current CRLs of every CA that publishes one, re-signed first when less than half their
        validity remains."""
        return self.revocations.current()

    def refresh_crls(
        self, margin: dt.timedelta = CRL_REFRESH_MARGIN, *, now: dt.datetime | None = None
    ) -> list[PublishedCrl]:
        """Re-sign each CA's CRL whose nextUpdate is within ``margin``; the CRLs re-signed."""
        return self.revocations.refresh(margin, now=now)

    # --- units --------------------------------------------------------------------------------

    def has_unit(self, key: str) -> bool:
        return self.units.has(key)

    def unit_keys(self) -> list[str]:
        """Keys of every unit with a certificate, sorted."""
        return self.units.unit_keys()

    def unit(self, key: str) -> UnitCredentials:
        """A unit's current credentials; refused if the certificate is revoked or expired."""
        return self.units.get(key)

    def unit_certificates(self, key: str) -> list[x509.Certificate]:
        """Every certificate a unit has signed with, oldest first; the last is the current one."""
        return self.units.certificates(key)

    def issue_unit(self, key: str, name: str, *, replace: bool = False, in_token: bool = False) -> UnitCredentials:
        """Issue a signing certificate for a unit from the local issuing CA (see :meth:`Units.issue`);
        ``in_token`` makes its key inside the PKCS#11 token."""
        return self.units.issue(key, name, replace=replace, in_token=in_token)

    def ensure_unit(self, key: str, name: str) -> UnitCredentials:
        """A unit's credentials, issued first if it has none."""
        return self.units.ensure(key, name)

    def import_pkcs12(
        self, key: str, data: bytes, password: str | None, name: str | None = None, *, to_token: bool = False
    ) -> UnitCredentials:
        """Use a unit's own certificate (from a PKCS#12 file) instead of one from the local CA;
        ``to_token`` puts its key into the PKCS#11 token instead of a file."""
        return self.units.import_pkcs12(key, data, password, name, to_token=to_token)

    def revoke_unit(self, key: str, reason: str = "unspecified", *, since: dt.datetime | None = None) -> str:
        """Revoke a unit's current certificate (see :meth:`Units.revoke`); the revoked serial."""
        return self.units.revoke(key, reason, since=since)

    def renew_unit(self, key: str, *, now: dt.datetime | None = None) -> RenewedUnit:
        """A new key and certificate for a unit, same subject (see :meth:`Units.renew`)."""
        return self.units.renew(key, now=now)

    def renew_expiring(
        self, margin: dt.timedelta = UNIT_RENEW_MARGIN, *, now: dt.datetime | None = None
    ) -> list[RenewedUnit]:
        """Renew every unit certificate that expires within ``margin`` (see :meth:`renew_unit`);
        revoked ones are left alone, and those that cannot be renewed here are skipped (listed
        by :meth:`maintain`). Running it again renews nothing."""
        return self.units.renew_expiring(margin, now or self._now())[0]

    # --- upkeep -------------------------------------------------------------------------------

    def maintain(self, now: dt.datetime | None = None, *, replace_issuing: bool = False) -> MaintenanceReport:
        """Everything the PKI needs to stay alive, once: replace the issuing CA near the end of its
        useful life (:data:`ISSUING_ROLLOVER`), re-publish CRLs near their nextUpdate
        (:data:`CRL_REFRESH_MARGIN`), renew unit certificates near expiry (:data:`UNIT_RENEW_MARGIN`)
        or issued by a replaced CA, roll the TSA over (:data:`TSA_KEY_USE`, :data:`TSA_MIN_REACH`,
        and at once after a new issuing CA). Idempotent: a second run finds nothing due. Meant for
        a scheduled job (daily); safe while other processes sign. ``replace_issuing`` replaces the
        issuing CA now (``docsign pki rollover``). With the root's key offline (and not handed in
        by :meth:`unlock_root`), a rollover due and the root's CRL near its end are listed for a
        person instead."""
        self.authority.require()
        at = now or self._now()
        attention: list[str] = []
        issuing = None
        try:
            issuing = self.rollover_issuing(ISSUING_ROLLOVER, now=at, force=replace_issuing)
        except IssuingCaExpiring as exc:
            attention.append(exc.message)
        except RootKeyOffline as exc:
            attention.append(f"签发中心证书已到更换时间，未更换：{exc.message}")
        crls = self.refresh_crls(CRL_REFRESH_MARGIN, now=at)
        root_crl = self.revocations.read("root")
        if not self.authority.root_available and self.revocations.due("root", root_crl, at, ROOT_CRL_NOTICE):
            until = f"（将于 {shown(root_crl.next_update_utc)} 到期）" if root_crl and root_crl.next_update_utc else ""
            attention.append(
                f"根证书的吊销列表需要重新发布{until}，根证书私钥已离线保存："
                "请带上导出的根证书私钥文件运行 docsign pki refresh --root-key 文件。"
            )
        renewed, unrenewed = self.units.renew_expiring(UNIT_RENEW_MARGIN, at)
        attention += unrenewed
        tsa = None
        try:
            tsa = self.rollover_tsa(TSA_KEY_USE, now=at, force=issuing is not None)
        except IssuingCaExpiring as exc:
            attention.append(exc.message)
        return MaintenanceReport(at, crls, renewed, tsa, issuing, attention)

    def status(self, now: dt.datetime | None = None, *, warn_within: dt.timedelta = WARN_WITHIN) -> PkiStatus:
        """What expires when: the CAs, the TSA, the CRLs (nextUpdate), then every unit's current
        certificate, soonest first; ``warn`` marks what the dashboard should warn about."""
        self.authority.require()
        return status(self.authority, self.timestamping, self.revocations, self.units, now or self._now(), warn_within)
