"""Verify: PDF bytes in, a verdict with named reasons out; never raises for a bad file.

A document is genuine only when all of this holds (each failure is a :class:`Problem` with a stable
``code`` and a Chinese message):

- it is a PDF pyHanko can read, with at least one signature, and every filled signature field is
  one pyHanko can check (``NOT_PDF``, ``PDF_DAMAGED``, ``NO_SIGNATURE``, ``SIGNATURE_UNSUPPORTED``);
- the file ends exactly where the last revision pyHanko parsed ends: not one byte, not even a
  well-formed trailer of its own, follows (``TRAILING_DATA``);
- every signature and document timestamp is intact, valid and trusted (``SIGNATURE_UNREADABLE``,
  ``CONTENT_ALTERED``, ``SIGNATURE_INVALID``, ``UNTRUSTED_SIGNER``, ``CERTIFICATE_NOT_VALID_AT_SIGNING``,
  ``CERTIFICATE_REVOKED``, ``CERTIFICATE_KEY_COMPROMISED``, ``REVOCATION_UNKNOWN``), carries a
  trusted timestamp (``NO_TIMESTAMP``, ``TIMESTAMP_INVALID``, ``NEEDS_ARCHIVE_TIMESTAMP``,
  ``ARCHIVE_TIMESTAMP_TOO_LATE``) and covers a whole revision (``PARTIAL_COVERAGE``);
- nothing but new signatures, form filling and validation data follows a signature, and after the
  last signature nothing but validation data (DSS updates, document timestamps) follows
  (``MODIFIED_AFTER_SIGNING``, ``UNSIGNED_CHANGES``); the certification signature comes first and
  its DocMDP permissions are respected (``CERTIFICATION_NOT_FIRST``, ``PERMISSIONS_VIOLATED``).

**Validation time** (PAdES, ETSI EN 319 102-1, on pyHanko's point-in-time validation, as its
PAdES-LT/LTA profile did): a signature is judged at the time its timestamp proves, so a notice
stays genuine after its signer's certificate expires or is revoked for a reason other than a key
compromise. The timestamp itself is judged at the time of the first document (archive) timestamp
added after it, each document timestamp at the time of the next one, and the newest at ``now``.
When the newest timestamp can no longer be judged at ``now`` only because its TSA's certificates
have expired, the document is reported ``NEEDS_ARCHIVE_TIMESTAMP`` (unproven, not forged); when an
archive timestamp came after the one it should have protected had expired,
``ARCHIVE_TIMESTAMP_TOO_LATE``. Each report says at which time each element was judged, and why.

pyHanko's newer AdES entry point (``ades_lta_validation``) is not used: it takes proof of existence
of validation data only from document timestamps, not from the signature timestamp over the
signed revision, and our B-LT signatures carry their CRLs in that revision; a notice without an
archive timestamp would fail once its signer's certificate expired.

An upload over the limits ``verify_pdf`` is given (and those of ``sandbox``) gets
``UPLOAD_TOO_COMPLEX``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter, message_imprint_checker, validate_tst_signed_data
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel, SignatureStatus, TimestampSignatureStatus
from pyhanko_certvalidator.path import ValidationPath

from service.documents.evidence import Evidence
from service.documents.structure import MALFORMED, bytes_after_last_revision

log = logging.getLogger(__name__)

#: Times in messages are shown in the service's time zone.
DISPLAY_ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")

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
#: What may follow a signature that is not the last one (the later signatures account for it).
ACCEPTABLE = {ModificationLevel.NONE, ModificationLevel.LTA_UPDATES, ModificationLevel.FORM_FILLING}
#: What may follow the last signature: validation data only (DSS updates, document timestamps).
ACCEPTABLE_AFTER_LAST = {ModificationLevel.NONE, ModificationLevel.LTA_UPDATES}

PERMISSION_TEXT = {
    MDPPerm.NO_CHANGES: "不允许任何改动",
    MDPPerm.FILL_FORMS: "只允许填写表单和签名",
    MDPPerm.ANNOTATE: "允许填写表单、签名和批注",
}

KIND_CERTIFICATION = "certification"
KIND_APPROVAL = "approval"
KIND_DOCUMENT_TIMESTAMP = "document_timestamp"

#: Malformed input, as pyHanko reports it (see ``structure.MALFORMED``).
_MALFORMED = (*MALFORMED, SignatureValidationError)


def when(moment: dt.datetime) -> str:
    """A moment as people here read it: ``2026-12-01 08:14:57（北京时间）``."""
    return f"{moment.astimezone(DISPLAY_ZONE):%Y-%m-%d %H:%M:%S}（北京时间）"


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
    #: ``certification``, ``approval`` or ``document_timestamp``.
    kind: str = KIND_APPROVAL
    #: The moment the signer's certificate was judged at, and on what evidence (Chinese).
    judged_at: dt.datetime | None = None
    evidence: str = ""
    #: The moment the signature's timestamp was judged at, and why that moment.
    timestamp_judged_at: dt.datetime | None = None
    timestamp_evidence: str | None = None
    #: The revocation data the judgement rests on, and revocations after it that do not count.
    revocation_evidence: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field_name,
            "kind": self.kind,
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
            "judged_at": self.judged_at.isoformat() if self.judged_at else None,
            "evidence": self.evidence,
            "timestamp_judged_at": self.timestamp_judged_at.isoformat() if self.timestamp_judged_at else None,
            "timestamp_evidence": self.timestamp_evidence,
            "revocation_evidence": list(self.revocation_evidence),
            "ok": self.ok,
            "problems": [p.__dict__ for p in self.problems],
        }


@dataclass
class VerificationReport:
    sha256: str
    signatures: list[SignatureReport]
    problems: list[Problem] = field(default_factory=list)
    #: The validation time ("now") the verdict was reached at.
    checked_at: dt.datetime | None = None

    @property
    def genuine(self) -> bool:
        return (
            any(s.kind != KIND_DOCUMENT_TIMESTAMP for s in self.signatures)
            and not self.problems
            and all(s.ok for s in self.signatures)
        )

    @property
    def all_problems(self) -> list[Problem]:
        out = list(self.problems)
        for s in self.signatures:
            out.extend(s.problems)
        return out

    @property
    def codes(self) -> set[str]:
        return {p.code for p in self.all_problems}

    @property
    def needs_archive_timestamp(self) -> bool:
        """Unproven only because the newest timestamp's certificates expired: intact, not forged."""
        return "NEEDS_ARCHIVE_TIMESTAMP" in self.codes

    def to_dict(self) -> dict[str, Any]:
        return {
            "genuine": self.genuine,
            "sha256": self.sha256,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "signatures": [s.to_dict() for s in self.signatures],
            "problems": [p.__dict__ for p in self.all_problems],
        }


