"""Evidence: what a verdict on one document rests on, and validation contexts at given moments.

The trust roots and current CRLs come from the caller (the service's PKI); certificates, CRLs and
OCSP responses embedded in the document's DSS (PAdES B-LT/LTA validation data) are added to them.
pyHanko's :class:`ValidationContext` judges a certificate path at one moment; :meth:`context`
makes one per moment the verifier needs (the time a timestamp proves, the time of a later archive
timestamp, or now).

At a moment in the past, revocation data issued later counts too (pyHanko's *retroactive*
revocation info): a CRL published years after signing that lists the certificate as revoked on
a date after the moment does not make it revoked at the moment, and one that does not list it
proves it was not revoked then. The reason of a revocation is read here as well, because a key
compromise casts doubt on every signature made with the key, whatever its date.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko_certvalidator import ValidationContext

from service.documents.structure import MALFORMED

log = logging.getLogger(__name__)

#: Revocation reasons that mean the private key may have been used by someone else, from some
#: unknown date: a signature made with it is in doubt whatever its timestamp says.
COMPROMISE_REASONS = {x509.ReasonFlags.key_compromise, x509.ReasonFlags.ca_compromise}

REASON_TEXT = {
    x509.ReasonFlags.unspecified: "未说明原因",
    x509.ReasonFlags.key_compromise: "私钥泄露",
    x509.ReasonFlags.ca_compromise: "证书中心私钥泄露",
    x509.ReasonFlags.affiliation_changed: "单位信息变更",
    x509.ReasonFlags.superseded: "证书已被替换",
    x509.ReasonFlags.cessation_of_operation: "停止使用",
    x509.ReasonFlags.certificate_hold: "暂停使用",
    x509.ReasonFlags.privilege_withdrawn: "权限撤销",
    x509.ReasonFlags.aa_compromise: "属性中心私钥泄露",
    x509.ReasonFlags.remove_from_crl: "解除暂停",
}


@dataclass(frozen=True)
class Revocation:
    """One entry for a certificate in an authentic CRL (signed by the certificate's issuer)."""

    date: dt.datetime
    reason: x509.ReasonFlags
    #: Where the CRL came from: embedded in the document, or supplied by the verifying service.
    embedded: bool

    @property
    def compromise(self) -> bool:
        return self.reason in COMPROMISE_REASONS

    @property
    def reason_text(self) -> str:
        return REASON_TEXT.get(self.reason, str(self.reason.value))


@dataclass(frozen=True)
class _Crl:
    der: bytes
    parsed: x509.CertificateRevocationList
    embedded: bool


def _common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else name.rfc4514_string()


class Evidence:
    """Roots, certificates and CRLs for one document; validation contexts at given moments."""

    def __init__(
        self,
        reader: PdfFileReader,
        trust_roots: Sequence[asn1_x509.Certificate],
        crls: Sequence[bytes],
    ) -> None:
        self.trust_roots = list(trust_roots)
        self.certs: list[asn1_x509.Certificate] = []
        self.ocsps: list[asn1_ocsp.OCSPResponse] = []
        self._crls: list[_Crl] = []
        seen: set[bytes] = set()
        for der in crls:
            self._add_crl(der, embedded=False, seen=seen)
        try:
            dss = DocumentSecurityStore.read_dss(reader)
            self.certs = list(dss.load_certs())
            for ref in dss.crls:
                self._add_crl(ref.get_object().read_data(DecodePurpose.CRL), embedded=True, seen=seen)
            for ref in dss.ocsps:
                self.ocsps.append(asn1_ocsp.OCSPResponse.load(ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE)))
        except NoDSSFoundError:
            pass
        except MALFORMED as exc:
            # a damaged DSS adds nothing; the signatures are judged on what remains
            log.info("DSS unreadable: %s", exc)
        self._contexts: dict[tuple[dt.datetime, bool], ValidationContext] = {}

    def _add_crl(self, der: bytes, *, embedded: bool, seen: set[bytes]) -> None:
        if der in seen:
            if embedded:  # the document carries the same CRL the service supplied: say so
                self._crls = [_Crl(c.der, c.parsed, True) if c.der == der else c for c in self._crls]
            return
        try:
            parsed = x509.load_der_x509_crl(der)
        except ValueError:
            log.info("skipping an unreadable CRL")
            return
        seen.add(der)
        self._crls.append(_Crl(der, parsed, embedded))

    def context(self, moment: dt.datetime, *, past: bool) -> ValidationContext:
        """A validation context judging certificates at ``moment``.

        ``past``: the moment is before now, so revocation data issued after it is used too.
        Revocation checking is *soft-fail*, as for the service's own verdicts so far: a certificate
        that no CRL covers (an imported one whose CA publishes elsewhere) is judged on its chain,
        but one an available CRL lists as revoked before the moment fails, and so does one whose
        only CRLs are out of date at the moment.
        """
        key = (moment, past)
        if key not in self._contexts:
            self._contexts[key] = ValidationContext(
                trust_roots=self.trust_roots,
                other_certs=self.certs,
                crls=[asn1_crl.CertificateList.load(c.der) for c in self._crls],
                ocsps=self.ocsps,
                moment=moment,
                retroactive_revinfo=past,
                allow_fetching=False,
                revocation_mode="soft-fail",
            )
        return self._contexts[key]

    def revocations(self, cert: asn1_x509.Certificate, issuer: asn1_x509.Certificate) -> list[Revocation]:
        """Entries for ``cert`` in CRLs that ``issuer`` signed (forged or foreign CRLs are ignored)."""
        try:
            issuer_key = x509.load_der_x509_certificate(issuer.dump()).public_key()
        except (ValueError, UnsupportedAlgorithm):
            return []
        serial = cert.serial_number
        out = []
        for crl in self._crls:
            if crl.parsed.issuer.public_bytes() != issuer.subject.dump():
                continue
            entry = crl.parsed.get_revoked_certificate_by_serial_number(serial)
            if entry is None:
                continue
            try:
                if not crl.parsed.is_signature_valid(issuer_key):  # type: ignore[arg-type]
                    continue
            except (InvalidSignature, TypeError, UnsupportedAlgorithm):
                continue
            try:
                reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            except x509.ExtensionNotFound:
                reason = x509.ReasonFlags.unspecified  # RFC 5280: no reason code means unspecified
            out.append(Revocation(entry.revocation_date_utc, reason, crl.embedded))
        return out

    def describe_crls(self, issuer: asn1_x509.Certificate, moment: dt.datetime) -> list[str]:
        """Chinese lines naming the CRLs of ``issuer`` that speak about ``moment``."""
        lines = []
        subject = issuer.subject.dump()
        for crl in self._crls:
            if crl.parsed.issuer.public_bytes() != subject:
                continue
            next_update = crl.parsed.next_update_utc
            if next_update is not None and next_update < moment:
                continue  # out of date before the moment: says nothing about it
            source = "文书内嵌" if crl.embedded else "验证方提供"
            lines.append(
                f"「{_common_name(crl.parsed.issuer)}」{crl.parsed.last_update_utc:%Y-%m-%d %H:%M} UTC 发布的证书吊销列表（{source}）"
            )
        return lines
