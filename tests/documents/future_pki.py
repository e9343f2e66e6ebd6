"""What the local PKI will publish in years to come, built for tests from its files and keys.

The PKI's own lifecycle (publishing CRLs, renewing unit certificates, rolling the TSA over) is
``service/pki/``'s business, on the real clock. Long-term validation tests need its output
at other times: the CRLs as published on a day years from now (with revocations, dates and reasons
of the test's choosing) and a TSA rolled over to a new CA with a stronger key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from asn1crypto import keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from service.pki.store import Pki

YEAR = dt.timedelta(days=365)


def asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


@dataclass
class Authority:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    #: How long its CRLs are valid.
    crl_days: int

    def valid_at(self, at: dt.datetime) -> bool:
        return self.cert.not_valid_before_utc <= at <= self.cert.not_valid_after_utc


@dataclass
class Tsa:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    ca: Authority

    def timestamper(self, at: dt.datetime) -> DummyTimeStamper:
        """A TSA answering with tokens dated ``at``."""
        key_info = keys.PrivateKeyInfo.load(
            self.key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return DummyTimeStamper(
            tsa_cert=asn1(self.cert),
            tsa_key=key_info,
            certs_to_embed=SimpleCertificateStore.from_certs([asn1(self.ca.cert)]),
            fixed_dt=at,
        )


@dataclass
class FuturePki:
    pki: Pki
    passphrase: str
    authorities: list[Authority] = field(default_factory=list)

    def __post_init__(self) -> None:
        for which, days in (("root", 365), ("issuing", 30)):
            folder = self.pki.dir / which
            key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), self.passphrase.encode())
            assert isinstance(key, rsa.RSAPrivateKey)
            cert = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
            self.authorities.append(Authority(cert, key, days))

    @property
    def root(self) -> Authority:
        return self.authorities[0]

    def crls(
        self, at: dt.datetime, revoked: Mapping[int, tuple[dt.datetime, x509.ReasonFlags]] | None = None
    ) -> list[bytes]:
        """The CRLs every CA still valid at ``at`` publishes that day (DER). ``revoked``: serial ->
        (revocation date, reason), listed by the CA that issued the serial."""
        out = []
        for ca in self.authorities:
            if not ca.valid_at(at):
                continue
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(ca.cert.subject)
                .last_update(at - dt.timedelta(minutes=5))
                .next_update(at + dt.timedelta(days=ca.crl_days))
                .add_extension(x509.CRLNumber(int(at.timestamp())), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            )
            for serial, (date, reason) in (revoked or {}).items():
                if ca is not self.root:
                    builder = builder.add_revoked_certificate(
                        x509.RevokedCertificateBuilder()
                        .serial_number(serial)
                        .revocation_date(date)
                        .add_extension(x509.CRLReason(reason), critical=False)
                        .build()
                    )
            out.append(builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        return out

    def ca_certs(self) -> list[bytes]:
        return [ca.cert.public_bytes(serialization.Encoding.DER) for ca in self.authorities]

    def rollover(self, at: dt.datetime, bits: int = 3072) -> Tsa:
        """A new issuing CA under the root and a new TSA under it, both valid 10 years from ``at``."""
        org = self.pki.organization
        ca_key = rsa.generate_private_key(65537, bits)
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.COMMON_NAME, f"签章证书签发中心 {at:%Y}"),
            ]
        )
        ca_cert = self._issue(
            ca_name,
            ca_key.public_key(),
            self.root,
            at,
            ca=True,
        )
        ca = Authority(ca_cert, ca_key, 30)
        self.authorities.append(ca)
        tsa_key = rsa.generate_private_key(65537, bits)
        tsa_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.COMMON_NAME, f"时间戳服务 {at:%Y}"),
            ]
        )
        tsa_cert = self._issue(tsa_name, tsa_key.public_key(), ca, at, ca=False)
        return Tsa(tsa_cert, tsa_key, ca)

    def _issue(
        self, subject: x509.Name, public_key: rsa.RSAPublicKey, issuer: Authority, at: dt.datetime, *, ca: bool
    ) -> x509.Certificate:
        not_before = at - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + 10 * YEAR)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(f"{self.pki.public_base_url}/pki/{at:%Y}.crl")],
                            None,
                            None,
                            None,
                        )
                    ]
                ),
                critical=False,
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        return builder.sign(issuer.key, hashes.SHA256())
