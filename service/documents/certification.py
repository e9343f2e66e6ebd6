"""Certification at the cost of the cryptography: the issuer's signature on a batch of documents.

pyHanko's signer reads a document back, adds the signature fields, the DSS and the seal
appearance in an incremental update, and builds the CMS through asn1crypto: about 9 ms a document,
of which the cryptography (one RSA-2048 signature, one RSA-3072 timestamp) is 1.5. Here what
every document of a batch shares is built once:

- the seal appearance (per unit and field size), a small PDF object graph copied into a document
  by qpdf in one call, and the DSS's streams (per signer), compressed once;
- the CMS around the signer's signature (certificates, signer identifier, algorithms, the
  signing-certificate attribute), as DER.

Per document, :func:`dress` adds the fields, their appearance, the DSS and the PAdES extension to
the document while it is still being cut out of the merged conversion (so they land in its
compressed object streams), and :func:`certify_dressed` appends one small update holding the
signature dictionary, the issuer's widget pointing at it and the catalog's DocMDP entry, hashes
the byte ranges, signs, timestamps and writes the CMS in place.

The result is the document pyHanko's certification would make (PAdES B-LT, DocMDP level 2, one
empty field per later signer), and every test document is checked by pyHanko's validator and by
poppler's ``pdfsig``. Later signers sign with pyHanko (:func:`~service.documents.sign.sign_field`).
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import io
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pikepdf
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign.general import simple_cms_attribute
from pyhanko.sign.timestamps.common_utils import TimestampRequestError

from service.documents.errors import NotSignable, PdfInvalid, SigningError, TimestampUnavailable
from service.documents.placement import Placement
from service.documents.sign import (
    Appearance,
    LocalTimeStamper,
    Signatory,
    UnitSigner,
    _der,
    _event_loop,
    _stamp_style,
)

#: Hex digits of room added to the measured size of a signature: a timestamp token's serial
#: number and time vary by a few bytes, an ECDSA signature by two.
MARGIN_HEX_DIGITS = 64
#: Width kept for the byte range's numbers (ten digits each, a file under 10 GB).
_RANGE_WIDTH = 4 * 11 + 1
_OID_DATA = bytes.fromhex("06092a864886f70d010701")
_OID_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")
_OID_MESSAGE_DIGEST = bytes.fromhex("06092a864886f70d010904")
_OID_TIMESTAMP_TOKEN = bytes.fromhex("060b2a864886f70d010910020e")
_SHA256 = bytes.fromhex("300d06096086480165030402010500")
_INTEGER_1 = _der(0x02, b"\x01")
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")


@dataclass(frozen=True)
class _SignerParts:
    """The DER of a signer's CMS that every signature shares."""

    certificates: bytes  # [0] IMPLICIT CertificateSet
    sid: bytes
    signature_algorithm: bytes
    fixed_attributes: list[bytes]  # content type, signing certificate v2


