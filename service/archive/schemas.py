from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from service.archive.models import STATUS_TITLES, Document, DocumentStatus
from service.archive.service import Receipt, StoredVerdict, UploadCheck, receipt_wait, versions
from service.documents.registry import GUARDIAN_NOTICES, get_kind


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200, title="撤回原因")


class DocumentOut(BaseModel):
    id: int
    kind: str
    title: str
    status: str
    status_title: str
    issuer: str
    subject: str | None
    issued_at: dt.datetime
    sha256: str
    pages: int
    revoked_at: dt.datetime | None
    revoke_reason: str | None
    versions: list[dict[str, Any]]

    @classmethod
    def of(cls, session: Session, doc: Document) -> DocumentOut:
        return cls(
            id=doc.id,
            kind=doc.kind,
            title=get_kind(doc.kind).title,
            status=doc.status,
            status_title=STATUS_TITLES[DocumentStatus(doc.status)],
            issuer=doc.issuer.name if doc.issuer else str(doc.public.get("issuer", "")),
            subject=doc.subject.name if doc.subject else None,
            issued_at=doc.issued_at,
            sha256=doc.current_sha256,
            pages=doc.pages,
            revoked_at=doc.revoked_at,
            revoke_reason=doc.revoke_reason,
            versions=[
                {
                    "number": v.number,
                    "sha256": v.sha256,
                    "event": v.event,
                    "created_at": v.created_at.isoformat(),
                    "bytes": v.size,
                }
                for v in versions(session, doc)
            ],
        )


def download_name(doc: Document, version: int | None = None) -> str:
    """The file name a document downloads under: its title and whom it is for (the child of a
    notice, the unit of a pledge), so notices of different children never share one name."""
    whom = doc.fields.get("student_name") or (doc.subject.name if doc.subject else doc.public.get("issuer", ""))
    parts = [get_kind(doc.kind).title, str(whom or "").strip(), f"第{version}版" if version else ""]
    name = "-".join(p for p in parts if p)
    return "".join("_" if ch in '\\/:*?"<>|' or ord(ch) < 32 else ch for ch in name)[:120] + ".pdf"


def document_brief(doc: Document) -> dict[str, Any]:
    """A document as a case or roster lists it (with the guardian's receipt)."""
    return {
        "id": doc.id,
        "kind": doc.kind,
        "title": get_kind(doc.kind).title,
        "status": doc.status,
        "issued_at": doc.issued_at.isoformat(),
        "report_by": doc.fields.get("report_by"),
        "sha256": doc.current_sha256,
        "opened_at": doc.opened_at.isoformat() if doc.opened_at else None,
        "opened_count": doc.opened_count,
        "confirmed_at": doc.confirmed_at.isoformat() if doc.confirmed_at else None,
    }


FIELD_LABELS = {"school_name": "学校", "report_by": "报到截止日期", "office_name": "街道教育办", "year": "年度"}


def cn_date(value: Any) -> str:
    try:
        d = dt.date.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f"{d.year}年{d.month}月{d.day}日"