# --- the document ---------------------------------------------------------------------------


def verify_pdf(
    data: bytes,
    trust_roots: Sequence[asn1_x509.Certificate],
    crls: Sequence[bytes] = (),
    *,
    now: dt.datetime | None = None,
    max_revisions: int | None = None,
    max_signatures: int | None = None,
    pinned: frozenset[str] | None = None,
) -> VerificationReport:
    """Check ``data`` against ``trust_roots`` and the current ``crls`` (DER) at ``now``.

    The first root is the service's own; the others (``certs/trust/``) were added for units that
    brought their own certificate, and vouch for those certificates only: given ``pinned`` (the
    SHA-256 of every certificate imported for a unit), a signature whose path ends at another root
    and whose certificate is not pinned is refused (``CERTIFICATE_NOT_FOR_THIS_SIGNER``).

    ``now`` is the validation time (the service's clock; the system's when omitted).
    ``max_revisions`` and ``max_signatures`` refuse, once parsed and before any signature is
    checked, a file more complex than an upload may be (``UPLOAD_TOO_COMPLEX``).
    """
    now = now or dt.datetime.now(dt.UTC)
    report = VerificationReport(sha256=hashlib.sha256(data).hexdigest(), signatures=[], checked_at=now)
    if not data.startswith(b"%PDF-"):
        report.problems.append(Problem("NOT_PDF", "文件不是 PDF 文件。"))
        return report
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        revisions = reader.xrefs.total_revisions
        if max_revisions is not None and revisions > max_revisions:
            report.problems.append(too_complex(f"文件有 {revisions} 个版本，超过了上限 {max_revisions}。"))
            return report
        filled = list(fields.enumerate_sig_fields(reader, filled_status=True))
    except _MALFORMED as exc:
        report.problems.append(_damaged(exc))
        return report
    if max_signatures is not None and len(filled) > max_signatures:
        report.problems.append(too_complex(f"文件有 {len(filled)} 个签名，超过了上限 {max_signatures}。"))
        return report
    embedded, broken = _embedded_signatures(reader, filled)
    report.signatures.extend(broken)
    if not broken and not any(s.sig_object_type == "/Sig" for s in embedded):
        report.problems.append(Problem("NO_SIGNATURE", "文件中没有数字签名，不是经签章的电子文书。"))
        return report
    try:
        extra = bytes_after_last_revision(reader, data)
    except _MALFORMED as exc:
        report.problems.append(_damaged(exc))
        return report
    if extra:
        report.problems.append(
            Problem(
                "TRAILING_DATA",
                f"文件末尾（最后一个版本之后）附加了 {extra} 字节不在任何签名保护范围内的数据：文件在签署后被改动过。",
            )
        )
    evidence = Evidence(reader, trust_roots, crls)
    moments = _timeline(embedded, now)
    last_signature = max((i for i, s in enumerate(embedded) if s.sig_object_type == "/Sig"), default=-1)
    for i, sig in enumerate(embedded):
        judge = _Judge(evidence, now, moments[i], _Pins(trust_roots[0].dump() if trust_roots else b"", pinned))
        if sig.sig_object_type == "/DocTimeStamp":
            report.signatures.append(judge.document_timestamp(sig))
        else:
            sig_report = judge.signature(sig, last=i == last_signature)
            if sig_report.certification and i != 0:
                sig_report.problems.append(
                    Problem(
                        "CERTIFICATION_NOT_FIRST",
                        f"「{sig_report.signer}」的认证签名不是文书的第一个签名：认证签名只能由发文单位最先签署。",
                    )
                )
            report.signatures.append(sig_report)
    return report