class _Kits:
    """Per process: the appearance and DSS object graphs and the signers' DER, built on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._appearances: dict[tuple[object, ...], pikepdf.Pdf] = {}
        self._retired: collections.deque[pikepdf.Pdf] = collections.deque(maxlen=64)
        self._signers: dict[bytes, _SignerParts] = {}
        self._token_size: dict[str, int] = {}

    def copy_appearance(
        self, doc: pikepdf.Pdf, placement: Placement, appearance: Appearance, key: tuple[object, ...]
    ) -> pikepdf.Object:
        """The issuer's appearance (a form XObject) copied into ``doc``. Copies are made under
        the lock: qpdf objects are not to be read from two threads at once."""
        width, height = placement.size
        full_key = (key, round(width, 3), round(height, 3), placement.seal_at, placement.signature_box)
        with self._lock:
            found = self._appearances.get(full_key)
            if found is None:
                style = _stamp_style(placement, appearance)
                assert style is not None
                writer = PdfFileWriter()
                stamp = style.create_stamp(writer, BoxConstraints(width=width, height=height), {})
                writer.root["/DSAppearance"] = stamp.register()
                buf = io.BytesIO()
                writer.write(buf)
                found = pikepdf.open(io.BytesIO(buf.getvalue()))
                if len(self._appearances) >= 64:
                    # not closed: a document being cut out may still be copying from it (qpdf
                    # reads a copied stream's data when the copy is saved); kept a while, then let go
                    self._retired.append(self._appearances.pop(next(iter(self._appearances))))
                self._appearances[full_key] = found
            return doc.copy_foreign(found.Root.DSAppearance)

    def dss(self, doc: pikepdf.Pdf, signatory: Signatory, signer: UnitSigner) -> pikepdf.Object:
        """The DSS of ``signer`` made in ``doc`` from its streams, compressed once per signer."""
        dss = pikepdf.Dictionary()
        for name, streams in signatory.dss_entries(signer).items():
            refs = []
            for data in streams:
                stream = pikepdf.Stream(doc, b"")
                stream.write(data, filter=pikepdf.Name.FlateDecode)
                refs.append(doc.make_indirect(stream))
            dss[name] = pikepdf.Array(refs)
        return doc.make_indirect(dss)

    def signer(self, signer: UnitSigner) -> _SignerParts:
        with self._lock:
            found = self._signers.get(_cert_id(signer))
            if found is None:
                cert = _signing_cert(signer)
                certs = [cert.dump()]
                certs += [c.dump() for c in signer.cms_chain if c.dump() not in certs]
                found = _SignerParts(
                    certificates=_der(0xA0, b"".join(certs)),
                    sid=cms.IssuerAndSerialNumber({"issuer": cert.issuer, "serial_number": cert.serial_number}).dump(),
                    signature_algorithm=signer.get_signature_mechanism_for_digest("sha256").dump(),
                    fixed_attributes=[simple_cms_attribute("content_type", "data").dump(), signer.cert_v2_der],
                )
                self._signers[_cert_id(signer)] = found
            return found

    def token_size(self, signatory: Signatory, signature_size: int) -> int:
        """Bytes a timestamp token of the signatory's TSA takes (measured once per TSA, on a
        token for a dummy signature; raised when a bigger one comes)."""
        key = _tsa_id(signatory)
        with self._lock:
            size = self._token_size.get(key)
        if size is None:
            size = len(timestamp_token(signatory, b"\0" * signature_size))
            self.learn_token_size(signatory, size)
        return size

    def learn_token_size(self, signatory: Signatory, size: int) -> None:
        key = _tsa_id(signatory)
        with self._lock:
            self._token_size[key] = max(size, self._token_size.get(key, 0))


_KITS = _Kits()


def _signature_size(cert: Any) -> int:
    """The most bytes a signature by ``cert``'s key takes: RSA's is the modulus; ECDSA's is two
    integers in a DER sequence, each a byte longer where its top bit is set."""
    public_key = cert.public_key
    size = int((public_key.bit_size + 7) // 8)
    return 2 * (size + 3) + 3 if public_key.algorithm == "ec" else size


def _tsa_id(signatory: Signatory) -> str:
    """Which TSA answers: the configured one, or the local one's current certificate."""
    return signatory.tsa_url or f"local:{signatory.pki.tsa()[0].serial_number}"


def _cert_id(signer: UnitSigner) -> bytes:
    """What the kits of a signer are kept by: its certificate's digest (an object's id can be
    taken again by another signer once the first is gone)."""
    return bytes(_signing_cert(signer).sha256)


def _signing_cert(signer: UnitSigner) -> Any:
    cert = signer.signing_cert
    if cert is None:
        raise SigningError(details={"reason": "signer without a certificate"})
    return cert