class Verification:
    """What the public verification page (or its JSON) says about a code or an uploaded file."""

    def __init__(
        self,
        *,
        found: bool,
        genuine: bool,
        verdict: str,
        tone: str,
        summary: str,
        facts: list[tuple[str, str]] | None = None,
        sha256: str | None = None,
        problems: list[str] | None = None,
        data: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> None:
        self.found, self.genuine, self.verdict, self.tone, self.summary = found, genuine, verdict, tone, summary
        self.facts, self.sha256, self.problems = facts or [], sha256, problems or []
        self.data, self.status_code = data or {}, status_code
        #: A guardian notice's receipt: whether the form is offered, why not, and the last attempt.
        self.can_confirm = False
        #: The document's current version is not checked yet: the page offers to check it now.
        self.pending = False
        self.receipt_note = ""
        self.receipt_message = ""
        self.receipt_tone = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "genuine": self.genuine,
            "verdict": self.verdict,
            "summary": self.summary,
            "sha256": self.sha256,
            "problems": self.problems,
            **self.data,
        }

    @classmethod
    def not_found(cls) -> Verification:
        return cls(
            found=False,
            genuine=False,
            verdict="未找到",
            tone="bad",
            summary="没有与该验证码对应的文书。请核对验证码；如确认输入无误，这份文书可能不是真实的，请向发文单位核实。",
            status_code=404,
        )

    @classmethod
    def refused(cls, code: str, message: str, status_code: int) -> Verification:
        return cls(
            found=False,
            genuine=False,
            verdict="无法核对",
            tone="bad",
            summary=message,
            data={"code": code},
            status_code=status_code,
        )

    @classmethod
    def of_document(
        cls,
        doc: Document,
        verdict: Callable[[], StoredVerdict | None],
        tz: zoneinfo.ZoneInfo,
        now: dt.datetime | None = None,
    ) -> Verification:
        """A document's page: its public fields (names masked) and whether it is genuine; ``verdict``
        is asked only for a valid document, and None from it means the check has not run yet;
        ``now`` (the service's clock) decides whether a guardian's receipt must wait."""
        pub = doc.public
        facts = [
            ("文书", pub.get("title", "")),
            ("发文单位", pub.get("issuer", "")),
            ("发文日期", cn_date(pub.get("date", ""))),
        ]
        for key, label in FIELD_LABELS.items():
            if key in pub:
                value = cn_date(pub[key]) if key == "report_by" else str(pub[key])
                facts.append((label, value))
        if "subject" in pub:
            facts.append(("学生", pub["subject"]))
        if "guardian" in pub:
            facts.append(("监护人", pub["guardian"]))
        status = DocumentStatus(doc.status)
        facts.append(("状态", STATUS_TITLES[status]))
        problems = []
        protected_until: str | None = None
        pending = False
        stored = verdict() if status == DocumentStatus.VALID else None
        if status == DocumentStatus.VALID and stored is None:
            pending, verdict_text, tone, genuine = True, "核验中", "warn", False
            summary = (
                "这份文书刚刚归档，系统正在后台核验它的签章，通常几分钟内完成。"
                "核验完成前无法确认真伪：请稍后刷新本页，或点击下方「立即核验」。"
            )
        elif status == DocumentStatus.REVOKED:
            verdict_text, tone, genuine = "已撤回", "warn", False
            when = doc.revoked_at.astimezone(tz) if doc.revoked_at else None
            summary = (
                f"这份文书由发文单位签发，但已于 {when:%Y年%m月%d日} 撤回，不再有效。"
                if when
                else "这份文书已撤回，不再有效。"
            )
            # The reason is free text staff typed (it may name the child): it stays off the public page.
            problems.append("如有疑问，请联系发文单位。")
        elif status == DocumentStatus.SUPERSEDED:
            verdict_text, tone, genuine = "已被替代", "warn", False
            summary = "这份文书已由发文单位重新签发的新文书替代，请以新文书为准。"
        elif status == DocumentStatus.ERASED:
            verdict_text, tone, genuine = "已按期删除", "warn", False
            summary = (
                "这份文书确由发文单位签发，但其保存期限已满（或依申请），文书及其中的个人信息已按规定删除，"
                "不能再核对内容。如有疑问，请联系发文单位。"
            )
        else:
            assert stored is not None
            genuine = stored.genuine
            if genuine:
                verdict_text, tone = "真实有效", "ok"
                summary = f"这是{pub.get('issuer', '发文单位')}签发的真实文书，签章完整、未被改动。"
                if stored.protected_until is not None:
                    until = stored.protected_until.astimezone(tz)
                    facts.append(
                        ("长期验证", f"签名的时间证据有效至 {until:%Y年%-m月%-d日}，到期前系统自动加盖存档时间戳")
                    )
                    protected_until = stored.protected_until.isoformat()
            elif stored.needs_timestamp:  # time has passed, nothing was altered: not a forgery
                verdict_text, tone = "待补充存档时间戳", "warn"
                summary = (
                    "这份文书的签章完整、未被改动，但证明其签署时间的时间戳证书已经过期，"
                    "需要发文单位补充存档时间戳或重新签发。请向发文单位核实。"
                )
                problems = stored.messages
            else:
                verdict_text, tone = "异常", "bad"
                summary = "归档中的文书未通过签名验证，请联系发文单位。"
                problems = stored.messages
        data = {
            "status": doc.status,
            "status_title": STATUS_TITLES[status],
            "title": pub.get("title"),
            "issuer": pub.get("issuer"),
            "date": pub.get("date"),
            "fields": {k: pub[k] for k in (*FIELD_LABELS, "subject", "guardian") if k in pub},
            "revoked_at": doc.revoked_at.isoformat() if doc.revoked_at else None,
            "protected_until": protected_until,
            "pending": pending,
        }
        v = cls(
            found=True,
            genuine=genuine,
            verdict=verdict_text,
            tone=tone,
            summary=summary,
            facts=facts,
            sha256=doc.current_sha256,
            problems=problems,
            data=data,
        )
        v.pending = pending
        if doc.kind in GUARDIAN_NOTICES and status == DocumentStatus.VALID:  # the guardian's receipt
            if doc.confirmed_at is not None:
                v.facts.append(("监护人确认", f"已于 {doc.confirmed_at.astimezone(tz):%Y年%m月%d日 %H:%M} 确认阅知"))
            elif doc.receipt_digest is None:
                v.receipt_note = "学校没有登记监护人的电话号码，无法在此确认阅知，请直接告知学校。"
            elif wait := receipt_wait(doc, now or dt.datetime.now(dt.UTC)):
                v.receipt_note = _slowed_words(wait)
            else:
                v.can_confirm = True
            v.data["confirmed"] = doc.confirmed_at is not None
        return v

    def receipt_answer(self, outcome: Receipt) -> Verification:
        """The page after a guardian tried to confirm 已阅知: what happened, in words."""
        self.receipt_tone = "ok" if outcome == Receipt.CONFIRMED else "bad"
        self.receipt_message = {
            Receipt.CONFIRMED: "感谢您确认已阅知，学校已收到您的回执。",
            Receipt.WRONG_DIGITS: "电话号码后四位不对，请核对学校登记的监护人电话后重新输入。",
            Receipt.SLOWED: "电话号码后四位输错次数较多，请稍后再试；也可以直接联系学校。",
            Receipt.NO_PHONE: "学校没有登记监护人的电话号码，无法在此确认阅知，请直接告知学校。",
            Receipt.NOT_OPEN: "这份文书不需要（或已不能）确认阅知。",
        }[outcome]
        self.data["receipt"] = outcome.value
        return self

    @classmethod
    def print_bundle(cls, sha256: str, notices: int) -> Verification:
        """A school's print file: many signed notices joined for the printer, itself not a signed
        document (its signatures each cover one notice, none the whole file), so no list of reasons."""
        return cls(
            found=False,
            genuine=False,
            verdict="打印合订本",
            tone="warn",
            summary=f"这是学校打印用的合订本（{notices} 份通知书），不是一份签章文书：请扫描每份通知书上自己的二维码核验。",
            sha256=sha256,
            data={"code": "PRINT_BUNDLE", "notices": notices},
        )

    @classmethod
    def of_upload(cls, check: UploadCheck, verdict: Callable[[], StoredVerdict], tz: zoneinfo.ZoneInfo) -> Verification:
        """An uploaded file: genuine only if its signatures pass and it is exactly an archived
        version (answered from the stored verdict, without parsing it again)."""
        problems = check.verdict.messages
        if check.version is None:
            if check.verdict.genuine:
                problems.append("签名有效，但本系统的档案中没有这个文件，无法确认是本系统签发的文书。")
            return cls(
                found=False,
                genuine=False,
                verdict="不是真实有效的文书",
                tone="bad",
                summary="这个文件与档案中的任何文书都不一致：可能被改动过，或不是本系统签发的。",
                sha256=check.sha256,
                problems=problems,
                data={
                    "codes": check.verdict.codes + (["UNKNOWN_FILE"] if check.verdict.genuine else []),
                    "source": check.verdict.source,
                },
            )
        doc = check.version.document
        described = cls.of_document(doc, verdict, tz)
        latest = check.version.sha256 == doc.current_sha256
        described.data["source"] = check.verdict.source
        if not check.verdict.genuine:
            return cls(
                found=True,
                genuine=False,
                verdict="不是真实有效的文书",
                tone="bad",
                summary="文件签名未通过验证。",
                facts=described.facts,
                sha256=check.sha256,
                problems=problems,
                data={"codes": check.verdict.codes, "source": check.verdict.source},
            )
        if not latest and described.genuine:
            return cls(
                found=True,
                genuine=True,
                verdict="真实，但不是最新版本",
                tone="warn",
                summary="这是该文书较早的版本；此后还有单位签署，请以最新版本为准。",
                facts=described.facts,
                sha256=check.sha256,
                data=described.data,
            )
        described.sha256 = check.sha256
        described.can_confirm = False
        return described


def _slowed_words(wait: dt.timedelta) -> str:
    minutes = max(1, -(-int(wait.total_seconds()) // 60))
    when = f"{minutes} 分钟" if minutes < 120 else f"{-(-minutes // 60)} 小时"
    return f"电话号码后四位输错次数较多，请 {when}后再试；也可以直接联系学校。"
