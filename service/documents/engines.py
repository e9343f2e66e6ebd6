"""Signing engines: the four signatures the service makes, behind one interface.

- the issuer's **certification** of a document :func:`~service.documents.certification.dress`
  prepared (its fields, the issuer's appearance, the DSS, the PAdES extension): DocMDP level 2,
  PAdES B-T;
- a later signer's **approval** (a principal, an office) in its empty field, with the CAs and CRLs
  it needs put into the DSS in the revision it signs;
- an RFC 3161 **signature timestamp token** from the TSA (the local one in ``certs/``, or
  ``DOCSIGN_TSA_URL``);
- a **document (archive) timestamp** over the whole file (PAdES B-LTA).

Two implementations, chosen by ``DOCSIGN_SIGNING_ENGINE`` in :func:`signing_engine`, the one place
that chooses:

- :class:`FastEngine` (``fast``, the default): the service's own certification
  (``certification.py``: the CMS, the update and the DSS written directly), its own token
  builder (``sign.LocalTimeStamper``), pyHanko with a parsed key and a learned reserve for
  approvals, ``ltv.add_archive_timestamp`` with a fixed reserve;
- :class:`PyHankoEngine` (``pyhanko``): pyHanko's own API throughout (``PdfSigner`` with
  ``PdfSignatureMetadata(certify=True, docmdp_permissions=FILL_FORMS)``, ``SimpleSigner``, or
  ``PKCS11Signer`` on a session of its own for a unit key in the PKCS#11 token,
  ``DummyTimeStamper`` or ``HTTPTimeStamper``, ``PdfTimeStamper`` measuring its own room). It is
  the reference the fast one must agree with (``tests/documents/test_engines.py``: the same
  fields, signed attributes, DocMDP and coverage, both valid in pyHanko, pdfsig, Bouncy Castle
  and OpenSSL), and a way back if a validator ever objects to the fast one.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import io
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from asn1crypto import cms, core, keys, tsp
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, general, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.general import simple_cms_attribute
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from service.documents.certification import certify_dressed, timestamp_token
from service.documents.errors import AlreadySigned, NotSignable, PdfInvalid, SigningError, TimestampUnavailable
from service.documents.ltv import add_archive_timestamp
from service.documents.placement import Placement
from service.documents.sign import TSA_POLICY, Appearance, Signatory, _asn1_cert, _stamp_style, sign_field
from service.pki.errors import TokenUnavailable
from service.pki.token import TokenKey, TokenSettings

ENGINES = ("fast", "pyhanko")


class SigningEngine(Protocol):
    """What makes the service's signatures. Every method returns the whole new file (an
    incremental update: the input's bytes are its start) or the token."""

    #: ``fast`` or ``pyhanko``, as in ``DOCSIGN_SIGNING_ENGINE``.
    name: str
    #: Keys, the TSA and the DSS material, built once per process (shared by both engines).
    signatory: Signatory

    def certify(self, pdf: bytes, *, unit_key: str, placement: Placement, appearance: Appearance, reason: str) -> bytes:
        """The issuer's certification (DocMDP level 2, PAdES B-T) in the field of ``placement``,
        of a document ``dress`` prepared with the same placement and appearance."""
        ...

    def approve(self, pdf: bytes, *, unit_key: str, placement: Placement, appearance: Appearance, reason: str) -> bytes:
        """A later signer's approval signature (PAdES B-T) in its existing empty field."""
        ...

    def timestamp_token(self, message: bytes) -> bytes:
        """An RFC 3161 timestamp token (the ContentInfo, DER) over the SHA-256 of ``message``
        (a signature value), from the TSA signatures get their tokens from."""
        ...

    def document_timestamp(self, pdf: bytes, *, crls: Sequence[bytes], certs: Sequence[bytes] = ()) -> bytes:
        """A document timestamp over all of ``pdf`` (PAdES B-LTA), with ``crls`` and ``certs``
        (DER) put into the DSS in the same update."""
        ...