def appearance_key(seal_name: str, seal_image: bytes | None, signature_image: bytes | None) -> tuple[object, ...]:
    """What makes two appearances the same, from the inputs they are drawn from."""

    def digest(data: bytes | None) -> str | None:
        return hashlib.sha256(data).hexdigest() if data else None

    return (seal_name, digest(seal_image), digest(signature_image))


def dress(
    doc: pikepdf.Pdf,
    *,
    signatory: Signatory,
    unit_key: str,
    placements: Sequence[Placement],
    appearance: Appearance,
    appearance_id: tuple[object, ...],
) -> None:
    """Add to ``doc`` (being cut out, not yet saved) the signature fields of ``placements``, the
    first with the issuer's appearance, the DSS of the issuer's signer, and the PAdES extension."""
    signer = signatory.signer(unit_key)
    doc.Root.DSS = _KITS.dss(doc, signatory, signer)
    widgets = []
    for i, placement in enumerate(placements):
        page = doc.pages[placement.page]
        widget = pikepdf.Dictionary(
            FT=pikepdf.Name.Sig,
            T=pikepdf.String(placement.field_name),
            Type=pikepdf.Name.Annot,
            Subtype=pikepdf.Name.Widget,
            F=132,  # print, locked
            Rect=pikepdf.Array([round(v, 4) for v in placement.box] if placement.box else [0, 0, 0, 0]),
            P=page.obj,
        )
        if placement.box is not None:
            width, height = placement.size
            if i == 0:
                form = _KITS.copy_appearance(doc, placement, appearance, appearance_id)
            else:  # an empty field shows nothing until its signer fills it
                form = doc.make_stream(
                    b"",
                    Type=pikepdf.Name.XObject,
                    Subtype=pikepdf.Name.Form,
                    BBox=pikepdf.Array([0, 0, round(width, 4), round(height, 4)]),
                    Resources=pikepdf.Dictionary(),
                )
            widget.AP = pikepdf.Dictionary(N=form)
        ref = doc.make_indirect(widget)
        annots = page.obj.get("/Annots")
        if annots is None:
            page.obj.Annots = pikepdf.Array([ref])
        else:
            annots.append(ref)
        widgets.append(ref)
    doc.Root.AcroForm = doc.make_indirect(pikepdf.Dictionary(Fields=pikepdf.Array(widgets), SigFlags=3))
    doc.Root.Extensions = pikepdf.Dictionary(
        ESIC=pikepdf.Dictionary(
            Type=pikepdf.Name.DeveloperExtensions, BaseVersion=pikepdf.Name("/1.7"), ExtensionLevel=1
        )
    )


def _pdf_date(at: datetime.datetime) -> bytes:
    return at.astimezone(datetime.UTC).strftime("(D:%Y%m%d%H%M%SZ)").encode()


def _pdf_text(value: str) -> bytes:
    """A PDF text string: UTF-16BE with its byte order mark, in hex."""
    return b"<feff" + value.encode("utf-16-be").hex().encode() + b">"


def timestamp_token(signatory: Signatory, signature: bytes) -> bytes:
    """A timestamp token (DER) over ``signature``, from the local TSA or the configured one."""
    timestamper = signatory.timestamper()
    digest = hashlib.sha256(signature).digest()
    if isinstance(timestamper, LocalTimeStamper):
        return timestamper.token_der(digest, "sha256")
    try:
        token: cms.ContentInfo = _event_loop().run_until_complete(timestamper.async_timestamp(digest, "sha256"))
    except TimestampRequestError as exc:
        raise TimestampUnavailable(details={"reason": str(exc)}) from exc
    return bytes(token.dump())


def _sign(signer: UnitSigner, data: bytes) -> bytes:
    key = signer.private_key
    if isinstance(key, RSAPrivateKey):
        return key.sign(data, PKCS1v15(), hashes.SHA256())
    if isinstance(key, EllipticCurvePrivateKey):
        return key.sign(data, ECDSA(hashes.SHA256()))
    return signer.sign_raw(data, "sha256")


