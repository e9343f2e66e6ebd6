"""Sign: PAdES signatures with pyHanko, a timestamp from the TSA, revocation data embedded.

The issuer *certifies* a document (DocMDP level 2: after it, only form filling and signing are
allowed) after creating, up front, an empty signature field for every later signer: a field added
after a certification signature breaks it. A later signer fills its field in an incremental update
and the issuer's certification stays valid. Every signature carries an RFC 3161 timestamp (PAdES
B-T); the CRLs of our CAs follow in a DSS update (B-LT), which the certification permits.

pyHanko's ``SimpleSigner`` parses the private key again for every signature (about 48 ms for RSA)
and, without a reserved size, signs twice to measure the signature; :class:`UnitSigner` keeps the
parsed key and :data:`SIGNATURE_HEX_DIGITS` reserves the size, taking a signature from about 128 ms to
15–20 ms.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import io
import logging
import re
import secrets
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, cms, core, keys, tsp
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from PIL import Image
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.generic import ArrayObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign._session_scope import run_and_release
from pyhanko.sign.attributes import CMSAttributeProvider, SigningCertificateV2Provider
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.stamp import StaticStampStyle
from pyhanko.stamp.static import StaticContentStamp
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from service.documents.errors import AlreadySigned, NotSignable, PdfInvalid, SigningError, TimestampUnavailable
from service.documents.placement import Placement
from service.documents.seal import SignatureAppearance
from service.pki.store import Pki
from service.pki.token import TokenKey
from service.pki.units import UnitCredentials


class _ExpectedNoFetching(logging.Filter):
    """pyHanko warns on every signature that revocation data is embedded without online fetching:
    that is our design (the CRLs are our own and passed in), so the warning says nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_ExpectedNoFetching())

#: Room reserved for the CMS signature, in hex digits (pyHanko's unit; two per byte). Ours come to
#: about 7.4 KB (the signer's chain, the timestamp token with the TSA's chain, signed attributes);
#: 12 KB leaves room for a 4096-bit key. A larger one (a long imported chain) is retried with
#: pyHanko's own estimate, which costs a second signing pass.
SIGNATURE_HEX_DIGITS = 24576
#: Room added to what a signer's last signature took, in hex digits: a timestamp token's serial
#: number, nonce and time vary by a few bytes between signatures (at most about 20); the rest of a
#: CMS of one signer does not. 64 bytes cover that; a larger one is signed again with the fixed room.
RESERVE_MARGIN = 128
#: Our own TSA policy: an OID under 2.25 (ITU-T X.667, derived from a UUID) needs no registration.
TSA_POLICY = "2.25.262603128419722913442355307858124730251"


def _asn1_cert(cert: object) -> asn1_x509.Certificate:
    from cryptography import x509

    assert isinstance(cert, x509.Certificate)
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class _EncodedAttribute(CMSAttributeProvider):  # type: ignore[misc]
    """A signed attribute whose encoding never changes, handed out as a freshly parsed copy."""

    def __init__(self, attribute_type: str, der: bytes) -> None:
        self.attribute_type = attribute_type
        self._der = der

    async def get_attribute(self, dry_run: bool = False) -> cms.CMSAttribute:
        return cms.CMSAttribute.load(self._der)