_SUBFILTERS = {str(s.value) for s in fields.SigSeedSubFilter}


def _embedded_signatures(
    reader: PdfFileReader, filled: list[tuple[str, Any, Any]]
) -> tuple[list[EmbeddedPdfSignature], list[SignatureReport]]:
    """The filled signature fields pyHanko can check, in signing order, and a report for each other one.

    pyHanko's own list silently drops a signature whose /SubFilter it does not know, and fails
    as a whole on one unreadable signature dictionary; here each gets its own named problem.
    """
    readable: list[EmbeddedPdfSignature] = []
    broken: list[SignatureReport] = []
    for name, value, field_ref in filled:
        try:
            subfilter = value.get_object().get("/SubFilter")
            if subfilter not in _SUBFILTERS:
                problem = Problem(
                    "SIGNATURE_UNSUPPORTED", f"签名「{name}」的格式（{subfilter}）无法识别，无法确认它签署的内容。"
                )
                broken.append(_unreadable(name, None, problem))
                continue
            readable.append(EmbeddedPdfSignature(reader, field_ref, name))
        except _MALFORMED as exc:
            broken.append(_unreadable(name, exc))
    readable.sort(key=lambda s: s.signed_revision)
    return readable, broken


def _damaged(exc: BaseException) -> Problem:
    return Problem("PDF_DAMAGED", "PDF 文件结构已损坏，无法读取其中的签名。", f"{type(exc).__name__}: {exc}")


def too_complex(reason: str) -> Problem:
    """The answer to an upload over a limit (also used by the sandbox)."""
    return Problem("UPLOAD_TOO_COMPLEX", f"文件过于复杂，无法在线验证：{reason}如需核验，请联系发文单位。")


@dataclass(frozen=True)
class _Moment:
    """When a timestamp is judged, and why then."""

    at: dt.datetime
    evidence: str
    #: Judged at ``now`` (the newest timestamp), not at a later archive timestamp's time.
    newest: bool


def _gen_time(signed_data: cms.SignedData) -> dt.datetime:
    tst_info = signed_data["encap_content_info"]["content"].parsed
    if not isinstance(tst_info, tsp.TSTInfo):
        raise ValueError("not a timestamp token")
    gen_time: dt.datetime = tst_info["gen_time"].native
    return gen_time