class FastEngine:
    """The service's own certification and tokens, pyHanko tuned for approvals and archive
    timestamps: what runs by default."""

    name = "fast"

    def __init__(self, signatory: Signatory) -> None:
        self.signatory = signatory

    def certify(self, pdf: bytes, *, unit_key: str, placement: Placement, appearance: Appearance, reason: str) -> bytes:
        # the appearance is already in the document: dress copied it in, built once per unit
        return certify_dressed(
            pdf, signatory=self.signatory, unit_key=unit_key, field_name=placement.field_name, reason=reason
        )

    def approve(self, pdf: bytes, *, unit_key: str, placement: Placement, appearance: Appearance, reason: str) -> bytes:
        return sign_field(
            pdf, signatory=self.signatory, unit_key=unit_key, placement=placement, appearance=appearance, reason=reason
        )

    def timestamp_token(self, message: bytes) -> bytes:
        return timestamp_token(self.signatory, message)

    def document_timestamp(self, pdf: bytes, *, crls: Sequence[bytes], certs: Sequence[bytes] = ()) -> bytes:
        return add_archive_timestamp(pdf, timestamper=self.signatory.timestamper(), crls=crls, certs=certs)


class ReferenceTimeStamper(DummyTimeStamper):  # type: ignore[misc]
    """pyHanko's in-process TSA with the TSA key from ``certs/``: the token as pyHanko builds it
    (asn1crypto encodes the signed attributes, sorted as DER wants), with our policy, the
    service's clock, and the TSA's certificate named by ESS signing-certificate-v2 (SHA-256)
    where pyHanko's test TSA writes v1 (SHA-1). The key is parsed once, not for every token; a key
    in the PKCS#11 token is not exported: :meth:`_sign_tst_info` asks the key object."""

    def __init__(self, cert: Any, key: RSAPrivateKey, now: Callable[[], datetime.datetime]) -> None:
        self._now = now
        key_info = (
            None
            if isinstance(key, TokenKey)
            else keys.PrivateKeyInfo.load(
                key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        )
        # certs_to_embed empty: a token carries the TSA's own certificate only, as the local TSA's
        super().__init__(tsa_cert=_asn1_cert(cert), tsa_key=key_info, certs_to_embed=SimpleCertificateStore())
        self._key = key

    @property
    def fixed_dt(self) -> datetime.datetime:
        return self._now()

    @fixed_dt.setter
    def fixed_dt(self, value: datetime.datetime | None) -> None:
        if value is not None:
            raise ValueError("the reference TSA takes its time from the service clock")

    def _build_tst_info(
        self, message_imprint: tsp.MessageImprint, dt: datetime.datetime, req: tsp.TimeStampReq
    ) -> tsp.TSTInfo:
        info = super()._build_tst_info(message_imprint, dt, req)
        info["policy"] = tsp.ObjectIdentifier(TSA_POLICY)
        return info

    def _sign_tst_info(
        self, tst_info_data: bytes, md_algorithm: str, dt: datetime.datetime
    ) -> tuple[bytes, cms.CMSAttributes]:
        digest = hashlib.new(md_algorithm, tst_info_data).digest()
        signed_attrs = cms.CMSAttributes(
            [
                simple_cms_attribute("content_type", "tst_info"),
                simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(dt)})),
                simple_cms_attribute(
                    "signing_certificate_v2", general.as_signing_certificate_v2(self.tsa_cert, "sha256")
                ),
                simple_cms_attribute("message_digest", digest),
            ]
        )
        signature = self._key.sign(signed_attrs.dump(), PKCS1v15(), get_pyca_cryptography_hash(md_algorithm.upper()))
        return signature, signed_attrs


class TokenSigner(PKCS11Signer):  # type: ignore[misc]
    """pyHanko's ``PKCS11Signer`` for a unit key in the token, on a session of its own; one
    signature at a time (a PKCS#11 session serves one thread at a time)."""

    def __init__(self, session: Any, lock: threading.Lock, *, ca_chain: list[Any], **kwargs: Any) -> None:
        super().__init__(session, ca_chain=ca_chain, **kwargs)
        # PKCS11Signer registers the signing certificate with the chain, and the CMS would then
        # carry it twice (Bouncy Castle: "2 certificates match the signer"): the chain alone, as
        # SimpleSigner is given it
        self._cert_registry = SimpleCertificateStore.from_certs(ca_chain)
        self._session_lock = lock

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if dry_run:
            return await super().async_sign_raw(data, digest_algorithm, dry_run=True)  # type: ignore[no-any-return]
        with self._session_lock:  # each signing thread runs its own event loop: this waits for the other
            return await super().async_sign_raw(data, digest_algorithm)  # type: ignore[no-any-return]


