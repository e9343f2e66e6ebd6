"""How the local PKI makes a certificate (names, key sizes, validity, extensions), and until when
what a certificate's key signs stays provable (:func:`useful_until`).

Every certificate and CRL a CA of ours signs is signed by :func:`sign_certificate` or
:func:`sign_crl`: with a key from a file, by ``cryptography``'s builder; with a key in a PKCS#11
token (:class:`~service.pki.token.TokenKey`, which ``cryptography``'s builders refuse), the builder
makes the to-be-signed part with a stand-in key, the token signs those bytes (SHA-256 with RSA,
PKCS#1 v1.5) and asn1crypto puts the final DER together. The issuer's name and key identifier are
in the builder, from the real issuing certificate; nothing of the stand-in key is in the result."""

from __future__ import annotations

import datetime as dt
import threading

from asn1crypto import crl as asn1_crl
from asn1crypto import keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from service.pki.errors import IssuingCaExpiring, TokenUnavailable
from service.pki.sunsets import DEFAULT_SUNSETS, AlgorithmSunsets
from service.pki.token import TokenKey

#: RSA everywhere: pdfsig, Adobe and WPS all verify it, and pyHanko's local TSA signs only with RSA.
#: Unit keys live three years, so 2048 bits (112-bit security, acceptable through 2030) serve them;
#: the CAs' and the TSA's signatures must stay strong for as long as documents are kept, so theirs
#: are 3072 bits (128-bit security, NIST SP 800-57 Part 1: acceptable beyond 2030).
KEY_BITS = 2048
CA_KEY_BITS = 3072
#: Certificates start a little in the past, so a machine whose clock is a few minutes behind still
#: accepts one made this minute.
BACKDATE = dt.timedelta(minutes=5)


def system_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def years(n: int) -> dt.timedelta:
    return dt.timedelta(days=365 * n)


def shown(when: dt.datetime) -> str:
    """A time as people here read it: local date and minute."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def subject_name(common_name: str, organization: str, unit: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
    ]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def common_name(cert: x509.Certificate) -> str:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else cert.subject.rfc4514_string()


def useful_until(cert: x509.Certificate, sunsets: AlgorithmSunsets = DEFAULT_SUNSETS) -> dt.datetime:
    """Until when what ``cert``'s key signs stays provable: its expiry, or the day its key size
    becomes weak (SHA-256 signatures), whichever comes first."""
    info = keys.PublicKeyInfo.load(
        cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    weak = sunsets.weak_from("sha256", info)
    return min(cert.not_valid_after_utc, weak[0]) if weak else cert.not_valid_after_utc


def build(
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
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
    is no longer valid than its shortest link, and the status should say so. ``issuer`` None makes
    a self-signed one (the root); ``crl`` is the URL of the CRL that would list it."""
    start = at - BACKDATE
    end = start + life
    if leaf:
        # A unit's certificate never starts after the moment it is really made: a service whose
        # clock runs ahead (a test's, moved days on) signs with it today as well.
        start = min(at, system_now()) - BACKDATE
    issuer_name = subject
    if issuer is not None:
        if issuer.not_valid_after_utc <= at:
            raise IssuingCaExpiring(
                f"签发中心证书已于 {shown(issuer.not_valid_after_utc)} 到期，不能再签发证书。"
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
    return sign_certificate(builder, issuer_key)


_stand_in: rsa.RSAPrivateKey | None = None
_stand_in_lock = threading.Lock()


def _stand_in_key() -> rsa.RSAPrivateKey:
    """A throwaway RSA key of this process, made once: what ``cryptography``'s builders sign a draft
    with when the real key is in the token. Its signature is replaced; it certifies nothing."""
    global _stand_in
    with _stand_in_lock:
        if _stand_in is None:
            _stand_in = rsa.generate_private_key(65537, 2048)
        return _stand_in


def _token_signature(key: TokenKey, tbs: bytes) -> bytes:
    """The token's SHA-256 RSA PKCS#1 v1.5 signature over ``tbs``, checked against the key's public
    half before anything is written with it."""
    signature = key.sign(tbs, PKCS1v15(), hashes.SHA256())
    try:
        key.public_key().verify(signature, tbs, PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise TokenUnavailable(
            f"PKCS#11 令牌「{key.token.label}」返回的签名与签发中心证书的公钥不符，未签发。请确认插入的是正确的令牌。"
        ) from None
    return signature


def sign_certificate(builder: x509.CertificateBuilder, key: CertificateIssuerPrivateKeyTypes) -> x509.Certificate:
    """``builder``'s certificate signed by ``key`` with SHA-256 (in the token for a :class:`TokenKey`)."""
    if not isinstance(key, TokenKey):
        return builder.sign(key, hashes.SHA256())
    draft = asn1_x509.Certificate.load(
        builder.sign(_stand_in_key(), hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    )
    tbs = draft["tbs_certificate"]
    signed = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": draft["signature_algorithm"],  # sha256_rsa, as the tbs says
            "signature_value": _token_signature(key, tbs.dump()),
        }
    )
    return x509.load_der_x509_certificate(signed.dump())


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, key: CertificateIssuerPrivateKeyTypes
) -> x509.CertificateRevocationList:
    """``builder``'s CRL signed by ``key`` with SHA-256 (in the token for a :class:`TokenKey`)."""
    if not isinstance(key, TokenKey):
        return builder.sign(key, hashes.SHA256())
    draft = asn1_crl.CertificateList.load(
        builder.sign(_stand_in_key(), hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    )
    tbs = draft["tbs_cert_list"]
    signed = asn1_crl.CertificateList(
        {
            "tbs_cert_list": tbs,
            "signature_algorithm": draft["signature_algorithm"],
            "signature": _token_signature(key, tbs.dump()),
        }
    )
    return x509.load_der_x509_crl(signed.dump())