def _timeline(embedded: Sequence[EmbeddedPdfSignature], now: dt.datetime) -> list[_Moment]:
    """For each embedded signature, the moment its timestamp is judged at.

    A document timestamp proves that everything in the revisions it covers existed at its time,
    so a timestamp is judged at the time of the first document timestamp after it; the newest
    at ``now``.
    """
    later: list[tuple[int, _Moment]] = []  # document timestamps: (revision, moment), newest first
    for sig in reversed(embedded):
        if sig.sig_object_type != "/DocTimeStamp":
            continue
        try:
            at = _gen_time(sig.signed_data)
        except _MALFORMED:
            continue  # its own check names the problem; it proves nothing for the others
        later.append((sig.signed_revision, _Moment(at, f"存档时间戳「{sig.field_name}」证明的时间 {when(at)}", False)))
    out = []
    for sig in embedded:
        covering = [m for rev, m in later if rev > sig.signed_revision]
        out.append(covering[-1] if covering else _Moment(now, f"验证时的当前时间 {when(now)}", True))
    return out


# --- one signature --------------------------------------------------------------------------


def _name_attr(cert: asn1_x509.Certificate, attr: str) -> str | None:
    value = cert.subject.native.get(attr)
    if isinstance(value, list):
        value = value[0]
    return str(value) if value is not None else None


def _pairs(path: ValidationPath | None) -> list[tuple[asn1_x509.Certificate, asn1_x509.Certificate]]:
    """(certificate, its issuer) along a validated path, leaf first."""
    if path is None:
        return []
    certs = list(path.iter_certs(include_root=True))
    return list(reversed(list(zip(certs[1:], certs[:-1], strict=True))))


def _expiry(path: ValidationPath | None) -> dt.datetime | None:
    if path is None:
        return None
    ends: list[dt.datetime] = [c.not_valid_after for c in path.iter_certs(include_root=True)]
    return min(ends) if ends else None


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@dataclass(frozen=True)
class _Pins:
    """The service's own root (DER), and the certificates other roots may vouch for (None: any)."""

    own_root: bytes
    pinned: frozenset[str] | None

    def problems(self, status: Any, signer: str) -> list[Problem]:
        path = getattr(status, "validation_path", None)
        if self.pinned is None or path is None or not status.trusted:
            return []
        anchor = getattr(path.trust_anchor, "certificate", None)
        if anchor is None or anchor.dump() == self.own_root:
            return []
        if hashlib.sha256(status.signing_cert.dump()).hexdigest() in self.pinned:
            return []
        return [
            Problem(
                "CERTIFICATE_NOT_FOR_THIS_SIGNER",
                f"「{signer}」的签章证书来自另行信任的根证书，却不是本系统为任何单位导入的证书："
                "另行信任的根证书只为导入了其证书的单位担保。",
            )
        ]


