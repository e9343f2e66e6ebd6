"""Revocations and the CRLs that publish them. Files (under ``certs/``)::

    revoked.json                    serials revoked, each with when, why and which issuing CA lists it
    crl/root.crl, crl/issuing.crl   one CRL per CA that publishes (``issuing-<n>.crl`` after a
                                    rollover), served as ``/pki/<name>.crl``

A CRL is re-signed before it goes stale: when read with less than half its validity left
(:meth:`Revocations.current`), and by the daily upkeep within :data:`CRL_REFRESH_MARGIN` of its
nextUpdate (:meth:`Revocations.refresh`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from service.pki.authority import CA_NAME, FIRST_ISSUING, Authority
from service.pki.certificates import BACKDATE, sign_crl
from service.pki.files import CertsFolder, write_atomic

#: A CRL is valid this long. Relying parties (pdfsig, Acrobat) keep the last one they fetched until
#: its nextUpdate, so a revocation reaches them within this time.
CRL_DAYS = 30
ROOT_CRL_DAYS = 365
#: Re-publish a CRL when its nextUpdate is this close: half the issuing CA's 30-day CRL, so a daily
#: job that fails has two weeks of retries before a relying party's copy goes stale.
CRL_REFRESH_MARGIN = dt.timedelta(days=15)
#: Revocation reasons ``docsign pki revoke --reason`` accepts, with the words people read.
REVOCATION_REASONS: dict[str, tuple[x509.ReasonFlags, str]] = {
    "unspecified": (x509.ReasonFlags.unspecified, "未说明原因"),
    "key_compromise": (x509.ReasonFlags.key_compromise, "私钥泄露"),
    "affiliation_changed": (x509.ReasonFlags.affiliation_changed, "单位信息变更"),
    "superseded": (x509.ReasonFlags.superseded, "证书已被替换"),
    "cessation_of_operation": (x509.ReasonFlags.cessation_of_operation, "单位停止使用"),
}


@dataclass(frozen=True)
class PublishedCrl:
    """A CRL re-signed by :meth:`Revocations.refresh`."""

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


class Revocations:
    """The revoked serials and every CA's CRL; thread-safe, and safe for several processes."""

    def __init__(self, folder: CertsFolder, authority: Authority, now: Callable[[], dt.datetime]) -> None:
        self.folder = folder
        self.dir = folder.dir
        self.authority = authority
        self._now = now

    def create(self, at: dt.datetime) -> None:
        """A new PKI's empty revocation list and its first two CRLs; under the lock."""
        write_atomic(self.dir / "revoked.json", b"{}\n")
        for which in ("root", FIRST_ISSUING):
            self.sign(which, at)

    def revoked(self) -> dict[str, Revocation]:
        """Every revocation, by serial (in decimal)."""
        try:
            data: dict[str, str | dict[str, str]] = json.loads((self.dir / "revoked.json").read_text())
        except FileNotFoundError:
            data = {}
        return {serial: Revocation.load(serial, value) for serial, value in data.items()}

    def is_revoked(self, cert: x509.Certificate) -> bool:
        return str(cert.serial_number) in self.revoked()

    def revoke(self, cert: x509.Certificate, reason: str, at: dt.datetime, now: dt.datetime) -> None:
        """List ``cert`` as revoked at ``at`` (kept if it already is) by the issuing CA that issued
        it, and re-sign that CA's CRL at ``now``; under the lock."""
        issuer = next(
            (n for n in self.authority.ca_names()[1:] if self.authority.ca_certificate(n).subject == cert.issuer),
            self.authority.issuing_name(),
        )
        revoked = {s: r.dump() for s, r in self.revoked().items()}
        revoked.setdefault(str(cert.serial_number), Revocation(cert.serial_number, at, reason, issuer).dump())
        write_atomic(self.dir / "revoked.json", json.dumps(revoked, indent=2).encode())
        self.sign(issuer, now)

    # --- CRLs ---------------------------------------------------------------------------------

    def read(self, which: str) -> x509.CertificateRevocationList | None:
        """The CRL of the CA named ``which`` as last written, or None."""
        try:
            return x509.load_der_x509_crl((self.dir / "crl" / f"{which}.crl").read_bytes())
        except FileNotFoundError:
            return None

    def crl(self, which: str) -> x509.CertificateRevocationList | None:
        """The CRL published as ``/pki/<which>.crl``, or None for a name no CA of ours has."""
        if not CA_NAME.match(which) or which not in self.authority.ca_names():
            return None
        self.current()  # re-signed first when stale
        return self.read(which)

    def sign(self, which: str, at: dt.datetime) -> PublishedCrl:
        """Re-sign one CA's CRL at ``at`` with the revoked serials it must list (with their reasons)
        and a CRL number above the last one's; under the lock."""
        cert, key = self.authority.ca(which)
        if which == "root":
            days, revoked = ROOT_CRL_DAYS, []
        else:
            days, revoked = CRL_DAYS, [r for r in self.revoked().values() if r.ca == which]
        number = int(at.timestamp())
        previous = self.read(which)
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
        crl = sign_crl(builder, key)
        write_atomic(self.dir / "crl" / f"{which}.crl", crl.public_bytes(serialization.Encoding.DER))
        return PublishedCrl(which, number, this_update, next_update)

    def due(
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
            return {r.serial for r in self.revoked().values() if r.ca == which} != listed
        return False

    def current(self) -> list[x509.CertificateRevocationList]:
        """Current CRLs of every CA that publishes one (root, issuing CAs), re-signed first when
        less than half their validity remains: signing keeps them fresh even where no scheduled job
        runs. The root's CRL waits for its key when that is offline (:meth:`Pki.maintain` says
        when it is due)."""
        self.authority.require()
        at = self._now()
        names = self.authority.ca_names()
        crls = [self.read(w) for w in names]
        signable = [w for w in names if self.can_sign(w)]
        if any(self.due(w, c, at, None) for w, c in zip(names, crls, strict=True) if w in signable):
            with self.folder.locked():
                for w in signable:
                    if self.due(w, self.read(w), at, None):
                        self.sign(w, at)
                crls = [self.read(w) for w in names]
        return [c for c in crls if c is not None]

    def refresh(
        self, margin: dt.timedelta = CRL_REFRESH_MARGIN, *, now: dt.datetime | None = None
    ) -> list[PublishedCrl]:
        """Re-sign each CA's CRL whose nextUpdate is within ``margin`` (same revoked entries, new
        thisUpdate/nextUpdate, a higher CRL number); the files stay where ``/pki/{which}.crl``
        serves them. Returns the CRLs re-signed, none when nothing was due; the root's is left
        alone while its key is offline."""
        self.authority.require()
        at = now or self._now()
        with self.folder.locked():
            return [
                self.sign(w, at)
                for w in self.authority.ca_names()
                if self.can_sign(w) and self.due(w, self.read(w), at, margin)
            ]

    def can_sign(self, which: str) -> bool:
        """Whether the CA's key is here to sign its CRL (the root's may be offline)."""
        return which != "root" or self.authority.root_available