def pkcs11_session(settings: TokenSettings) -> Any:
    """A session on the token of ``settings``, opened by pyHanko, logged in unless this process
    already is (PKCS#11 logs in a process: the PKI's own session may have done it)."""
    import pkcs11

    criteria = TokenCriteria(label=settings.label)
    try:
        try:
            return open_pkcs11_session(settings.module, token_criteria=criteria, user_pin=settings.pin)
        except pkcs11.UserAlreadyLoggedIn:
            return open_pkcs11_session(settings.module, token_criteria=criteria)
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
        raise TokenUnavailable(
            f"无法打开 PKCS#11 令牌「{settings.label}」（模块 {settings.module}）：{type(exc).__name__}。"
            "请检查令牌是否插入、标签和 PIN 是否正确。"
        ) from exc


class PyHankoEngine:
    """pyHanko's own signer, timestamper and document timestamper: the reference."""

    name = "pyhanko"

    def __init__(self, signatory: Signatory) -> None:
        self.signatory = signatory
        self._signers: dict[tuple[str, int], signers.Signer] = {}
        self._timestamper: tuple[int | None, TimeStamper] | None = None
        self._lock = threading.Lock()

    # --- what pyHanko is given ----------------------------------------------------------------

    def signer(self, unit_key: str) -> signers.Signer:
        """pyHanko's ``SimpleSigner`` over the unit's key, or its ``PKCS11Signer`` for a key in
        the token (:class:`TokenSigner`: the key is found there by its id, never read out),
        carrying the chain up to (not including) the self-signed root, as the fast engine's CMS
        does."""
        creds = self.signatory.pki.unit(unit_key)  # refuses revoked or expired certificates
        cache_key = (unit_key, creds.certificate.serial_number)
        with self._lock:
            found = self._signers.get(cache_key)
            if found is None:
                above = [c for c in (_asn1_cert(c) for c in creds.chain) if c.self_signed == "no"]
                key = creds.private_key
                if isinstance(key, TokenKey):
                    made = TokenSigner(
                        pkcs11_session(key.token.settings),
                        threading.Lock(),
                        signing_cert=_asn1_cert(creds.certificate),
                        ca_chain=above,
                        key_id=key.key_id,
                        other_certs_to_pull=(),  # the chain is ours, not the token's
                    )
                    try:
                        # the key's handle, found now rather than by two signing threads at once
                        asyncio.run(made.ensure_objects_loaded())  # type: ignore[no-untyped-call]
                    except Exception as exc:
                        raise TokenUnavailable(
                            f"PKCS#11 令牌「{key.token.label}」中找不到单位「{creds.name}」的私钥：{exc}。"
                            "请确认插入的是签发证书时使用的令牌。"
                        ) from exc
                    found = made
                else:
                    key_info = keys.PrivateKeyInfo.load(
                        key.private_bytes(
                            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                        )
                    )
                    found = signers.SimpleSigner(
                        signing_cert=_asn1_cert(creds.certificate),
                        signing_key=key_info,
                        cert_registry=SimpleCertificateStore.from_certs(above),
                    )
                self._signers[cache_key] = found
            return found

    def timestamper(self) -> TimeStamper:
        """pyHanko's ``HTTPTimeStamper`` for ``DOCSIGN_TSA_URL``, else :class:`ReferenceTimeStamper`
        with the local TSA's key (made again once the TSA has been rolled over)."""
        signatory = self.signatory
        serial = None if signatory.tsa_url else signatory.pki.tsa()[0].serial_number
        with self._lock:
            if self._timestamper is None or self._timestamper[0] != serial:
                if signatory.tsa_url:
                    made: TimeStamper = HTTPTimeStamper(signatory.tsa_url)
                else:
                    cert, key = signatory.pki.tsa()
                    assert isinstance(key, RSAPrivateKey)
                    made = ReferenceTimeStamper(cert, key, signatory.tsa_time)
                self._timestamper = (serial, made)
            return self._timestamper[1]

    def metadata(self, field_name: str, reason: str, name: str, *, certify: bool) -> signers.PdfSignatureMetadata:
        """The signature's settings: PAdES, SHA-256, a certification allowing form filling and
        signing (DocMDP level 2), validation data in the DSS (put there before signing)."""
        return signers.PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            certify=certify,
            docmdp_permissions=fields.MDPPerm.FILL_FORMS,
            embed_validation_info=False,
            reason=reason,
            name=name,
        )

    # --- the four signatures ------------------------------------------------------------------

    def certify(self, pdf: bytes, *, unit_key: str, placement: Placement, appearance: Appearance, reason: str) -> bytes:
        return self._sign(pdf, unit_key, placement, appearance, reason, certify=True)

    def approve(self, pdf: bytes, *, unit_key: str, placement: Placement, appearance: Appearance, reason: str) -> bytes:
        return self._sign(pdf, unit_key, placement, appearance, reason, certify=False)

    def timestamp_token(self, message: bytes) -> bytes:
        digest = hashlib.sha256(message).digest()
        try:
            token: cms.ContentInfo = asyncio.run(self.timestamper().async_timestamp(digest, "sha256"))
        except TimestampRequestError as exc:
            raise TimestampUnavailable(details={"reason": str(exc)}) from exc
        return bytes(token.dump())

    def document_timestamp(self, pdf: bytes, *, crls: Sequence[bytes], certs: Sequence[bytes] = ()) -> bytes:
        # pyHanko's PdfTimeStamper measuring the room on a dummy token of its own
        return add_archive_timestamp(pdf, timestamper=self.timestamper(), crls=crls, certs=certs, bytes_reserved=None)

    def _sign(
        self, pdf: bytes, unit_key: str, placement: Placement, appearance: Appearance, reason: str, *, certify: bool
    ) -> bytes:
        signer = self.signer(unit_key)
        name = self.signatory.pki.unit(unit_key).name
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
            _check_empty_field(writer, placement.field_name)
            if not certify:  # the certification's DSS is in the document already (dress)
                certs, crls = self._validation_data(unit_key)
                DocumentSecurityStore.supply_dss_in_writer(writer, None, certs=certs, crls=crls)
            pdf_signer = signers.PdfSigner(
                self.metadata(placement.field_name, reason, name, certify=certify),
                signer,
                timestamper=self.timestamper(),
                # pyHanko draws a visible field's appearance again: the same seal dress drew
                stamp_style=_stamp_style(placement, appearance),
            )
            out = pdf_signer.sign_pdf(writer, existing_fields_only=True)
        except TimestampRequestError as exc:
            raise TimestampUnavailable(details={"reason": str(exc)}) from exc
        except PyHankoSigningError as exc:
            raise SigningError(details={"reason": str(exc)}) from exc
        except (PdfError, ValueError, KeyError, TypeError) as exc:
            raise PdfInvalid("文件不是有效的 PDF，无法签署。") from exc
        data: bytes = out.getvalue()
        return data

    def _validation_data(self, unit_key: str) -> tuple[list[asn1_x509.Certificate], list[asn1_crl.CertificateList]]:
        """The CAs above the signer and above the TSA, and the current CRLs, for the DSS."""
        pki = self.signatory.pki
        tsa_cert, _ = pki.tsa()
        der = serialization.Encoding.DER
        certs = {c.public_bytes(der): None for c in (*pki.unit(unit_key).chain, *pki.chain_for(tsa_cert))}
        return (
            [asn1_x509.Certificate.load(c) for c in certs],
            [asn1_crl.CertificateList.load(c.public_bytes(der)) for c in pki.crls()],
        )


def _check_empty_field(writer: IncrementalPdfFileWriter, field_name: str) -> None:
    for name, value, _ in fields.enumerate_sig_fields(writer):
        if name == field_name:
            if value is not None:
                raise AlreadySigned()
            return
    raise NotSignable(f"该文书中没有名为「{field_name}」的签署位置。")


def signing_engine(name: str, signatory: Signatory) -> SigningEngine:
    """The engine ``DOCSIGN_SIGNING_ENGINE`` names, over ``signatory``: the one place that chooses."""
    if name == "pyhanko":
        return PyHankoEngine(signatory)
    if name == "fast":
        return FastEngine(signatory)
    raise ValueError(f"unknown signing engine {name!r}: one of {', '.join(ENGINES)}")