class _Judge:
    """Checks one embedded signature or document timestamp against the evidence."""

    def __init__(self, evidence: Evidence, now: dt.datetime, timestamp_moment: _Moment, pins: _Pins) -> None:
        self.ev = evidence
        self.now = now
        self.ts_moment = timestamp_moment
        self.pins = pins

    def _context(self, moment: dt.datetime) -> Any:
        return self.ev.context(moment, past=moment < self.now)

    # --- approval and certification signatures ---

    def signature(self, sig: EmbeddedPdfSignature, *, last: bool) -> SignatureReport:
        name = str(sig.field_name)
        try:
            token = next(extract_tst_data_iter(sig.signer_info, signed=False), None)
            signed_at = _gen_time(token) if token is not None else None
            judged_at = signed_at or self.now
            status = validate_pdf_signature(sig, self._context(judged_at), self._context(self.ts_moment.at))
            certification = (
                sig.docmdp_level is not None and sig.sig_object_type == "/Sig" and "/Reference" in sig.sig_object
            )
            docmdp = sig.docmdp_level
        except _MALFORMED as exc:
            return _unreadable(name, exc)

        problems: list[Problem] = []
        cert = status.signing_cert
        signer = _name_attr(cert, "common_name") or ""
        ts = status.timestamp_validity
        if ts is not None and ts.intact and ts.valid:
            evidence = f"签名时间戳证明的签署时间 {when(judged_at)}"
        elif signed_at is not None:
            evidence = f"签名时间戳声称的签署时间 {when(judged_at)}（时间戳未通过验证）"
        else:
            evidence = f"验证时的当前时间 {when(judged_at)}（签名没有时间戳）"

        if not status.intact:
            problems.append(Problem("CONTENT_ALTERED", f"「{signer}」签署后，签名覆盖的内容被改动过（摘要不符）。"))
        elif not status.valid:
            problems.append(Problem("SIGNATURE_INVALID", f"「{signer}」的签名值无效。"))
        problems.extend(self._certificate_problems(status, signer, judged_at, "签章证书"))
        problems.extend(self.pins.problems(status, signer))
        revocation_evidence = self._revocation_evidence(status.validation_path, judged_at)
        problems.extend(self._compromise_problems(status.validation_path, signer, "签章证书"))

        ts_evidence = None
        if ts is None:
            problems.append(Problem("NO_TIMESTAMP", f"「{signer}」的签名没有可信时间戳，无法证明签署时间。"))
        else:
            ts_evidence = self.ts_moment.evidence
            problems.extend(self._timestamp_problems(ts, token, message_imprint_checker(sig.signer_info), signer))

        problems.extend(_coverage_problems(status.coverage, signer))
        level = status.modification_level
        suspicious = isinstance(status.diff_result, SuspiciousModification)
        if suspicious or (level is not None and level not in ACCEPTABLE):
            problems.append(
                Problem(
                    "MODIFIED_AFTER_SIGNING",
                    f"「{signer}」签署之后，文书内容又被修改过（不是追加签名或验证数据），内容可能已被篡改。",
                    str(status.diff_result) if suspicious else None,
                )
            )
        elif last and level is not None and level not in ACCEPTABLE_AFTER_LAST:
            problems.append(
                Problem(
                    "UNSIGNED_CHANGES",
                    f"最后一个签名（「{signer}」）之后又追加了表单内容或签名域，这些改动没有任何签名负责。",
                )
            )
        elif certification and status.docmdp_ok is False:
            problems.append(Problem("PERMISSIONS_VIOLATED", f"签署后的改动超出了「{signer}」的认证签名所允许的范围。"))

        return SignatureReport(
            field_name=name,
            signer=signer,
            signer_organization=_name_attr(cert, "organization_name"),
            signing_time=ts.timestamp if ts is not None else status.signer_reported_dt,
            timestamped=ts is not None,
            intact=bool(status.intact),
            valid=bool(status.valid),
            trusted=bool(status.trusted),
            revoked=bool(status.revoked),
            certification=bool(certification),
            permissions=PERMISSION_TEXT.get(docmdp) if docmdp is not None else None,
            coverage=_coverage_text(status.coverage),
            modification=MODIFICATION_TEXT.get(level, "无法确定") if level is not None else "无法确定",
            problems=problems,
            kind=KIND_CERTIFICATION if certification else KIND_APPROVAL,
            judged_at=judged_at,
            evidence=evidence,
            timestamp_judged_at=self.ts_moment.at if ts is not None else None,
            timestamp_evidence=ts_evidence,
            revocation_evidence=revocation_evidence,
        )

    # --- document (archive) timestamps ---

    def document_timestamp(self, sig: EmbeddedPdfSignature) -> SignatureReport:
        name = str(sig.field_name)
        try:
            status = validate_pdf_timestamp(sig, self._context(self.ts_moment.at))
            token = sig.signed_data
        except _MALFORMED as exc:
            return _unreadable(name, exc)
        tsa = _name_attr(status.signing_cert, "common_name") or ""
        label = f"存档时间戳「{name}」（{tsa}）"
        problems: list[Problem] = []
        if not status.intact:
            problems.append(Problem("CONTENT_ALTERED", f"{label}加盖后，它覆盖的内容被改动过（摘要不符）。"))
        elif not status.valid:
            problems.append(Problem("SIGNATURE_INVALID", f"{label}的签名值无效。"))
        else:
            problems.extend(self._timestamp_problems(status, token, sig.compute_digest, label))
        problems.extend(_coverage_problems(status.coverage, label))
        level = status.modification_level
        suspicious = isinstance(status.diff_result, SuspiciousModification)
        if suspicious or (level is not None and level not in ACCEPTABLE):
            problems.append(
                Problem(
                    "MODIFIED_AFTER_SIGNING",
                    f"{label}加盖之后，文书内容又被修改过（不是追加签名或验证数据），内容可能已被篡改。",
                    str(status.diff_result) if suspicious else None,
                )
            )
        return SignatureReport(
            field_name=name,
            signer=tsa,
            signer_organization=_name_attr(status.signing_cert, "organization_name"),
            signing_time=status.timestamp,
            timestamped=True,
            intact=bool(status.intact),
            valid=bool(status.valid),
            trusted=bool(status.trusted),
            revoked=bool(status.revoked),
            certification=False,
            permissions=None,
            coverage=_coverage_text(status.coverage),
            modification=MODIFICATION_TEXT.get(level, "无法确定") if level is not None else "无法确定",
            problems=problems,
            kind=KIND_DOCUMENT_TIMESTAMP,
            judged_at=self.ts_moment.at,
            evidence=self.ts_moment.evidence,
            timestamp_judged_at=self.ts_moment.at,
            timestamp_evidence=self.ts_moment.evidence,
            revocation_evidence=self._revocation_evidence(status.validation_path, self.ts_moment.at),
        )

    # --- shared judgements ---

    def _certificate_problems(self, status: SignatureStatus, who: str, moment: dt.datetime, what: str) -> list[Problem]:
        if not (status.intact and status.valid):
            return []
        details = status.revocation_details
        if details is not None:
            return [
                Problem(
                    "CERTIFICATE_REVOKED",
                    f"「{who}」的{what}已于 {when(details.revocation_date)} 被吊销，早于 {when(moment)}。",
                    str(details.revocation_reason.native),
                )
            ]
        if status.trusted:
            return []
        cert = status.signing_cert
        if not (cert.not_valid_before <= moment <= cert.not_valid_after):
            return [
                Problem(
                    "CERTIFICATE_NOT_VALID_AT_SIGNING",
                    f"「{who}」的{what}在 {when(moment)} 不在有效期内（有效期 {when(cert.not_valid_before)} 至 "
                    f"{when(cert.not_valid_after)}）。",
                )
            ]
        if status.trust_problem_indic == AdESIndeterminate.TRY_LATER:
            return [
                Problem(
                    "REVOCATION_UNKNOWN",
                    f"无法确认「{who}」的{what}在 {when(moment)} 未被吊销：能用的证书吊销列表都已过期。"
                    "请更新本机的证书吊销列表后重试。",
                    str(status.trust_problem_indic),
                )
            ]
        return [
            Problem(
                "UNTRUSTED_SIGNER",
                f"「{who}」的{what}不是由受信任的证书中心签发的，或其证书链在 {when(moment)} 无效，无法确认签署人身份。",
                str(status.trust_problem_indic) if status.trust_problem_indic else None,
            )
        ]

    def _compromise_problems(self, path: ValidationPath | None, who: str, what: str) -> list[Problem]:
        for cert, issuer in _pairs(path):
            for revocation in self.ev.revocations(cert, issuer):
                if revocation.compromise:
                    holder = _name_attr(cert, "common_name") or "证书中心"
                    return [
                        Problem(
                            "CERTIFICATE_KEY_COMPROMISED",
                            f"「{who}」的{what}链中「{holder}」的证书已因{revocation.reason_text}于 "
                            f"{when(revocation.date)} 被吊销：无法排除签名是他人用泄露的私钥伪造的。请向发文单位索取重新签发的文书。",
                        )
                    ]
        return []

    def _revocation_evidence(self, path: ValidationPath | None, moment: dt.datetime) -> list[str]:
        lines: list[str] = []
        for cert, issuer in _pairs(path):
            lines.extend(self.ev.describe_crls(issuer, moment))
            for revocation in self.ev.revocations(cert, issuer):
                if revocation.date > moment and not revocation.compromise:
                    holder = _name_attr(cert, "common_name") or ""
                    lines.append(
                        f"「{holder}」的证书于 {when(revocation.date)} 因{revocation.reason_text}被吊销，"
                        f"晚于 {when(moment)}，不影响此前的签名"
                    )
        return list(dict.fromkeys(lines))

    def _timestamp_problems(
        self,
        status: TimestampSignatureStatus,
        token: cms.SignedData | None,
        imprint: Callable[[str], bytes],
        who: str,
    ) -> list[Problem]:
        if not (status.intact and status.valid):
            return [Problem("TIMESTAMP_INVALID", f"{_quote(who)}的时间戳无效（与签名不符或时间戳签名值错误）。")]
        compromised = self._compromise_problems(status.validation_path, who, "时间戳证书")
        if status.trusted:
            return compromised
        moment = self.ts_moment
        if token is not None and status.revocation_details is None:
            expired = self._expired_since(token, imprint, status.timestamp)
            if expired is not None and expired < moment.at:
                if moment.newest:
                    return [
                        Problem(
                            "NEEDS_ARCHIVE_TIMESTAMP",
                            f"{_quote(who)}的时间戳在 {when(status.timestamp)} 加盖时有效，但时间戳服务的证书已于 "
                            f"{when(expired)} 到期，文书之后没有加盖存档时间戳，现已无法证明签署时间。文书内容未被改动；"
                            "请联系发文单位为文书补加存档时间戳。",
                        ),
                        *compromised,
                    ]
                return [
                    Problem(
                        "ARCHIVE_TIMESTAMP_TOO_LATE",
                        f"{_quote(who)}的时间戳服务证书已于 {when(expired)} 到期，而保护它的存档时间戳到 "
                        f"{when(moment.at)} 才加盖，存档链在此中断，无法证明签署时间。",
                    ),
                    *compromised,
                ]
        revoked = status.revocation_details
        if revoked is None and status.trust_problem_indic == AdESIndeterminate.TRY_LATER:
            return [
                Problem(
                    "REVOCATION_UNKNOWN",
                    f"无法确认{_quote(who)}时间戳服务的证书在 {when(moment.at)} 未被吊销：能用的证书吊销列表都已过期。"
                    "请更新本机的证书吊销列表后重试。",
                    str(status.trust_problem_indic),
                ),
                *compromised,
            ]
        return [
            Problem(
                "TIMESTAMP_INVALID",
                f"{_quote(who)}的时间戳不受信任：时间戳服务的证书"
                + (f"已于 {when(revoked.revocation_date)} 被吊销" if revoked else f"在 {when(moment.at)} 无效")
                + "。",
                str(status.trust_problem_indic) if status.trust_problem_indic else None,
            ),
            *compromised,
        ]

    def _expired_since(
        self, token: cms.SignedData, imprint: Callable[[str], bytes], stamped_at: dt.datetime
    ) -> dt.datetime | None:
        """When the token's certificate path expired, if the token was trusted at its own time."""
        try:
            kwargs = _run(validate_tst_signed_data(token, self.ev.context(stamped_at, past=True), imprint))
        except _MALFORMED:
            return None
        at_its_time = TimestampSignatureStatus(**kwargs)
        if not at_its_time.trusted:
            return None
        return _expiry(at_its_time.validation_path)


def _quote(who: str) -> str:
    return who if who.startswith("存档时间戳") else f"「{who}」签名中"


def _coverage_text(coverage: SignatureCoverageLevel | None) -> str:
    return COVERAGE_TEXT.get(coverage, "无法确定") if coverage is not None else "无法确定"


def _coverage_problems(coverage: SignatureCoverageLevel | None, who: str) -> list[Problem]:
    if coverage is None or coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        return [Problem("PARTIAL_COVERAGE", f"{_label(who)}没有覆盖签署时的整个文件。")]
    return []


def _label(who: str) -> str:
    return who if who.startswith("存档时间戳") else f"「{who}」的签名"


def _unreadable(name: str, exc: BaseException | None, problem: Problem | None = None) -> SignatureReport:
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
        problems=[
            problem or Problem("SIGNATURE_UNREADABLE", f"签名「{name}」无法解析，无法确认它签署的内容。", str(exc))
        ],
    )
