"""Verify: PDF bytes in, a report per signature out, naming exactly what is wrong.

For each signature: whether the signed bytes are unchanged (intact), the signature value is
correct (valid), the certificate chains to a root we trust (trusted), what it covers, how the
document was changed after it (modification level, judged by pyHanko's diff analysis: only new
signatures, form filling and validation data are acceptable), who signed and when (the timestamp's
time where there is one). The document is genuine only when every signature passes, nothing but
signatures and validation data follows the last one, and no bytes trail the final ``%%EOF``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

log = logging.getLogger(__name__)

_EOF_TAIL = re.compile(rb"%%EOF[\r\n\x00\t\f ]*\Z")

COVERAGE_TEXT = {
    SignatureCoverageLevel.ENTIRE_FILE: "整个文件",
    SignatureCoverageLevel.ENTIRE_REVISION: "签署时的文件版本（其后只能追加）",
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: "文件开头的一部分",
    SignatureCoverageLevel.UNCLEAR: "无法确定",
}
MODIFICATION_TEXT = {
    ModificationLevel.NONE: "签署后未改动",
    ModificationLevel.LTA_UPDATES: "签署后仅追加了验证数据（证书吊销信息、时间戳）",
    ModificationLevel.FORM_FILLING: "签署后仅追加了签名或填写了表单",
    ModificationLevel.ANNOTATIONS: "签署后添加了批注",
    ModificationLevel.OTHER: "签署后内容被修改",
}
ACCEPTABLE = {ModificationLevel.NONE, ModificationLevel.LTA_UPDATES, ModificationLevel.FORM_FILLING}


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    #: Technical detail (pyHanko's own words), for auditors and logs.
    detail: str | None = None


@dataclass
class SignatureReport:
    field_name: str
    signer: str
    signer_organization: str | None
    signing_time: dt.datetime | None
    timestamped: bool
    intact: bool
    valid: bool
    trusted: bool
    revoked: bool
    certification: bool
    permissions: str | None
    coverage: str
    modification: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field_name,
            "signer": self.signer,
            "signer_organization": self.signer_organization,
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "timestamped": self.timestamped,
            "intact": self.intact,
            "valid": self.valid,
            "trusted": self.trusted,
            "revoked": self.revoked,
            "certification": self.certification,
            "permissions": self.permissions,
            "coverage": self.coverage,
            "modification": self.modification,
            "ok": self.ok,
            "problems": [p.__dict__ for p in self.problems],
        }


@dataclass
class VerificationReport:
    sha256: str
    signatures: list[SignatureReport]
    problems: list[Problem] = field(default_factory=list)

    @property
    def genuine(self) -> bool:
        return bool(self.signatures) and not self.problems and all(s.ok for s in self.signatures)

    @property
    def all_problems(self) -> list[Problem]:
        out = list(self.problems)
        for s in self.signatures:
            out.extend(s.problems)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "genuine": self.genuine,
            "sha256": self.sha256,
            "signatures": [s.to_dict() for s in self.signatures],
            "problems": [p.__dict__ for p in self.all_problems],
        }


PERMISSION_TEXT = {
    MDPPerm.NO_CHANGES: "不允许任何改动",
    MDPPerm.FILL_FORMS: "只允许填写表单和签名",
    MDPPerm.ANNOTATE: "允许填写表单、签名和批注",
}


def _name_attr(cert: asn1_x509.Certificate, attr: str) -> str | None:
    value = cert.subject.native.get(attr)
    if isinstance(value, list):
        value = value[0]
    return str(value) if value is not None else None


def _validation_context(
    reader: PdfFileReader, trust_roots: Sequence[asn1_x509.Certificate], crls: Sequence[bytes]
) -> ValidationContext:
    kwargs: dict[str, Any] = {
        "trust_roots": list(trust_roots),
        "crls": [asn1_crl.CertificateList.load(c) for c in crls],
        "allow_fetching": False,
        # Revocation data comes from the document's DSS and our own CRLs; a certificate whose
        # status no CRL covers (an imported one) is judged on its chain, but a listed one fails.
        "revocation_mode": "soft-fail",
    }
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except (KeyError, ValueError, PdfError):
        return ValidationContext(**kwargs)
    return dss.as_validation_context(kwargs)


def verify_pdf(
    data: bytes,
    trust_roots: Sequence[asn1_x509.Certificate],
    crls: Sequence[bytes] = (),
) -> VerificationReport:
    """Check every signature in ``data`` against ``trust_roots``; never raises for a bad file."""
    report = VerificationReport(sha256=hashlib.sha256(data).hexdigest(), signatures=[])
    if not data.startswith(b"%PDF-"):
        report.problems.append(Problem("NOT_PDF", "文件不是 PDF 文件。"))
        return report
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        embedded = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        report.problems.append(Problem("PDF_DAMAGED", f"PDF 文件结构已损坏，无法读取签名（{type(exc).__name__}）。"))
        return report
    if not embedded:
        report.problems.append(Problem("NO_SIGNATURE", "文件中没有数字签名，不是经签章的电子文书。"))
        return report
    if not _EOF_TAIL.search(data[-4096:]):
        report.problems.append(Problem("TRAILING_DATA", "文件末尾附加了签名之外的数据：文件在签署后被改动过。"))
    vc = _validation_context(reader, trust_roots, crls)
    for sig in embedded:
        report.signatures.append(_check_signature(sig, vc))
    return report


def _check_signature(sig: Any, vc: ValidationContext) -> SignatureReport:
    problems: list[Problem] = []
    name = str(sig.field_name)
    try:
        status = validate_pdf_signature(sig, vc)
    except (SignatureValidationError, PdfError, ValueError, KeyError, TypeError) as exc:
        return SignatureReport(
            field_name=name,
            signer="",
            signer_organization=None,
            signing_time=None,
            timestamped=False,
            intact=False,
            valid=False,
            trusted=False,
            revoked=False,
            certification=False,
            permissions=None,
            coverage="无法确定",
            modification="无法确定",
            problems=[Problem("SIGNATURE_UNREADABLE", f"签名「{name}」无法解析：{exc}")],
        )
    cert = status.signing_cert
    signer = _name_attr(cert, "common_name") or ""
    ts = status.timestamp_validity
    signing_time = ts.timestamp if ts is not None else status.signer_reported_dt
    docmdp = sig.docmdp_level
    certification = docmdp is not None and sig.sig_object_type == "/Sig" and "/Reference" in sig.sig_object
    level = status.modification_level
    coverage = status.coverage

    if not status.intact:
        problems.append(Problem("CONTENT_ALTERED", f"「{signer}」签署后，签名覆盖的内容被改动过（摘要不符）。"))
    elif not status.valid:
        problems.append(Problem("SIGNATURE_INVALID", f"「{signer}」的签名值无效。"))
    if status.revoked:
        problems.append(Problem("CERTIFICATE_REVOKED", f"「{signer}」的签章证书已被吊销。"))
    elif status.intact and status.valid and not status.trusted:
        problems.append(
            Problem("UNTRUSTED_SIGNER", f"「{signer}」的签章证书不是由受信任的证书中心签发的，无法确认签署人身份。")
        )
    if ts is None:
        problems.append(Problem("NO_TIMESTAMP", f"「{signer}」的签名没有可信时间戳，无法证明签署时间。"))
    elif not (ts.intact and ts.valid and ts.trusted):
        problems.append(Problem("TIMESTAMP_INVALID", f"「{signer}」签名中的时间戳无效或不受信任。"))
    if coverage is None or coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        problems.append(Problem("PARTIAL_COVERAGE", f"「{signer}」的签名没有覆盖签署时的整个文件。"))
    suspicious = isinstance(status.diff_result, SuspiciousModification)
    if suspicious or (level is not None and level not in ACCEPTABLE):
        problems.append(
            Problem(
                "MODIFIED_AFTER_SIGNING",
                f"「{signer}」签署之后，文书内容又被修改过（不是追加签名或验证数据），内容可能已被篡改。",
                str(status.diff_result) if suspicious else None,
            )
        )
    elif certification and status.docmdp_ok is False:
        problems.append(Problem("PERMISSIONS_VIOLATED", f"签署后的改动超出了「{signer}」的认证签名所允许的范围。"))

    return SignatureReport(
        field_name=name,
        signer=signer,
        signer_organization=_name_attr(cert, "organization_name"),
        signing_time=signing_time,
        timestamped=ts is not None,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        revoked=bool(status.revoked),
        certification=bool(certification),
        permissions=PERMISSION_TEXT.get(docmdp) if docmdp is not None else None,
        coverage=COVERAGE_TEXT.get(coverage, "无法确定") if coverage is not None else "无法确定",
        modification=MODIFICATION_TEXT.get(level, "无法确定") if level is not None else "无法确定",
        problems=problems,
    )
