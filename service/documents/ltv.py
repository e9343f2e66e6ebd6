"""Long-term validity: archive timestamps (PAdES B-LTA) that keep a signed document provable.

A signature stays provable as long as its timestamp does (see ``verify``): the timestamp proves
when the signature existed, and is itself judged at the time of the next document timestamp, the
newest one at the moment of verification. The newest timestamp stops proving anything when its
TSA's certificates expire or its algorithms become weak; before then, :func:`add_archive_timestamp`
adds a document timestamp over the whole file, with fresh validation data (CRLs, certificates) in
the document's DSS, as an incremental update that leaves every earlier byte as it was.
:func:`archive_timestamp_due` says when that is needed.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asn1crypto import cms
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from service.documents.errors import PdfInvalid, SigningError, TimestampUnavailable
from service.documents.structure import MALFORMED
from service.documents.verify import when
from service.pki.sunsets import DEFAULT_SUNSETS, AlgorithmSunsets

#: Refresh this long before the newest timestamp would stop proving anything.
DEFAULT_MARGIN = dt.timedelta(days=365)
#: Room reserved for the document timestamp token, in hex digits: ours come to about 4 KB (the
#: token with the TSA's certificate and its CA); a longer chain is retried with pyHanko's estimate.
TIMESTAMP_HEX_DIGITS = 16384
#: Name of the invisible signature field of each archive timestamp: 存档时间戳1, 2, ...
FIELD_PREFIX = "ArchiveTimestamp"


DUE_NO_TIMESTAMP = "NO_TIMESTAMP"
DUE_CERTIFICATE_EXPIRING = "CERTIFICATE_EXPIRING"
DUE_ALGORITHM_WEAKENING = "ALGORITHM_WEAKENING"
TOO_LATE = "TOO_LATE"


@dataclass(frozen=True)
class ArchiveTimestampDue:
    """Whether a document needs an archive timestamp now, and why."""

    due: bool
    #: ``NO_TIMESTAMP``, ``CERTIFICATE_EXPIRING``, ``ALGORITHM_WEAKENING``; ``TOO_LATE`` when the
    #: newest timestamp already stopped proving anything (a new one can no longer help); None.
    reason: str | None
    #: Chinese, for the people who run the service.
    message: str
    #: When the newest timestamps stop proving anything (the earliest of certificate expiry and
    #: algorithm weakness); None without a timestamp.
    horizon: dt.datetime | None


def _gen_time(token: cms.SignedData) -> dt.datetime:
    gen_time: dt.datetime = token["encap_content_info"]["content"].parsed["gen_time"].native
    return gen_time


def _tokens_judged_now(reader: PdfFileReader) -> list[cms.SignedData]:
    """The timestamp tokens no later document timestamp covers: those the verifier judges at now.

    The last document timestamp, and the signature timestamps of the signatures after it.
    """
    tokens: list[cms.SignedData] = []
    embedded: list[EmbeddedPdfSignature] = reader.embedded_signatures
    for sig in reversed(embedded):
        if sig.sig_object_type == "/DocTimeStamp":
            tokens.append(sig.signed_data)
            break
        tokens.extend(extract_tst_data_iter(sig.signer_info, signed=False))
    return tokens


def _chain(cert: asn1_x509.Certificate, pool: Iterable[asn1_x509.Certificate]) -> list[asn1_x509.Certificate]:
    """``cert`` and the issuers found for it in ``pool`` (by name), up to a self-signed one."""
    by_subject = {c.subject.dump(): c for c in pool}
    chain = [cert]
    while chain[-1].issuer.dump() != chain[-1].subject.dump():
        issuer = by_subject.get(chain[-1].issuer.dump())
        if issuer is None or issuer in chain:
            break
        chain.append(issuer)
    return chain


def _token_certs(token: cms.SignedData) -> list[asn1_x509.Certificate]:
    return [c.chosen for c in token["certificates"] or () if c.name == "certificate"]


def _tsa_cert(token: cms.SignedData) -> asn1_x509.Certificate:
    sid = token["signer_infos"][0]["sid"]
    for cert in _token_certs(token):
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if cert.issuer == wanted["issuer"] and cert.serial_number == wanted["serial_number"].native:
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    raise ValueError("the timestamp token does not carry its TSA's certificate")


def _dss_certs(reader: PdfFileReader) -> list[asn1_x509.Certificate]:
    try:
        return list(DocumentSecurityStore.read_dss(reader).load_certs())
    except NoDSSFoundError:
        return []


def timestamp_horizon(
    tsa_certificate: bytes, chain: Sequence[bytes] = (), *, sunsets: AlgorithmSunsets = DEFAULT_SUNSETS
) -> dt.datetime:
    """Until when a timestamp this TSA signs now (SHA-256) would protect a document: the end of the
    TSA's certificate chain (DER), or the day its key weakens, whichever comes first."""
    tsa = asn1_x509.Certificate.load(tsa_certificate)
    ends: list[dt.datetime] = [tsa.not_valid_after, *(asn1_x509.Certificate.load(c).not_valid_after for c in chain)]
    weak = sunsets.weak_from("sha256", tsa.public_key)
    if weak is not None:
        ends.append(weak[0])
    return min(ends)