@dataclass(frozen=True)
class _Revision:
    """What the signature's update needs of the document it is appended to."""

    root_num: int
    root_body: bytes
    widget_num: int
    widget_body: bytes
    size: int
    info_num: int | None
    first_id: bytes
    prev: int  # the last cross-reference section's offset

    @classmethod
    def read(cls, pdf: bytes, field_name: str) -> _Revision:
        found = _STARTXREF.search(pdf[-64:])
        if found is None:
            raise PdfInvalid("文件不是有效的 PDF，无法签署。")
        try:
            with pikepdf.open(io.BytesIO(pdf)) as doc:
                root = doc.Root
                widget = next((f for f in root.AcroForm.Fields if str(f.get("/T")) == field_name), None)
                if widget is None:
                    raise NotSignable(f"该文书中没有名为「{field_name}」的签署位置。")
                info = doc.trailer.get("/Info")
                ids = doc.trailer.get("/ID")
                return cls(
                    root_num=root.objgen[0],
                    root_body=root.unparse(resolved=True),
                    widget_num=widget.objgen[0],
                    widget_body=widget.unparse(resolved=True),
                    size=int(doc.trailer.Size),
                    info_num=info.objgen[0] if info is not None else None,
                    first_id=bytes(ids[0]) if ids is not None else hashlib.md5(pdf, usedforsecurity=False).digest(),
                    prev=int(found.group(1)),
                )
        except (pikepdf.PdfError, AttributeError, KeyError, ValueError, TypeError) as exc:
            raise PdfInvalid("文件不是有效的 PDF，无法签署。") from exc


def certify_dressed(
    pdf: bytes,
    *,
    signatory: Signatory,
    unit_key: str,
    field_name: str,
    reason: str,
    at: datetime.datetime | None = None,
) -> bytes:
    """The issuer's certification signature (DocMDP level 2) in the field ``field_name`` of a
    document :func:`dress` prepared, as an incremental update."""
    signer = signatory.signer(unit_key)
    parts = _KITS.signer(signer)
    base = _Revision.read(pdf, field_name)
    signature_size = _signature_size(_signing_cert(signer))
    fixed = len(_signer_info_template(parts, signature_size)) + len(parts.certificates) + 64
    token_size = _KITS.token_size(signatory, signature_size)
    when = at or signatory.tsa_time()
    for _ in range(2):
        out, contents_at, contents_end = _update(
            pdf, base, signer, reason, when, reserve=2 * (fixed + token_size) + MARGIN_HEX_DIGITS
        )
        digest = hashlib.sha256()
        view = memoryview(out)
        digest.update(view[:contents_at])
        digest.update(view[contents_end:])
        view.release()
        cms_der = _cms(signatory, signer, parts, digest.digest())
        if 2 * len(cms_der) <= contents_end - contents_at - 2:
            hexed = cms_der.hex().encode()
            out[contents_at + 1 : contents_at + 1 + len(hexed)] = hexed
            return bytes(out)
        # a TSA answered with a bigger token than the one measured (its certificates, a nonce):
        # make room for what it sends now
        token_size = len(cms_der) - fixed + 64
        _KITS.learn_token_size(signatory, token_size)
    raise SigningError(details={"reason": "the signature does not fit the room reserved for it"})


