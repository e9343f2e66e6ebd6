"""Finding what the retention rules make due, and removing it.

Removing keeps the rows (the figures of past months and terms still count them: school, sex,
grade, birth year, status, dates, reasons) and takes out what names or reaches a child: names, 身份证号,
学籍号, addresses, phones, free text staff typed, uploaded files, and the signed PDFs with every
version (their rows stay, status 已按期删除, so a scanned code says the notice was removed rather than
"not found"). Each removal is one entry in the retention log and one ``retention.erase`` audit event,
in the same transaction; files are deleted only once that transaction commits.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.scope import Scope
from service.archive.models import Document, DocumentStatus, DocumentVersion
from service.archive.service import Archive
from service.audit.service import SYSTEM, Actor, record
from service.cases.models import OPEN_STATUSES, STATUS_TITLES, Case, CaseFile, CaseStatus, HomeVisit
from service.errors import InvalidInput
from service.ledgers.models import ChildEntry
from service.retention.models import RetentionRecord
from service.retention.rules import RetentionRules, case_due, child_due, roster_due
from service.rosters.models import PrintBundle, Roster, RosterEntry

log = logging.getLogger(__name__)

#: What a removed name or free text reads afterwards.
ERASED_TEXT = "（已删除）"
#: The public facts an erased document keeps: what it was, who issued it, when.
KEPT_PUBLIC = ("kind", "title", "issuer", "date")
RULE_TITLES = {
    "case": "结案个案保存期满",
    "roster": "名单与通知书保存期满",
    "children": "适龄儿童台账保存期满",
    "page_cache": "页面预览图缓存到期",
    "request": "监护人申请删除",
}


class CaseStillOpen(InvalidInput):
    code = "CASE_STILL_OPEN"
    http_status = 409
    default_message = "个案尚未结案，不能删除其个人信息。"


class ErasureReasonMissing(InvalidInput):
    code = "ERASURE_REASON_REQUIRED"
    default_message = "请填写删除的依据（如监护人的书面申请及其日期）。"


class AlreadyErased(InvalidInput):
    code = "ALREADY_ERASED"
    http_status = 409
    default_message = "该个案的个人信息已经删除。"


@dataclass(frozen=True)
class Due:
    """One record a rule makes due. ``label`` names it without personal data."""

    rule: str
    subject_type: str
    subject_id: int
    due_on: dt.date
    label: str


@dataclass
class RetentionPlan:
    today: dt.date
    items: list[Due] = field(default_factory=list)
    page_images: list[Path] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {rule: 0 for rule in ("case", "roster", "children")}
        for item in self.items:
            out[item.rule] += 1
        out["page_cache"] = len(self.page_images)
        return out


@dataclass
class Removed:
    fields: int = 0
    files: int = 0
    documents: int = 0
    versions: int = 0
    keys: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"fields": self.fields, "files": self.files, "documents": self.documents, "versions": self.versions}


class Retention:
    def __init__(
        self,
        archive: Archive,
        rules: RetentionRules,
        tz: str,
        now: Callable[[], dt.datetime],
        page_cache: Path,
    ) -> None:
        self.archive = archive
        self.rules = rules
        self.tz = zoneinfo.ZoneInfo(tz)
        self.now = now
        self.page_cache = page_cache

    def today(self) -> dt.date:
        return self.now().astimezone(self.tz).date()

    # --- what is due ---------------------------------------------------------------------------

    def plan(self, session: Session, today: dt.date | None = None) -> RetentionPlan:
        """Everything due on ``today`` (by default the service's today), oldest first per rule."""
        today = today or self.today()
        plan = RetentionPlan(today)
        closed = [s.value for s in CaseStatus if s not in OPEN_STATUSES]
        cases = session.scalars(
            select(Case).where(Case.status.in_(closed), Case.erased_at.is_(None)).order_by(Case.id)
        ).all()
        for case in cases:
            due = case_due(self._closed_on(case), case.birth_date, self.rules)
            if due <= today:
                title = STATUS_TITLES[CaseStatus(case.status)]
                plan.items.append(Due("case", "case", case.id, due, f"个案 #{case.id}（{case.school.name}，{title}）"))
        for roster in session.scalars(select(Roster).where(Roster.erased_at.is_(None)).order_by(Roster.id)):
            due = roster_due(roster.issue_date, self.rules)
            if due <= today:
                label = f"名单 #{roster.id}（{roster.issuer.name}，{roster.issue_date:%Y-%m-%d}，{roster.rows} 行）"
                plan.items.append(Due("roster", "roster", roster.id, due, label))
        entries = session.scalars(
            select(ChildEntry).where(ChildEntry.erased_at.is_(None)).order_by(ChildEntry.id)
        ).all()
        open_cases = self._open_case_ids(session, {e.case_id for e in entries if e.case_id is not None})
        for entry in entries:
            due = child_due(entry.year, entry.birth_date, self.rules)
            if due <= today and entry.case_id not in open_cases:
                label = f"适龄儿童台账 #{entry.id}（{entry.school.name}，{entry.year} 年入学）"
                plan.items.append(Due("children", "child_entry", entry.id, due, label))
        plan.page_images = self._stale_images(today)
        return plan

    def _closed_on(self, case: Case) -> dt.date:
        if case.closure is not None:
            return case.closure.date
        when = case.closed_at or case.updated_at
        return when.astimezone(self.tz).date()

    @staticmethod
    def _open_case_ids(session: Session, ids: set[int]) -> set[int]:
        if not ids:
            return set()
        opened = [s.value for s in OPEN_STATUSES]
        return set(session.scalars(select(Case.id).where(Case.id.in_(ids), Case.status.in_(opened))))

    def _stale_images(self, today: dt.date) -> list[Path]:
        if not self.page_cache.is_dir():
            return []
        horizon = dt.datetime.combine(today, dt.time(), self.tz) - dt.timedelta(days=self.rules.page_cache_days)
        cutoff = horizon.timestamp()
        return sorted(p for p in self.page_cache.iterdir() if p.is_file() and p.stat().st_mtime < cutoff)

    # --- removing it ---------------------------------------------------------------------------

    def apply(
        self,
        session: Session,
        plan: RetentionPlan,
        actor: Actor = SYSTEM,
        *,
        checkpoint: Callable[[], None] | None = None,
    ) -> dict[str, int]:
        """Remove what ``plan`` lists; ``checkpoint`` (a commit) after each record, so a long run
        keeps what it has done. Returns how many records of each rule went."""
        done = {rule: 0 for rule in plan.counts()}
        for item in plan.items:
            removed = Removed()
            if item.subject_type == "case":
                self._erase_case(session, session.get_one(Case, item.subject_id), removed)
            elif item.subject_type == "roster":
                self._erase_roster(session, session.get_one(Roster, item.subject_id), removed)
            else:
                self._erase_child(session.get_one(ChildEntry, item.subject_id), removed)
            self._record(session, item.rule, item.subject_type, item.subject_id, item.due_on, removed, actor, None)
            done[item.rule] += 1
            if checkpoint is not None:
                checkpoint()
        if plan.page_images:
            for path in plan.page_images:
                path.unlink(missing_ok=True)
            removed = Removed(files=len(plan.page_images))
            self._record(session, "page_cache", "page_cache", None, plan.today, removed, actor, None)
            done["page_cache"] = len(plan.page_images)
            if checkpoint is not None:
                checkpoint()
        return done

    def erase_case_on_request(self, session: Session, scope: Scope, case: Case, reason: str) -> RetentionRecord:
        """A guardian's request to delete a child's data (个人信息保护法 art. 47), decided by the
        bureau: only bureau staff of the case's district, only a closed case (an open one is a duty
        under the 义务教育法, not a purpose achieved), with the basis written down."""
        scope.require(Role.BUREAU, message="删除个人信息须由教体局工作人员办理。")
        if case.school_id not in scope.units:
            raise scope.refuse("该个案不在您的辖区内。")
        reason = " ".join(reason.split())
        if len(reason) < 4:
            raise ErasureReasonMissing()
        if case.erased_at is not None:
            raise AlreadyErased()
        if CaseStatus(case.status) in OPEN_STATUSES:
            raise CaseStillOpen(
                f"个案尚未结案（{STATUS_TITLES[CaseStatus(case.status)]}）：依照《义务教育法》须继续劝返，"
                "不能删除其个人信息。销号（复学、延缓入学/休学或核销）后可以办理删除。"
            )
        removed = Removed()
        self._erase_case(session, case, removed)
        return self._record(session, "request", "case", case.id, None, removed, scope.actor, reason[:200])

    def _record(
        self,
        session: Session,
        rule: str,
        subject_type: str,
        subject_id: int | None,
        due_on: dt.date | None,
        removed: Removed,
        actor: Actor,
        reason: str | None,
    ) -> RetentionRecord:
        now = self.now()
        entry = RetentionRecord(
            at=now,
            rule=rule,
            subject_type=subject_type,
            subject_id=subject_id,
            due_on=due_on,
            removed=removed.counts(),
            reason=reason or RULE_TITLES[rule],
            actor=actor.label,
            actor_user_id=actor.user_id,
        )
        session.add(entry)
        session.flush()
        detail: dict[str, Any] = {"rule": rule, **removed.counts()}
        record(session, actor, "retention.erase", subject_type, subject_id or "", now, **detail)
        self._delete_once_committed(session, _unshared(session, removed.keys))
        return entry

    def _delete_once_committed(self, session: Session, keys: list[tuple[str, str]]) -> None:
        """Delete the stored files when the removal commits; if it rolls back, they stay."""
        if not keys:
            return
        ended = False

        def committed(_session: Session) -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            for store, sha256 in keys:
                try:
                    self.archive.stores[store].delete(sha256)
                except Exception:  # the rows no longer name it; the next sweep finds it
                    log.warning("could not delete %s/%s after its retention ended", store, sha256, exc_info=True)

        def rolled_back(_session: Session) -> None:
            nonlocal ended
            ended = True

        event.listen(session, "after_commit", committed, once=True)
        event.listen(session, "after_rollback", rolled_back, once=True)

    def _erase_case(self, session: Session, case: Case, removed: Removed) -> None:
        now = self.now()
        case.student_name = ERASED_TEXT
        case.id_number = ""
        case.student_number = None
        case.home_address = None
        case.birth_date = dt.date(case.birth_date.year, 1, 1)  # the age the figures count, no more
        case.reason_detail = None
        case.measures = None
        case.erased_at = now
        removed.fields += 7
        for g in case.guardians:
            g.name, g.phone, g.address = ERASED_TEXT, "", None
            removed.fields += 3
        for a in case.attempts:
            a.result, a.note = ERASED_TEXT, None
            removed.fields += 2
        for v in case.home_visits:
            v.content, v.evidence_filename = ERASED_TEXT, ERASED_TEXT
            removed.keys.append(("files", v.evidence_sha256))
            removed.files += 1
        if case.closure is not None and case.closure.note:
            case.closure.note = None
            removed.fields += 1
        for f in session.scalars(select(CaseFile).where(CaseFile.case_id == case.id)):
            removed.keys.append(("files", f.sha256))
            removed.files += 1
            session.delete(f)
        documents = session.scalars(select(Document).where(Document.case_id == case.id)).all()
        self._erase_documents(session, documents, removed)
        for entry in session.scalars(select(RosterEntry).where(RosterEntry.case_id == case.id)):
            self._erase_entry(entry, removed)
        for child in session.scalars(
            select(ChildEntry).where(ChildEntry.case_id == case.id, ChildEntry.erased_at.is_(None))
        ):
            self._erase_child(child, removed)
        session.flush()

    def _erase_roster(self, session: Session, roster: Roster, removed: Removed) -> None:
        entries = session.scalars(select(RosterEntry).where(RosterEntry.roster_id == roster.id)).all()
        for entry in entries:
            self._erase_entry(entry, removed)
        # a notice that belongs to a case stays with the case (its own rule); the others go now
        ids = [e.document_id for e in entries if e.document_id is not None]
        documents = _chunked_documents(session, ids)
        self._erase_documents(session, [d for d in documents if d.case_id is None], removed)
        for bundle in session.scalars(select(PrintBundle).where(PrintBundle.roster_id == roster.id)):
            removed.keys.append(("documents", bundle.sha256))
            removed.files += 1
            session.delete(bundle)
        roster.erased_at = self.now()
        session.flush()

    @staticmethod
    def _erase_entry(entry: RosterEntry, removed: Removed) -> None:
        if entry.fields:
            removed.fields += len(entry.fields)
        entry.fields = {}
        entry.grade_class = None
        entry.receipt_digest = None

    def _erase_child(self, child: ChildEntry, removed: Removed) -> None:
        child.student_name = ERASED_TEXT
        # empty, sealed like any value, and without a blind index: the row no longer matches a
        # child and stays unique in its school and year (NULL indexes never collide)
        child.id_number = ""
        child.home_address = None
        child.guardian_name = None
        child.guardian_phone = None
        if child.birth_date is not None:
            child.birth_date = dt.date(child.birth_date.year, 1, 1)
        child.erased_at = self.now()
        removed.fields += 6

    def _erase_documents(self, session: Session, documents: Iterable[Document], removed: Removed) -> None:
        for doc in documents:
            if doc.status == DocumentStatus.ERASED:
                continue
            versions = session.scalars(select(DocumentVersion).where(DocumentVersion.document_id == doc.id)).all()
            for version in versions:
                removed.keys.append(("documents", version.sha256))
            removed.versions += len(versions)
            removed.documents += 1
            removed.fields += len(doc.fields or {})
            doc.fields = {}
            doc.public = {k: v for k, v in (doc.public or {}).items() if k in KEPT_PUBLIC}
            doc.status = DocumentStatus.ERASED
            doc.receipt_digest = None


def _unshared(session: Session, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The files no remaining row names: an uploaded file is kept by its content, and the same
    photo given to two cases is one file that stays while the other case names it."""
    files = {sha for store, sha in keys if store == "files"}
    if not files:
        return keys
    named = set(session.scalars(select(CaseFile.sha256).where(CaseFile.sha256.in_(files))))
    named |= set(
        session.scalars(
            select(HomeVisit.evidence_sha256).where(
                HomeVisit.evidence_sha256.in_(files), HomeVisit.evidence_filename != ERASED_TEXT
            )
        )
    )
    return [(store, sha) for store, sha in keys if store != "files" or sha not in named]


def _chunked_documents(session: Session, ids: list[int], size: int = 500) -> list[Document]:
    out: list[Document] = []
    for start in range(0, len(ids), size):
        out.extend(session.scalars(select(Document).where(Document.id.in_(ids[start : start + size]))))
    return out