def archive_timestamp_due(
    pdf: bytes,
    *,
    now: dt.datetime,
    margin: dt.timedelta = DEFAULT_MARGIN,
    sunsets: AlgorithmSunsets = DEFAULT_SUNSETS,
) -> ArchiveTimestampDue:
    """Whether ``pdf`` needs an archive timestamp at ``now``: its newest timestamps' TSA
    certificates (or their CAs) expire, or their algorithms weaken, within ``margin``.

    Reads certificates only (no validation): call it on documents the service archived, and
    verify them as usual.
    """
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        tokens = _tokens_judged_now(reader)
        pool = _dss_certs(reader)
        horizons: list[tuple[dt.datetime, str, str]] = []
        for token in tokens:
            tsa = _tsa_cert(token)
            chain = _chain(tsa, [*_token_certs(token), *pool])
            end = min(c.not_valid_after for c in chain)
            horizons.append(
                (end, DUE_CERTIFICATE_EXPIRING, f"时间戳服务「{tsa.subject.native.get('common_name', '')}」的证书链")
            )
            digest = token["signer_infos"][0]["digest_algorithm"]["algorithm"].native
            imprint = token["encap_content_info"]["content"].parsed["message_imprint"]["hash_algorithm"]
            for algorithm in {digest, imprint["algorithm"].native}:
                weak = sunsets.weak_from(algorithm, tsa.public_key)
                if weak is not None:
                    horizons.append((weak[0], DUE_ALGORITHM_WEAKENING, f"时间戳使用的算法 {weak[1]}"))
    except MALFORMED as exc:
        raise PdfInvalid("文件无法读取，不能判断是否需要加盖存档时间戳。") from exc
    if not horizons:
        return ArchiveTimestampDue(True, DUE_NO_TIMESTAMP, "文书的签名没有时间戳，无法加盖存档时间戳延续其效力。", None)
    horizon, reason, what = min(horizons)
    if horizon <= now:
        return ArchiveTimestampDue(
            True,
            TOO_LATE,
            f"{what}已于 {when(horizon)} 失效，此后加盖的存档时间戳已无法证明签署时间；请重新签发文书。",
            horizon,
        )
    if horizon - now <= margin:
        return ArchiveTimestampDue(
            True, reason, f"{what}将于 {when(horizon)} 失效，请在此之前为文书加盖存档时间戳。", horizon
        )
    return ArchiveTimestampDue(False, None, f"时间戳在 {when(horizon)} 之前有效，暂不需要存档时间戳。", horizon)


def add_archive_timestamp(
    pdf: bytes,
    *,
    timestamper: TimeStamper,
    crls: Sequence[bytes],
    certs: Sequence[bytes] = (),
    md_algorithm: str = "sha256",
    bytes_reserved: int | None = TIMESTAMP_HEX_DIGITS,
) -> bytes:
    """``pdf`` with a document timestamp over all of it (PAdES B-LTA), as an incremental update.

    The same update puts the current ``crls`` (DER) and ``certs`` (DER: CA certificates the
    timestamps and signatures chain to) into the document's DSS, with the certificates of the
    existing timestamps, so that the new timestamp proves they existed while still valid. Earlier
    bytes are never altered: the result starts with ``pdf``. Call it on a verified document, with
    the service's current TSA. ``bytes_reserved`` is the room for the token, in hex digits; None
    lets pyHanko measure it on a dummy token first (the reference engine).
    """
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        existing: list[EmbeddedPdfSignature] = reader.embedded_signatures
        number = 1 + sum(1 for s in existing if s.sig_object_type == "/DocTimeStamp")
        token_certs = [c for sig in existing for t in _all_tokens(sig) for c in _token_certs(t)]
        names = {name for name, _, _ in fields.enumerate_sig_fields(reader)}
    except MALFORMED as exc:
        raise PdfInvalid("文件不是有效的 PDF，无法加盖存档时间戳。") from exc
    if not existing:
        raise PdfInvalid("文件中没有签名，无需加盖存档时间戳。")
    while f"{FIELD_PREFIX}{number}" in names:
        number += 1
    validation_certs = _unique([*token_certs, *(asn1_x509.Certificate.load(c) for c in certs)])
    validation_crls = [asn1_crl.CertificateList.load(c) for c in crls]
    reserve = bytes_reserved
    while True:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        DocumentSecurityStore.supply_dss_in_writer(writer, None, certs=validation_certs, crls=validation_crls)
        try:
            out = PdfTimeStamper(timestamper, field_name=f"{FIELD_PREFIX}{number}").timestamp_pdf(
                writer, md_algorithm, bytes_reserved=reserve
            )
        except PyHankoSigningError as exc:
            if reserve is not None and "larger than expected" in str(exc):
                reserve = None  # let pyHanko measure the token, then stamp for real
                continue
            raise SigningError(details={"reason": str(exc)}) from exc
        except TimestampRequestError as exc:
            raise TimestampUnavailable(details={"reason": str(exc)}) from exc
        except (PdfError, ValueError, OSError) as exc:
            raise SigningError(details={"reason": str(exc)}) from exc
        data: bytes = out.getvalue()
        if not data.startswith(pdf):  # never: pyHanko appends; a check, not a hope
            raise SigningError("加盖存档时间戳时改动了原有内容，已放弃。")
        return data


def _all_tokens(sig: EmbeddedPdfSignature) -> list[cms.SignedData]:
    if sig.sig_object_type == "/DocTimeStamp":
        return [sig.signed_data]
    return list(extract_tst_data_iter(sig.signer_info, signed=False))


def _unique(certs: Iterable[asn1_x509.Certificate]) -> list[asn1_x509.Certificate]:
    seen: dict[bytes, asn1_x509.Certificate] = {}
    for cert in certs:
        seen.setdefault(cert.dump(), cert)
    return list(seen.values())