def _update(
    pdf: bytes, base: _Revision, signer: UnitSigner, reason: str, when: datetime.datetime, *, reserve: int
) -> tuple[bytearray, int, int]:
    """``pdf`` with the update appended (the signature's /Contents of ``reserve`` zeros, its byte
    range filled in), and where /Contents starts and ends."""
    sig_num = base.size
    head = (
        b"<</Type/Sig/Filter/Adobe.PPKLite/SubFilter/ETSI.CAdES.detached/M"
        + _pdf_date(when)
        + b"/Name"
        + _pdf_text(signer.unit_name)
        + b"/Reason"
        + _pdf_text(reason)
        + b"/Reference[<</Type/SigRef/TransformMethod/DocMDP/TransformParams<</Type/TransformParams/V/1.2/P 2>>>>]"
        + b"/Contents"
    )
    objects: list[tuple[int, bytes]] = [
        (base.widget_num, base.widget_body[:-2].rstrip() + b" /V %d 0 R >>" % sig_num),
        (base.root_num, base.root_body[:-2].rstrip() + b" /Perms << /DocMDP %d 0 R >> >>" % sig_num),
    ]
    out = bytearray(pdf)
    if not out.endswith(b"\n"):
        out += b"\n"
    offsets: dict[int, int] = {}
    for num, body in objects:
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    offsets[sig_num] = len(out)
    out += b"%d 0 obj\n" % sig_num + head
    contents_at = len(out)
    out += b"<" + b"0" * reserve + b">"
    contents_end = len(out)
    out += b"/ByteRange"
    range_at = len(out)
    out += b" " * _RANGE_WIDTH + b">>\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 1\n0000000000 65535 f \n"
    for num in sorted(offsets):
        out += b"%d 1\n%010d 00000 n \n" % (num, offsets[num])
    new_id = hashlib.md5(bytes(out[-4096:]) + when.isoformat().encode(), usedforsecurity=False).digest()
    trailer = b"/Size %d/Root %d 0 R" % (sig_num + 1, base.root_num)
    if base.info_num is not None:
        trailer += b"/Info %d 0 R" % base.info_num
    trailer += b"/ID[<%s><%s>]/Prev %d" % (base.first_id.hex().encode(), new_id.hex().encode(), base.prev)
    out += b"trailer\n<<" + trailer + b">>\nstartxref\n%d\n%%%%EOF\n" % xref_at
    byte_range = b"[0 %d %d %d]" % (contents_at, contents_end, len(out) - contents_end)
    out[range_at : range_at + len(byte_range)] = byte_range
    return out, contents_at, contents_end


def _signer_info(parts: _SignerParts, attrs: bytes, signature: bytes, token: bytes | None) -> bytes:
    """One SignerInfo: ``attrs`` the signed attributes' DER SET (written as [0] IMPLICIT),
    ``token`` the timestamp token put in the unsigned attributes."""
    unsigned = b"" if token is None else _der(0xA1, _der(0x30, _OID_TIMESTAMP_TOKEN + _der(0x31, token)))
    return _der(
        0x30,
        _INTEGER_1
        + parts.sid
        + _SHA256
        + b"\xa0"
        + attrs[1:]
        + parts.signature_algorithm
        + _der(0x04, signature)
        + unsigned,
    )


def _signer_info_template(parts: _SignerParts, signature_size: int) -> bytes:
    """A signer info of the right size but for its timestamp (for the room to reserve)."""
    return _signer_info(parts, _signed_attributes(parts, b"\0" * 32), b"\0" * signature_size, None)


def _signed_attributes(parts: _SignerParts, digest: bytes) -> bytes:
    """The signed attributes as a DER SET (sorted, as DER wants a SET OF)."""
    message_digest = _der(0x30, _OID_MESSAGE_DIGEST + _der(0x31, _der(0x04, digest)))
    return _der(0x31, b"".join(sorted([*parts.fixed_attributes, message_digest])))


def _cms(signatory: Signatory, signer: UnitSigner, parts: _SignerParts, digest: bytes) -> bytes:
    """ContentInfo(SignedData) with one signer, detached, timestamped (PAdES B-T)."""
    attrs = _signed_attributes(parts, digest)
    signature = _sign(signer, attrs)
    token = timestamp_token(signatory, signature)
    signer_info = _signer_info(parts, attrs, signature, token)
    signed_data = _der(
        0x30,
        _INTEGER_1 + _der(0x31, _SHA256) + _der(0x30, _OID_DATA) + parts.certificates + _der(0x31, signer_info),
    )
    return _der(0x30, _OID_SIGNED_DATA + _der(0xA0, signed_data))