class UnitSigner(signers.SimpleSigner):  # type: ignore[misc]
    """pyHanko's SimpleSigner with the unit's key parsed once."""

    def __init__(self, creds: UnitCredentials) -> None:
        # a key in a PKCS#11 token cannot be exported: pyHanko never sees it, :meth:`sign_raw` and
        # the fast path ask the key object, which asks the token
        key_info = (
            None
            if creds.in_token
            else keys.PrivateKeyInfo.load(
                creds.private_key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        )
        chain = [_asn1_cert(c) for c in creds.chain]
        #: The whole chain above the unit's certificate, root included, for the document's DSS.
        self.full_chain = chain
        #: What the CMS carries beside the unit's certificate: the chain up to (not including) a
        #: self-signed root.
        self.cms_chain = [c for c in chain if c.self_signed == "no"]
        super().__init__(
            signing_cert=_asn1_cert(creds.certificate),
            signing_key=key_info,
            # in the CMS, the chain up to (not including) a self-signed root: a verifier must have
            # the root already, and it is in the DSS; 1.2 KB less in every signature (2.4 KB of hex)
            cert_registry=SimpleCertificateStore.from_certs(self.cms_chain),
        )
        self._key = creds.private_key
        self.unit_name = creds.name

    @property
    def private_key(self) -> Any:
        """The unit's parsed private key (pyca/cryptography)."""
        return self._key

    def _signed_attr_providers(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """pyHanko's providers, with the signing-certificate-v2 attribute (the same for every
        signature of this unit) encoded once instead of rebuilt and re-encoded each time.
        Relies on pyHanko's internal hook; pyHanko is pinned to 0.38."""
        for provider in super()._signed_attr_providers(*args, **kwargs):
            if isinstance(provider, SigningCertificateV2Provider):
                yield _EncodedAttribute(provider.attribute_type, self.cert_v2_der)
            else:
                yield provider

    @functools.cached_property
    def cert_v2_der(self) -> bytes:
        der: bytes = simple_cms_attribute("signing_certificate_v2", as_signing_certificate_v2(self.signing_cert)).dump()
        return der

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        algo = mechanism["algorithm"].native
        hash_algo = get_pyca_cryptography_hash(digest_algorithm)
        if algo in ("rsassa_pkcs1v15", "sha256_rsa", "sha384_rsa", "sha512_rsa") and isinstance(
            self._key, RSAPrivateKey
        ):
            return self._key.sign(data, PKCS1v15(), hash_algo)
        if "ecdsa" in algo and isinstance(self._key, EllipticCurvePrivateKey):
            return self._key.sign(data, ECDSA(hash_algo))
        if self.signing_key is None:
            raise SigningError(details={"reason": f"a key in a token signs no {algo}"})
        result: bytes = super().sign_raw(data, digest_algorithm)
        return result


def _der(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length, content."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


_INTEGER_1 = _der(0x02, b"\x01")
_INTEGER_3 = _der(0x02, b"\x03")
_OID_TST_INFO = core.ObjectIdentifier("1.2.840.113549.1.9.16.1.4").dump()
_OID_SIGNED_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
_OID_SIGNING_TIME = core.ObjectIdentifier("1.2.840.113549.1.9.5").dump()
_OID_MESSAGE_DIGEST = core.ObjectIdentifier("1.2.840.113549.1.9.4").dump()


class LocalTimeStamper(DummyTimeStamper):  # type: ignore[misc]
    """The local TSA: RFC 3161 tokens signed in-process with the TSA key from certs/.

    pyHanko's in-process TSA, with our policy OID and the key parsed once. A token carries the
    TSA's own certificate only: the CA above it is in the document's DSS (the verifier reads it
    from there), which keeps 1.3 KB (2.5 KB of hex) out of every signature.
    """

    def __init__(self, pki: Pki, now: Callable[[], datetime.datetime] | None = None) -> None:
        self._now = now
        cert, key = pki.tsa()
        assert isinstance(key, RSAPrivateKey)
        # a key in a PKCS#11 token cannot be exported; :meth:`_sign_tst_info` asks the key object
        key_info = (
            None
            if isinstance(key, TokenKey)
            else keys.PrivateKeyInfo.load(
                key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        )
        self._attrs: list[bytes] | None = None
        super().__init__(tsa_cert=_asn1_cert(cert), tsa_key=key_info, certs_to_embed=SimpleCertificateStore())
        self._key = key
        self._tsa_der = cert.public_bytes(serialization.Encoding.DER)
        self._der_cache: dict[str, dict[str, bytes]] = {}
        self._der_lock = threading.Lock()

    @property
    def fixed_dt(self) -> datetime.datetime | None:
        """The token's time: the service clock when one is given (tests move it), else the system's."""
        return self._now() if self._now is not None else None

    @fixed_dt.setter
    def fixed_dt(self, value: datetime.datetime | None) -> None:
        if value is not None:
            raise ValueError("the local TSA takes its time from the service clock")

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """A granted response with a token for ``req``.

        Only the TSTInfo and the signed attributes are built with asn1crypto; the token around
        them is put together from DER encoded once per TSA. asn1crypto re-encodes a structure it
        built (certificates and all) at every dump, and pyHanko dumps the token several times per
        signature: built the usual way, a token cost about 15 ms, this way well under 1 ms.
        """
        message_imprint: tsp.MessageImprint = req["message_imprint"]
        md_algorithm = self.override_md or message_imprint["hash_algorithm"]["algorithm"].native
        at = self.fixed_dt or datetime.datetime.now(datetime.UTC)
        tst_info_data = self._build_tst_info(message_imprint, at, req).dump()
        token = self._token_der(tst_info_data, md_algorithm, at)
        return tsp.TimeStampResp.load(_der(0x30, self._constant_der(md_algorithm)["status"] + token))

    def token_der(self, digest: bytes, md_algorithm: str) -> bytes:
        """A timestamp token (the ContentInfo, as DER) over ``digest``, without a request (no nonce)."""
        at = self.fixed_dt or datetime.datetime.now(datetime.UTC)
        imprint = tsp.MessageImprint({"hash_algorithm": {"algorithm": md_algorithm}, "hashed_message": digest})
        info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": TSA_POLICY,
                "message_imprint": imprint,
                "serial_number": secrets.randbits(63),
                "gen_time": at,
                "tsa": asn1_x509.GeneralName(name="directory_name", value=self.tsa_cert.subject),
            }
        )
        return self._token_der(info.dump(), md_algorithm, at)

    def _token_der(self, tst_info_data: bytes, md_algorithm: str, at: datetime.datetime) -> bytes:
        """The token (RFC 3161 ContentInfo around a SignedData) for a TSTInfo, as DER."""
        signature, signed_attrs = self._sign_tst_info(tst_info_data, md_algorithm, at)
        constant = self._constant_der(md_algorithm)
        signer_info = _der(
            0x30,
            _INTEGER_1
            + constant["sid"]
            + constant["digest_algorithm"]
            + b"\xa0"
            + signed_attrs[1:]  # [0] IMPLICIT SET OF Attribute
            + constant["signature_algorithm"]
            + _der(0x04, signature),
        )
        encap = _der(0x30, _OID_TST_INFO + _der(0xA0, _der(0x04, tst_info_data)))
        signed_data = _der(
            0x30,
            _INTEGER_3
            + _der(0x31, constant["digest_algorithm"])
            + encap
            + constant["certificates"]
            + _der(0x31, signer_info),
        )
        return _der(0x30, _OID_SIGNED_DATA + _der(0xA0, signed_data))

    def _constant_der(self, md_algorithm: str) -> dict[str, bytes]:
        with self._der_lock:
            if md_algorithm not in self._der_cache:
                cert = asn1_x509.Certificate.load(self._tsa_der)
                self._der_cache[md_algorithm] = {
                    "sid": cms.IssuerAndSerialNumber(
                        {"issuer": cert.issuer, "serial_number": cert.serial_number}
                    ).dump(),
                    "digest_algorithm": algos.DigestAlgorithm({"algorithm": md_algorithm}).dump(),
                    "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}).dump(),
                    "certificates": _der(0xA0, self._tsa_der),
                    "status": tsp.PKIStatusInfo({"status": "granted"}).dump(),
                }
            return self._der_cache[md_algorithm]

    def _build_tst_info(
        self, message_imprint: tsp.MessageImprint, dt: datetime.datetime, req: tsp.TimeStampReq
    ) -> tsp.TSTInfo:
        info = super()._build_tst_info(message_imprint, dt, req)
        info["policy"] = tsp.ObjectIdentifier(TSA_POLICY)
        return info

    def _sign_tst_info(self, tst_info_data: bytes, md_algorithm: str, dt: datetime.datetime) -> tuple[bytes, bytes]:
        """The TSA's signature over the token's signed attributes, and their DER: the attributes
        every token shares encoded once, the signing time and the digest written directly, all
        sorted as DER orders a SET OF (a validator that re-encodes them before hashing, as Bouncy
        Castle and so EU DSS and iText do, must get the bytes that were signed)."""
        digest = hashes.Hash(get_pyca_cryptography_hash(md_algorithm))
        digest.update(tst_info_data)
        attributes = [
            *self._constant_attrs_der(),
            _der(0x30, _OID_SIGNING_TIME + _der(0x31, core.UTCTime(dt).dump())),
            _der(0x30, _OID_MESSAGE_DIGEST + _der(0x31, _der(0x04, digest.finalize()))),
        ]
        signed_attrs = _der(0x31, b"".join(sorted(attributes)))
        signature = self._key.sign(signed_attrs, PKCS1v15(), get_pyca_cryptography_hash(md_algorithm.upper()))
        return signature, signed_attrs

    def _constant_attrs_der(self) -> list[bytes]:
        """The attributes every token shares (content type; the TSA's certificate named by its
        SHA-256 hash, ESS signing-certificate-v2), encoded once: asn1crypto re-encodes a freshly
        built value on every dump."""
        if self._attrs is None:
            from pyhanko.sign import general

            built = [
                simple_cms_attribute("content_type", "tst_info"),
                simple_cms_attribute(
                    "signing_certificate_v2", general.as_signing_certificate_v2(self.tsa_cert, "sha256")
                ),
            ]
            self._attrs = [a.dump() for a in built]
        return self._attrs


class Signatory:
    """Everything signing needs, built once per process: unit signers, the TSA, the trust context."""

    def __init__(self, pki: Pki, tsa_url: str = "", now: Callable[[], datetime.datetime] | None = None) -> None:
        self.pki = pki
        self.tsa_url = tsa_url
        self.now = now
        self._local = threading.local()
        self._signers: dict[tuple[str, int], UnitSigner] = {}
        self._timestamper: TimeStamper | None = None
        self._context: tuple[tuple[bytes, ...], ValidationContext] | None = None
        self._dss: (
            tuple[tuple[bytes, ...], list[bytes], list[bytes], dict[int, dict[str, tuple[bytes, ...]]]] | None
        ) = None
        self._reserve: dict[int, int] = {}
        self._lock = threading.Lock()

    def reserve_for(self, signer: UnitSigner) -> int | None:
        """Hex digits to reserve for ``signer``'s next signature: what its last one took plus a
        margin, so a signed PDF does not carry kilobytes of zeros; None before its first."""
        used = self._reserve.get(id(signer))
        return used + used % 2 + RESERVE_MARGIN if used is not None else None  # pyHanko wants it even

    def learn_reserve(self, signer: UnitSigner, used: int | None) -> None:
        if used:
            self._reserve[id(signer)] = max(used, self._reserve.get(id(signer), 0))

    def signer(self, unit_key: str) -> UnitSigner:
        creds = self.pki.unit(unit_key)  # refuses revoked or expired certificates
        cache_key = (unit_key, creds.certificate.serial_number)
        with self._lock:
            if cache_key not in self._signers:
                self._signers[cache_key] = UnitSigner(creds)
            return self._signers[cache_key]

    def timestamper(self) -> TimeStamper:
        """The TSA client; the local one is rebuilt when the TSA's key has been rolled over."""
        serial = None if self.tsa_url else self.pki.tsa()[0].serial_number
        with self._lock:
            current = self._timestamper
            if current is None or (isinstance(current, LocalTimeStamper) and current.tsa_cert.serial_number != serial):
                current = HTTPTimeStamper(self.tsa_url) if self.tsa_url else LocalTimeStamper(self.pki, self.tsa_time)
                self._timestamper = current
            return current

    def add_validation_data(self, writer: IncrementalPdfFileWriter, signer: UnitSigner) -> None:
        """Put the signer's chain, the TSA's certificate and our CRLs into the document's DSS, in the
        revision the signature covers (PAdES B-LT material). The data is the same for every document a
        unit signs, so it is gathered and compressed once, not validated again for each signature as
        pyHanko's post-signing DSS update would. A document without a DSS gets it written directly
        from those compressed streams; one that has a DSS (every document we certified) has it
        merged by pyHanko."""
        entries = self.dss_entries(signer)
        if "/DSS" not in writer.root:
            dss = generic.DictionaryObject()
            for key, streams in entries.items():
                dss[generic.NameObject(key)] = generic.ArrayObject(
                    writer.add_object(
                        generic.StreamObject(
                            {generic.NameObject("/Filter"): generic.NameObject("/FlateDecode")}, encoded_data=data
                        )
                    )
                    for data in streams
                )
            writer.root[generic.NameObject("/DSS")] = writer.add_object(dss)
            writer.update_root()
            return
        certs = [asn1_x509.Certificate.load(zlib.decompress(c)) for c in entries["/Certs"]]
        crls = [asn1_crl.CertificateList.load(zlib.decompress(c)) for c in entries["/CRLs"]]
        DocumentSecurityStore.supply_dss_in_writer(writer, None, certs=certs, crls=crls)

    def dss_entries(self, signer: UnitSigner) -> dict[str, tuple[bytes, ...]]:
        """The DSS's certificates and CRLs, each compressed, for ``signer``: built once while the
        CRLs and the TSA stay the same. The certificates are the CAs above the signer and above
        the TSA (the root included, each once); the signer's own certificate is in its CMS and
        the TSA's in its timestamp token, so the DSS does not repeat them (2.3 KB a document)."""
        crls = self.pki.crls()
        tsa_cert, _ = self.pki.tsa()
        tsa_der = tsa_cert.public_bytes(serialization.Encoding.DER)
        key = (*(c.public_bytes(serialization.Encoding.DER) for c in crls), tsa_der)
        with self._lock:
            if self._dss is None or self._dss[0] != key:
                tsa_chain = [c.public_bytes(serialization.Encoding.DER) for c in self.pki.chain_for(tsa_cert)]
                self._dss = (key, tsa_chain, list(key[:-1]), {})
            _, ca_ders, crl_ders, per_signer = self._dss
            found = per_signer.get(id(signer))
            if found is None:
                ders: list[bytes] = []
                for der in (c.dump() for c in signer.full_chain):
                    if der not in ders:
                        ders.append(der)
                ders += [der for der in ca_ders if der not in ders]
                found = {
                    "/Certs": tuple(zlib.compress(der, 9) for der in ders),
                    "/CRLs": tuple(zlib.compress(der, 9) for der in crl_ders),
                }
                per_signer[id(signer)] = found
            return found

    @contextmanager
    def timestamped_at(self, at: datetime.datetime | None) -> Iterator[None]:
        """Signatures made in this block (on this thread) get the local TSA's time ``at``: a worker
        process signing for a service whose clock is not the system's."""
        self._local.at = at
        try:
            yield
        finally:
            self._local.at = None

    def tsa_time(self) -> datetime.datetime:
        at: datetime.datetime | None = getattr(self._local, "at", None)
        if at is not None:
            return at
        return self.now() if self.now is not None else datetime.datetime.now(datetime.UTC)

    def validation_context(self) -> ValidationContext:
        """Trust roots and current CRLs, for the revocation data embedded with each signature.

        Kept while the CRLs stay the same: a context remembers the paths it validated, which
        saves the chain validation pyHanko does for every signature's embedded revocation data.
        """
        crls = [c.public_bytes(serialization.Encoding.DER) for c in self.pki.crls()]
        key = tuple(crls)
        with self._lock:
            if self._context is None or self._context[0] != key:
                context = ValidationContext(
                    trust_roots=[_asn1_cert(c) for c in self.pki.trust_roots()],
                    other_certs=[_asn1_cert(c) for c in self.pki.issuing_certificates()],
                    crls=crls,
                    allow_fetching=False,
                    revocation_mode="hard-fail",
                )
                self._context = (key, context)
            return self._context[1]


@dataclass(frozen=True)
class Appearance:
    """What a signature shows: the unit's seal (drawn from its name, or an uploaded image) and a signature."""

    seal_name: str
    seal_image: Image.Image | None = None
    signature: Image.Image | None = None


class _CompressedStamp(StaticContentStamp):  # type: ignore[misc]
    """The signature's appearance as a compressed form XObject (pyHanko writes it plain: the drawn
    seal's 16 KB of path operators become about 6 KB), compressed once per unit."""

    def as_form_xobject(self) -> Any:
        form = super().as_form_xobject()
        compressed = generic.StreamObject(
            {**form, generic.NameObject("/Filter"): generic.NameObject("/FlateDecode")},
            encoded_data=_deflated(form.data),
        )
        return compressed


@functools.lru_cache(maxsize=64)
def _deflated(data: bytes) -> bytes:
    """A seal appearance is the same in every document its unit signs: compressed once."""
    return zlib.compress(data, 6)


class _CompressedStampStyle(StaticStampStyle):  # type: ignore[misc]
    def create_stamp(self, writer: Any, box: Any, text_params: dict[str, Any]) -> StaticContentStamp:
        return _CompressedStamp(writer=writer, style=self, box=box)


def _stamp_style(placement: Placement, appearance: Appearance) -> StaticStampStyle | None:
    if placement.box is None:
        return None
    width, height = placement.size
    content = SignatureAppearance(
        width,
        height,
        seal_name=appearance.seal_name,
        seal_at=placement.seal_at,
        seal_image=appearance.seal_image,
        signature=appearance.signature,
        signature_box=placement.signature_box,
    )
    return _CompressedStampStyle(
        background=content,
        border_width=0,
        background_opacity=1.0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(0),
        ),
    )


_loops = threading.local()


def _event_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop for pyHanko's coroutines: ``asyncio.run`` would make and close a
    loop for every signature (about half a millisecond)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loops.loop = asyncio.new_event_loop()
    return loop


def _writer(pdf: bytes) -> IncrementalPdfFileWriter:
    """An incremental writer whose update ends with a classic cross-reference table and trailer,
    even where the document's first revision keeps its objects in object streams: every update
    of a document reads the same way (and stays readable by the simplest tools)."""
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise PdfInvalid("文件不是有效的 PDF，无法签署。") from exc
    writer.stream_xrefs = False
    return writer


def _sign(
    pdf: bytes,
    prepare: Callable[[IncrementalPdfFileWriter], None],
    meta: signers.PdfSignatureMetadata,
    signer: UnitSigner,
    signatory: Signatory,
    style: StaticStampStyle | None,
    existing_only: bool,
) -> bytes:
    learned = signatory.reserve_for(signer)
    # the room the last signature of this signer took, then the fixed room, then pyHanko's own
    # measure (a second signing pass)
    attempts: list[int | None] = [learned, SIGNATURE_HEX_DIGITS, None] if learned else [SIGNATURE_HEX_DIGITS, None]
    for reserve in attempts:
        writer = _writer(pdf)
        prepare(writer)
        pdf_signer = signers.PdfSigner(meta, signer, timestamper=signatory.timestamper(), stamp_style=style)
        try:
            # what PdfSigner.sign_pdf does, on this thread's event loop instead of a new one each time
            out = _event_loop().run_until_complete(
                run_and_release(
                    pdf_signer.async_sign_pdf(writer, existing_fields_only=existing_only, bytes_reserved=reserve),
                    meta.validation_context,
                )
            )
        except PyHankoSigningError as exc:
            if reserve is not None and "larger than expected" in str(exc):
                continue
            raise SigningError(details={"reason": str(exc)}) from exc
        except TimestampRequestError as exc:
            raise TimestampUnavailable(details={"reason": str(exc)}) from exc
        except (PdfError, ValueError, OSError) as exc:
            raise SigningError(details={"reason": str(exc)}) from exc
        data: bytes = out.getvalue()
        signatory.learn_reserve(signer, _signature_hex_digits(data))
        return data
    raise SigningError(details={"reason": "signature does not fit"})


_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def _signature_hex_digits(pdf: bytes) -> int | None:
    """Hex digits the last signature's CMS takes in its /Contents (without the zero padding)."""
    tail = pdf[-65536:] if len(pdf) > 65536 else pdf
    ranges = list(_BYTE_RANGE.finditer(tail)) or list(_BYTE_RANGE.finditer(pdf))
    if not ranges:
        return None
    start, length, second, _ = (int(g) for g in ranges[-1].groups())
    contents = pdf[start + length + 1 : second - 1]  # between < and >
    return len(contents.rstrip(b"0"))


def last_signature_time(pdf: bytes) -> datetime.datetime | None:
    """The time the last signature of a PDF we just signed carries: its timestamp token's, else the
    signer's own. Read from the CMS, without validating again what was just written."""
    tail = pdf[-65536:] if len(pdf) > 65536 else pdf
    ranges = list(_BYTE_RANGE.finditer(tail)) or list(_BYTE_RANGE.finditer(pdf))
    if not ranges:
        return None
    start, length, second, _ = (int(g) for g in ranges[-1].groups())
    try:
        info = cms.ContentInfo.load(bytes.fromhex(pdf[start + length + 1 : second - 1].decode("ascii")))
        signer_info = info["content"]["signer_infos"][0]
        for attr in signer_info["unsigned_attrs"] or []:
            if attr["type"].native == "signature_time_stamp_token":
                tst = attr["values"][0]["content"]["encap_content_info"]["content"].parsed
                gen_time: datetime.datetime = tst["gen_time"].native
                return gen_time
        for attr in signer_info["signed_attrs"] or []:
            if attr["type"].native == "signing_time":
                signed: datetime.datetime = attr["values"][0].native
                return signed
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return None


def empty_field_box(pdf: bytes, field_name: str) -> tuple[int, tuple[float, float, float, float] | None]:
    """Page index and rectangle of an unsigned signature field; refuses a signed or missing one."""
    writer = _writer(pdf)
    for name, value, ref in fields.enumerate_sig_fields(writer):
        if name != field_name:
            continue
        if value is not None:
            raise AlreadySigned()
        field = ref.get_object()
        widget = field["/Kids"][0].get_object() if "/Kids" in field else field
        rect = widget.get("/Rect")
        page_ref = widget.get("/P")
        page = 0
        if page_ref is not None:
            refs = _page_refs(writer)
            page = next((i for i, r in enumerate(refs) if r.idnum == page_ref.idnum), 0)
        box = tuple(float(v) for v in rect) if isinstance(rect, ArrayObject) and any(float(v) for v in rect) else None
        return page, box  # type: ignore[return-value]
    raise NotSignable(f"该文书中没有名为「{field_name}」的签署位置。")


def _page_refs(writer: IncrementalPdfFileWriter) -> list[Any]:
    """Indirect references of the pages, in order."""

    def walk(ref: Any) -> Iterator[Any]:
        node = ref.get_object()
        if node.get("/Type") == "/Pages":
            for kid in node["/Kids"]:
                yield from walk(kid)
        else:
            yield ref

    return list(walk(writer.root.raw_get("/Pages")))


def sign_field(
    pdf: bytes,
    *,
    signatory: Signatory,
    unit_key: str,
    placement: Placement,
    appearance: Appearance,
    reason: str = "签署",
    location: str | None = None,
) -> bytes:
    """A later signer's approval signature in its existing field (incremental update)."""
    signer = signatory.signer(unit_key)
    meta = signers.PdfSignatureMetadata(
        field_name=placement.field_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        embed_validation_info=False,
        reason=reason,
        location=location,
        name=signer.unit_name,
    )
    return _sign(
        pdf,
        lambda writer: signatory.add_validation_data(writer, signer),
        meta,
        signer,
        signatory,
        _stamp_style(placement, appearance),
        existing_only=True,
    )
