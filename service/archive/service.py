"""The archive's use cases: issue-and-record and sign-and-record (the one path from a request to an
archived, recorded document), journaled writes and their recovery, lookups, revocation, bundles.

The signed bytes live in the archive store (content-addressed, written first); the rows here say
what they are. Every write is journaled before it reaches the store: a job's in its own session
(:class:`~service.archive.models.PendingWrite`, removed in the transaction that records the file), a
request's apart from the request's transaction (``journal.RequestJournal``, removed once it commits),
so a crash between the two leaves an entry that recovery uses to delete the file no row points to.
A verification code is looked up by its SHA-256 only.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import secrets
import threading
import time
import zipfile
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.archive.journal import Entry, RequestJournal
from service.archive.models import Document, DocumentStatus, DocumentVersion, PendingWrite
from service.audit.service import SYSTEM, Actor, record
from service.clock import wall_now
from service.documents.codes import normalize_code
from service.documents.errors import PdfInvalid
from service.documents.ltv import TOO_LATE, archive_timestamp_due, timestamp_horizon
from service.documents.registry import GUARDIAN_NOTICES, get_kind
from service.documents.sign import last_signature_time
from service.errors import InvalidInput
from service.jobs.models import Job
from service.sheets.cells import safe_cell
from service.storage.base import ArchiveCorrupt, ArchivedFileMissing, ArchiveStore, StoreName, sha256_hex
from service.units.models import Unit


class DocumentAlreadyRevoked(InvalidInput):
    code = "CAMPAIGN_NOT_READY"
    http_status = 409
    default_message = "该文书已经撤回。"


class DocumentErased(ArchivedFileMissing):
    code = "DOCUMENT_ERASED"
    http_status = 410
    default_message = "这份文书的保存期限已满（或依申请），文书已按规定删除，不能再下载或查看。"


def stored_pdf(doc: Document, sha256: str | None = None) -> str:
    """The archive key of ``doc``'s current PDF (or of its version ``sha256``), refused with a
    clear message for a document removed at the end of its retention."""
    if doc.status == DocumentStatus.ERASED:
        raise DocumentErased()
    return sha256 or doc.current_sha256


if TYPE_CHECKING:
    from service.accounts.scope import Scope
    from service.db.session import Database
    from service.documents.pipeline import Appendix, DocumentEngine, IssuedDocument, IssueRequest
    from service.documents.sandbox import UploadVerifier
    from service.documents.verify import VerificationReport


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def mask_name(name: str) -> str:
    """张三 -> 张*, 张小雨 -> 张*雨, 欧阳晓娜 -> 欧**娜: enough for a guardian to recognise, no more."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def public_info(kind_key: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """What the public page shows of a document: the kind, who issued it and when, the fields a
    guardian needs (school, report-by date) and the person's name masked. No ID numbers."""
    kind = get_kind(kind_key)
    out: dict[str, Any] = {
        "kind": kind.key,
        "title": kind.title,
        "issuer": str(fields.get(kind.issuer_field, "")),
        "date": str(fields.get(kind.date_field, "")),
    }
    for name in kind.public_fields:
        if fields.get(name) is not None:
            out[name] = fields[name]
    if kind.subject_field and fields.get(kind.subject_field):
        out["subject"] = mask_name(str(fields[kind.subject_field]))
    if fields.get("guardian_name"):
        out["guardian"] = mask_name(str(fields["guardian_name"]))
    return out


def record_issued(
    session: Session,
    issued: IssuedDocument,
    *,
    issuer: Unit | None,
    at: dt.datetime,
    subject: Unit | None = None,
    case_id: int | None = None,
    receipt_digest: str | None = None,
    flush: bool = True,
) -> Document:
    """The record of a newly issued document and its first version. With ``flush=False`` the rows
    are written at the session's next flush (a batch writes them many at a time); the document
    has no id until then."""
    kind, fields = issued.kind, issued.fields
    doc = Document(
        kind=kind,
        code_hash=code_hash(issued.code),
        issuer_unit_id=issuer.id if issuer else None,
        subject_unit_id=subject.id if subject else None,
        fields=json.loads(json.dumps(dict(fields), ensure_ascii=False, default=str)),
        public=public_info(kind, fields),
        status=DocumentStatus.VALID,
        issued_at=at,
        current_sha256=issued.sha256,
        pages=issued.pages,
        case_id=case_id,
        receipt_digest=receipt_digest,
    )
    session.add(doc)
    session.add(
        DocumentVersion(
            document=doc,
            number=1,
            sha256=issued.sha256,
            size=len(issued.pdf),
            created_at=at,
            event="issued",
            signer_unit_id=issuer.id if issuer else None,
        )
    )
    if flush:
        session.flush()
    return doc


def record_signed(
    session: Session,
    doc: Document,
    *,
    sha256: str,
    size: int,
    signer: Unit | None,
    at: dt.datetime,
    event: str = "signed",
) -> DocumentVersion:
    number = (
        session.scalar(select(func.max(DocumentVersion.number)).where(DocumentVersion.document_id == doc.id)) or 0
    ) + 1
    version = DocumentVersion(
        document_id=doc.id,
        number=number,
        sha256=sha256,
        size=size,
        created_at=at,
        event=event,
        signer_unit_id=signer.id if signer else None,
    )
    session.add(version)
    doc.current_sha256 = sha256
    session.flush()
    return version


def versions(session: Session, doc: Document) -> list[DocumentVersion]:
    return list(
        session.scalars(
            select(DocumentVersion).where(DocumentVersion.document_id == doc.id).order_by(DocumentVersion.number)
        )
    )


def revoke(doc: Document, reason: str, at: dt.datetime) -> None:
    doc.status = DocumentStatus.REVOKED
    doc.revoked_at = at
    doc.revoke_reason = reason


def find_by_code(session: Session, text: str) -> Document | None:
    code = normalize_code(text)
    # Hash even a malformed code, so that every lookup costs the same.
    digest = code_hash(code if code is not None else "invalid:" + text[:64])
    doc = session.scalar(select(Document).where(Document.code_hash == digest))
    return doc if code is not None else None


def find_version_by_hash(session: Session, sha256: str) -> DocumentVersion | None:
    return session.scalar(
        select(DocumentVersion).where(DocumentVersion.sha256 == sha256).order_by(DocumentVersion.id.desc()).limit(1)
    )


@dataclass(frozen=True)
class BundleEntry:
    path: str
    sha256: str
    meta: dict[str, Any]


#: manifest.csv's column headers, for the people who open it in Excel or WPS (manifest.json keeps the keys).
MANIFEST_HEADERS = {
    "path": "文件",
    "sha256": "SHA-256 摘要",
    "bytes": "字节数",
    "unit": "单位",
    "unit_code": "单位代码",
    "kind": "文书",
    "state": "状态",
    "signed_at": "签署时间（北京时间）",
    "late": "是否逾期",
    "document_status": "文书状态",
    "filename": "原文件名",
}


def write_bundle(
    out: IO[bytes],
    store: ArchiveStore,
    entries: Iterable[BundleEntry],
    title: str,
    tz: zoneinfo.ZoneInfo | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    """A zip of signed PDFs with manifest.json and manifest.csv (path, SHA-256 and what each file
    is): the CSV with Chinese headers, both with the time made in the bureau's time zone."""
    rows = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            size = 0
            with zf.open(e.path, "w") as member:
                for block in store.stream(e.sha256):  # re-checks each file against its hash
                    member.write(block)
                    size += len(block)
            rows.append({"path": e.path, "sha256": e.sha256, "bytes": size, **e.meta})
        made = dt.datetime.now(dt.UTC).astimezone(tz or dt.UTC).replace(microsecond=0)
        manifest = {"title": title, "generated_at": made.isoformat(), "files": rows}
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
        names = {**MANIFEST_HEADERS, **(headers or {})}
        buf = io.StringIO()
        writer = csv.writer(buf)
        if rows:
            keys = list(rows[0].keys())
            writer.writerow([names.get(k, k) for k in keys])
            writer.writerows([[safe_cell(row.get(k, "")) for k in keys] for row in rows])  # opened in Excel
        zf.writestr("manifest.csv", "\ufeff" + buf.getvalue())
    return len(rows)


def safe_filename(name: str) -> str:
    bad = '\\/:*?"<>|\0'
    clean = "".join("_" if c in bad or ord(c) < 32 else c for c in name).strip()
    return "_" if clean in ("", ".", "..") else clean


def bundle_path(*parts: str) -> str:
    return str(Path(*[safe_filename(p) for p in parts]))


#: Least time between two progress reports of a batch (each is a write of the job row): a page
#: polls every second, and a roster of thousands must not write its job row thousands of times.
PROGRESS_EVERY_SECONDS = 0.25
#: Documents recorded per commit in a batch: a crash re-issues at most one conversion chunk, with
#: the same codes, and the journal removes what it had written.
COMMIT_EVERY = 25
#: A request's journal entry older than this belongs to a request that died before committing.
REQUEST_GRACE = dt.timedelta(minutes=10)


GENUINE, NOT_GENUINE = "genuine", "not_genuine"
#: Intact and once proven, but its newest timestamp no longer proves the signing time: not forged.
NEEDS_TIMESTAMP = "needs_timestamp"
#: Wrong tries at a notice's receipt digits before each next try waits (10,000 possible endings:
#: five tries give a guesser a 1 in 2,000 chance; the doubling waits after them, up to a day, make
#: guessing on hopeless, and a family never waits more than a day for a stranger's guesses).
RECEIPT_TRIES = 5
RECEIPT_WAIT_MAX = dt.timedelta(days=1)


@dataclass(frozen=True)
class StoredVerdict:
    """A verdict on some bytes, as stored (or just reached): genuine or not, and what is wrong."""

    genuine: bool
    problems: list[dict[str, str]]
    checked_at: dt.datetime | None
    #: ``archive`` when read from the record, ``parsed`` when this file was parsed now.
    source: str = "archive"

    #: Until when the newest timestamp proves the signatures; whether the only trouble is that it no
    #: longer does (an archive timestamp came too late: intact, not forged).
    protected_until: dt.datetime | None = None
    needs_timestamp: bool = False

    @classmethod
    def of(cls, version: DocumentVersion) -> StoredVerdict:
        return cls(
            version.verdict == GENUINE,
            list(version.verdict_problems or []),
            version.verified_at,
            protected_until=version.protected_until,
            needs_timestamp=version.verdict == NEEDS_TIMESTAMP,
        )

    @classmethod
    def of_report(cls, report: VerificationReport) -> StoredVerdict:
        return cls(
            report.genuine,
            [{"code": p.code, "message": p.message} for p in report.all_problems],
            report.checked_at,
            source="parsed",
            needs_timestamp=report.codes == {"NEEDS_ARCHIVE_TIMESTAMP"},
        )

    @property
    def codes(self) -> list[str]:
        return [p["code"] for p in self.problems]

    @property
    def messages(self) -> list[str]:
        return [p["message"] for p in self.problems]


class Receipt(StrEnum):
    CONFIRMED = "confirmed"
    WRONG_DIGITS = "wrong_digits"
    #: Too many wrong tries of late: the next one waits (the wait grows; a stranger's guesses never
    #: lock the family out for longer than a day).
    SLOWED = "slowed"
    NO_PHONE = "no_phone"
    NOT_OPEN = "not_open"


def receipt_wait(doc: Document, now: dt.datetime) -> dt.timedelta:
    """How long the next try of a guardian's receipt must wait: nothing for the first
    ``RECEIPT_TRIES`` wrong tries, then 1, 2, 4 … minutes after the last wrong one, at most a day."""
    if doc.receipt_failures < RECEIPT_TRIES or doc.receipt_failed_at is None:
        return dt.timedelta(0)
    step = min(doc.receipt_failures - RECEIPT_TRIES, 11)  # 2**11 minutes > a day
    wait = min(dt.timedelta(minutes=2**step), RECEIPT_WAIT_MAX)
    return max(doc.receipt_failed_at + wait - now, dt.timedelta(0))


def receipt_digest(phone: str | None) -> str | None:
    """What a notice's receipt is checked against: a salted hash of the last four digits of the
    guardian's phone (None when there is no usable number)."""
    digits = "".join(ch for ch in (phone or "") if ch.isdigit())
    if len(digits) < 4:
        return None
    salt = secrets.token_hex(8)
    return f"{salt}${hashlib.sha256((salt + digits[-4:]).encode()).hexdigest()}"


def receipt_matches(digest: str, typed: str) -> bool:
    digits = "".join(ch for ch in typed if ch.isdigit())
    salt, _, expected = digest.partition("$")
    actual = hashlib.sha256((salt + digits[-4:]).encode()).hexdigest() if len(digits) == 4 else ""
    return hmac.compare_digest(actual, expected)


class OpenCounter:
    """Scans of notices' pages counted in memory and added to the documents in one transaction
    every few seconds (``flush``), so a scan storm writes nothing per scan."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._counts: dict[int, tuple[int, dt.datetime]] = {}
        self._lock = threading.Lock()

    def hit(self, document_id: int, at: dt.datetime) -> None:
        with self._lock:
            n, first = self._counts.get(document_id, (0, at))
            self._counts[document_id] = (n + 1, min(first, at))

    def flush(self) -> int:
        with self._lock:
            counts, self._counts = self._counts, {}
        if not counts:
            return 0
        with self.db.session() as s:
            for document_id, (n, first) in sorted(counts.items()):
                s.execute(
                    update(Document)
                    .where(Document.id == document_id)
                    .values(
                        opened_count=Document.opened_count + n,
                        opened_at=func.coalesce(Document.opened_at, first),
                    )
                )
            s.commit()
        return sum(n for n, _ in counts.values())


@dataclass(frozen=True)
class Refreshed:
    """What the archive-timestamp job did with one document."""

    document_id: int
    #: ``timestamped``, ``protected`` (not due yet) or ``too_late``.
    outcome: str
    message: str


@dataclass(frozen=True)
class UploadCheck:
    sha256: str
    verdict: StoredVerdict
    #: The archived version with exactly these bytes, if any.
    version: DocumentVersion | None


@dataclass(frozen=True)
class SignedVersion:
    version: DocumentVersion
    pdf: bytes
    #: The time proven by the signature's timestamp.
    signed_at: dt.datetime


@dataclass(frozen=True)
class RecordAs:
    """How an issued document is recorded: who issued it, to whom, for which case, and what its
    guardian's receipt is checked against (``receipt_digest``)."""

    issuer: Unit | None
    subject: Unit | None = None
    case_id: int | None = None
    receipt_digest: str | None = None


def merge_file_columns(others: Mapping[str, Sequence[Any]] | None) -> dict[str, list[Any]]:
    """Every column that names an archived file, by store: the archive's own and ``others`` (the
    other domains', which the composition root knows)."""
    merged: dict[str, list[Any]] = {"documents": [DocumentVersion.sha256]}
    for store, columns in (others or {}).items():
        merged.setdefault(store, []).extend(c for c in columns if c not in merged[store])
    return merged


class Archive:
    """Issue-and-record, sign-and-record, journaled writes and their recovery."""

    def __init__(
        self,
        db: Database,
        engine: DocumentEngine,
        stores: Mapping[str, ArchiveStore],
        now: Callable[[], dt.datetime],
        temp_root: Path | None = None,
        opens: OpenCounter | None = None,
        file_columns: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        self.db = db
        #: Where requests journal the files they store (apart from their own transaction).
        self.requests = RequestJournal(db.engine)
        #: Every column that names an archived file, by store: recovery deletes only a file that none
        #: of them names. The archive knows its own; the composition root adds the other domains'.
        self.file_columns = merge_file_columns(file_columns)
        #: Scans of notices' pages, written in batches.
        self.opens = opens
        self.engine = engine
        self.stores = dict(stores)
        self.now = now
        #: Where temporary files of this process go (see ``service.workdir``).
        self.temp_root = temp_root

    @property
    def documents(self) -> ArchiveStore:
        return self.stores["documents"]

    # --- the journal --------------------------------------------------------------------------

    def _journal_request(self, session: Session, store: StoreName, keys: Sequence[str]) -> None:
        """Journal entries for files a request is about to store, committed apart from its
        transaction (which may already hold SQLite's write lock) and removed once it commits. Any
        number of files in one request, whatever it wrote before."""
        self.requests.forget_once_committed(session, self.requests.add(store, keys, self.now()))

    @staticmethod
    def _forget(session: Session, ids: Sequence[int]) -> None:
        """In the caller's transaction: the files are recorded, the journal entries go."""
        if ids:
            session.execute(delete(PendingWrite).where(PendingWrite.id.in_(list(ids))))

    def keep(self, session: Session, store: StoreName, data: bytes) -> str:
        """Store a file (a filed report, a case's evidence) so that the caller can record it."""
        self._journal_request(session, store, [sha256_hex(data)])
        return self.stores[store].put(data)

    def keep_file(self, session: Session, store: StoreName, path: Path, job_id: int | None = None) -> str:
        """Store a large file (a print PDF) streamed from disk, journaled in the caller's session
        for a job (committed by its next checkpoint) or apart for a request."""
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        key = digest.hexdigest()
        if job_id is None:
            self._journal_request(session, store, [key])
            return self.stores[store].put_file(path)
        # a job's own session: the entry commits now, the record with the job's next checkpoint
        row = PendingWrite(store=store, sha256=key, job_id=job_id, created_at=self.now())
        session.add(row)
        session.commit()
        stored = self.stores[store].put_file(path)
        self._forget(session, [row.id])
        return stored

    # --- issue and record ---------------------------------------------------------------------

    def issue(
        self,
        session: Session,
        request: IssueRequest,
        record_as: RecordAs,
        actor: Actor,
        action: str = "document.issue",
        appendix: Appendix | None = None,
        **audit: Any,
    ) -> tuple[Document, IssuedDocument]:
        """One document: issued, archived, recorded with its first version and an audit entry
        (``action``, with ``audit`` as detail). With an ``appendix`` (a case file), its pages follow
        the template's and its files are embedded before the issuer certifies the whole. Flushes;
        the caller commits."""

        def journal(keys: list[str]) -> None:
            self._journal_request(session, "documents", keys)

        if appendix is not None:
            issued = self.engine.issue_assembled(request, appendix, before_store=journal)
        else:
            issued = self.engine.issue(request, before_store=journal)
        doc = record_issued(
            session,
            issued,
            issuer=record_as.issuer,
            subject=record_as.subject,
            at=self.now(),
            case_id=record_as.case_id,
            receipt_digest=record_as.receipt_digest,
        )
        record(session, actor, action, "document", doc.id, self.now(), kind=issued.kind, sha256=issued.sha256, **audit)
        session.flush()
        return doc, issued

    def issue_batch(
        self,
        session: Session,
        items: Iterable[tuple[IssueRequest, RecordAs]],
        *,
        total: int,
        checkpoint: Callable[[], None],
        on_recorded: Callable[[list[tuple[IssuedDocument, Document]]], None],
        progress: Callable[[int], None] | None = None,
        job_id: int | None = None,
    ) -> int:
        """Many documents of one kind through the engine's merged conversion, in order, recorded
        ``COMMIT_EVERY`` at a time: ``on_recorded`` gets each group (the issued document, with its
        request and code, and its row) once its rows have ids, to add the caller's own rows; then
        ``checkpoint`` commits. Each group of signed documents is
        journaled and committed before it reaches the archive. Returns how many were issued."""
        record_as: dict[int, RecordAs] = {}
        journal: list[int] = []
        group: list[tuple[IssuedDocument, Document]] = []
        done = 0
        reported_at = 0.0

        def requests() -> Iterator[IssueRequest]:
            for request, how in items:
                record_as[id(request)] = how
                yield request

        def before_store(keys: list[str]) -> None:
            flush_group()  # what was recorded so far commits with this journal
            rows = [PendingWrite(store="documents", sha256=k, job_id=job_id, created_at=self.now()) for k in keys]
            session.add_all(rows)
            session.flush()
            checkpoint()
            journal.extend(r.id for r in rows)

        def flush_group() -> None:
            if not group:
                return
            session.flush()
            on_recorded(list(group))
            self._forget(session, journal[: len(group)])
            del journal[: len(group)]
            group.clear()
            checkpoint()
            report(force=True)

        def report(force: bool = False) -> None:
            # as documents come out of the engine (a chunk's conversion at a time), not only as
            # groups commit: a campaign of 12 (one group) showed 0 until the end
            nonlocal reported_at
            if progress is not None and (force or time.monotonic() - reported_at >= PROGRESS_EVERY_SECONDS):
                reported_at = time.monotonic()
                progress(done)

        def on_issued(issued: IssuedDocument) -> None:
            nonlocal done
            how = record_as.pop(id(issued.request))
            doc = record_issued(
                session,
                issued,
                issuer=how.issuer,
                subject=how.subject,
                case_id=how.case_id,
                receipt_digest=how.receipt_digest,
                at=self.now(),
                flush=False,
            )
            group.append((issued, doc))
            done += 1
            if len(group) >= COMMIT_EVERY:
                flush_group()
            else:
                report()

        self.engine.issue_stream(requests(), total=total, on_issued=on_issued, before_store=before_store)
        flush_group()
        return done

    # --- sign and record ----------------------------------------------------------------------

    def sign(
        self,
        session: Session,
        doc: Document,
        actor: Actor,
        *,
        key: str,
        name: str,
        unit: Unit | None = None,
        signature_png: bytes | None = None,
        seal_png: bytes | None = None,
        field_name: str | None = None,
        **audit: Any,
    ) -> SignedVersion:
        """A later signature on a document's current version: signed with the key ``key`` (the
        signer ``name``, a unit of the tree or not), archived, recorded as a new version with an
        audit entry (``document.sign``, with the time proven by the signature's timestamp).
        Flushes; the caller commits."""
        self.engine.pki.ensure_unit(key, name)

        def journal(keys: list[str]) -> None:
            self._journal_request(session, "documents", keys)

        signed, sha256 = self.engine.sign_as(
            self.documents.get(doc.current_sha256),
            unit_key=key,
            field_name=field_name,
            signature_image=signature_png,
            seal_image=seal_png,
            before_store=journal,
        )
        # the time the new signature's timestamp proves, read from it: the engine checked the
        # document before signing it, and what it just wrote is not validated again
        signed_at = last_signature_time(signed) or self.now()
        version = record_signed(session, doc, sha256=sha256, size=len(signed), signer=unit, at=self.now())
        record(
            session,
            actor,
            "document.sign",
            "document",
            doc.id,
            self.now(),
            unit=name,
            sha256=sha256,
            signed_at=signed_at.isoformat(),
            **audit,
        )
        return SignedVersion(version, signed, signed_at)

    def current(self, session: Session, pdf: bytes) -> Document | None:
        """The document whose current version is exactly these bytes, if any."""
        version = find_version_by_hash(session, sha256_hex(pdf))
        if version is None or version.document.current_sha256 != version.sha256:
            return None
        return version.document

    def revoke(self, session: Session, scope: Scope, doc: Document, reason: str) -> None:
        """The bureau withdraws a document: its verification page says so from now on."""
        scope.require(Role.BUREAU)
        reason = reason.strip()
        if not reason or len(reason) > 200:
            raise InvalidInput("请填写撤回原因（不超过200字）。")
        if doc.status == DocumentStatus.REVOKED:
            raise DocumentAlreadyRevoked()
        now = self.now()
        revoke(doc, reason, now)
        record(session, scope.actor, "document.revoke", "document", doc.id, now, reason=reason)

    # --- verification -------------------------------------------------------------------------

    def find(self, session: Session, code: str) -> Document | None:
        """The document a verification code opens (by the code's hash), or None."""
        return find_by_code(session, code)

    def current_version(self, session: Session, doc: Document) -> DocumentVersion:
        version = session.scalar(
            select(DocumentVersion).where(
                DocumentVersion.document_id == doc.id, DocumentVersion.sha256 == doc.current_sha256
            )
        )
        assert version is not None, "a document's current version is recorded with it"
        return version

    def check_version(self, session: Session, version: DocumentVersion, pdf: bytes | None = None) -> StoredVerdict:
        """Verify an archived version with the strict verifier and store the verdict on it, with
        how long its newest timestamp protects it."""
        try:
            data = pdf if pdf is not None else self.documents.get(version.sha256)
            report = self.engine.verify(data)
        except (ArchivedFileMissing, ArchiveCorrupt) as exc:  # the archive itself lost or changed it
            version.verdict, version.verdict_problems = NOT_GENUINE, [{"code": exc.code, "message": exc.message}]
        else:
            problems = [{"code": p.code, "message": p.message} for p in report.all_problems]
            codes = {p["code"] for p in problems}
            version.verdict = (
                GENUINE if report.genuine else NEEDS_TIMESTAMP if codes == {"NEEDS_ARCHIVE_TIMESTAMP"} else NOT_GENUINE
            )
            version.verdict_problems = problems
            with suppress(PdfInvalid):
                version.protected_until = archive_timestamp_due(data, now=self.now(), margin=dt.timedelta(0)).horizon
        version.verified_at = self.now()
        return StoredVerdict.of(version)

    def stored_verdict(self, session: Session, doc: Document) -> StoredVerdict | None:
        """What the public page says about a document's signatures: the stored verdict of its
        current version, or None while the background check (``archive.check_pending``) has not
        reached it (the minutes after it was issued). Reading never checks: a scan writes nothing."""
        version = self.current_version(session, doc)
        return StoredVerdict.of(version) if version.verdict is not None else None

    def verdict_now(self, session: Session, doc: Document) -> StoredVerdict:
        """The stored verdict of a document's current version, checking it now if the background
        check has not yet (an explicit request: the page's 立即核验 button, or an uploaded copy)."""
        version = self.current_version(session, doc)
        if version.verdict is None:
            return self.check_version(session, version)
        return StoredVerdict.of(version)

    def check_pending(self, session: Session, limit: int = 500) -> int:
        """The background check: verify versions that have no verdict yet; returns how many."""
        pending = session.scalars(
            select(DocumentVersion)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(DocumentVersion.verdict.is_(None), Document.status != DocumentStatus.ERASED)
            .order_by(DocumentVersion.id)
            .limit(limit)
        ).all()
        for version in pending:
            self.check_version(session, version)
        return len(pending)

    def recheck(self, session: Session, signer_unit_id: int | None = None, batch: int = 200) -> Iterator[int]:
        """Verify archived versions again (after a revocation, a change of trust anchors, or on a
        schedule): the current versions, or those a unit signed or issued; yields how many so far
        after each batch so the job can commit."""
        query = select(DocumentVersion).join(Document, Document.id == DocumentVersion.document_id)
        query = query.where(DocumentVersion.sha256 == Document.current_sha256, Document.status != DocumentStatus.ERASED)
        if signer_unit_id is not None:
            query = query.where(
                or_(Document.issuer_unit_id == signer_unit_id, Document.subject_unit_id == signer_unit_id)
            )
        done, after = 0, 0
        while True:
            rows = session.scalars(
                query.where(DocumentVersion.id > after).order_by(DocumentVersion.id).limit(batch)
            ).all()
            if not rows:
                return
            for version in rows:
                self.check_version(session, version)
            done += len(rows)
            after = rows[-1].id
            yield done

    # --- long-term validity -------------------------------------------------------------------

    def refresh_timestamps(
        self, session: Session, margin: dt.timedelta, *, job_id: int | None = None, checkpoint: Callable[[], None]
    ) -> Iterator[Refreshed]:
        """Add an archive timestamp (PAdES B-LTA: a document timestamp over the whole file with the
        current CRLs and CA certificates in its DSS) to every archived document whose newest
        timestamp stops protecting it within ``margin``, as a new archived version (write-once;
        the document, its code and its QR code stay the same), verified again. Yields each document
        handled; ``checkpoint`` commits after each."""
        horizon = self.now() + margin
        last = session.scalar(select(func.max(DocumentVersion.id))) or 0  # the versions a stamp adds are not revisited
        reach = self._tsa_horizon()
        if reach <= horizon:  # nothing this TSA stamps would last: the PKI must roll it over first
            record(
                session,
                SYSTEM,
                "archive.timestamp_waits",
                "pki",
                "tsa",
                self.now(),
                reason=f"当前时间戳证书只能保护到 {reach:%Y-%m-%d}，存档时间戳须等更换时间戳或签发中心证书后再加盖。",
            )
            return
        query = (
            select(DocumentVersion)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(
                DocumentVersion.sha256 == Document.current_sha256,
                Document.status != DocumentStatus.ERASED,  # its files went with its retention
                or_(DocumentVersion.protected_until.is_(None), DocumentVersion.protected_until <= horizon),
            )
            .order_by(DocumentVersion.id)
        )
        after = 0
        while batch := session.scalars(
            query.where(DocumentVersion.id > after, DocumentVersion.id <= last).limit(100)
        ).all():
            after = batch[-1].id
            for version in batch:
                refreshed = self._refresh_one(session, version, margin, reach, job_id)
                checkpoint()  # before the caller reports progress from another session
                yield refreshed

    def _tsa_horizon(self) -> dt.datetime:
        """Until when a timestamp the current TSA signs now would protect a document."""
        pki = self.engine.pki
        cert = pki.tsa()[0]
        return timestamp_horizon(
            cert.public_bytes(serialization.Encoding.DER),
            [c.public_bytes(serialization.Encoding.DER) for c in pki.chain_for(cert)],
        )

    def _refresh_one(
        self,
        session: Session,
        version: DocumentVersion,
        margin: dt.timedelta,
        reach: dt.datetime,
        job_id: int | None,
    ) -> Refreshed:
        doc = version.document
        pdf = self.documents.get(version.sha256)
        due = archive_timestamp_due(pdf, now=self.now(), margin=margin)
        if not due.due:
            version.protected_until = due.horizon
            return Refreshed(doc.id, "protected", due.message)
        if due.horizon is not None and due.reason != TOO_LATE and reach <= due.horizon:
            # the current TSA would not protect it any longer than its newest stamp does
            return Refreshed(doc.id, "waiting", f"当前时间戳证书只能保护到 {reach:%Y-%m-%d}。")
        if due.reason == TOO_LATE:  # nothing proves the signing time any more: only a reissue helps
            record(session, SYSTEM, "document.timestamp_too_late", "document", doc.id, self.now(), reason=due.message)
            version.protected_until = self.now() + dt.timedelta(days=30)  # look again in a month, not daily
            return Refreshed(doc.id, "too_late", due.message)
        pki = self.engine.pki
        stamped = self.engine.signing.document_timestamp(
            pdf,
            crls=[c.public_bytes(serialization.Encoding.DER) for c in pki.crls()],
            certs=[
                c.public_bytes(serialization.Encoding.DER)
                for c in (pki.root_certificate(), *pki.issuing_certificates(), *pki.tsa_certificates())
            ],
        )
        key = sha256_hex(stamped)
        row = PendingWrite(store="documents", sha256=key, job_id=job_id, created_at=self.now())
        session.add(row)
        session.commit()  # the journal entry is durable before the file is written
        self.documents.put(stamped)
        new = record_signed(
            session, doc, sha256=key, size=len(stamped), signer=None, at=self.now(), event="timestamped"
        )
        self._forget(session, [row.id])
        stored = self.check_version(session, new, stamped)
        record(
            session,
            SYSTEM,
            "document.timestamp",
            "document",
            doc.id,
            self.now(),
            sha256=key,
            reason=due.reason,
            protected_until=new.protected_until.isoformat() if new.protected_until else None,
            genuine=stored.genuine,
        )
        return Refreshed(doc.id, "timestamped", due.message)

    def opened(self, doc: Document) -> None:
        """A guardian's browser showed a notice's verification page: counted in memory and written
        to the database in batches (never a transaction per scan)."""
        if doc.kind in GUARDIAN_NOTICES and self.opens is not None:
            self.opens.hit(doc.id, self.now())

    def confirm_receipt(self, session: Session, doc: Document, digits: str, client: str | None) -> Receipt:
        """A guardian confirms 已阅知 by typing the last four digits of the phone number the school
        recorded for them; a few wrong tries lock the receipt. Audited with how it was confirmed."""
        if doc.kind not in GUARDIAN_NOTICES or doc.status != DocumentStatus.VALID:
            return Receipt.NOT_OPEN
        if doc.confirmed_at is not None:
            return Receipt.CONFIRMED
        if doc.receipt_digest is None:
            return Receipt.NO_PHONE
        now = self.now()
        if receipt_wait(doc, now):
            return Receipt.SLOWED
        if not receipt_matches(doc.receipt_digest, digits):
            # one statement: tries at the same moment from many clients are each counted
            session.execute(
                update(Document)
                .where(Document.id == doc.id)
                .values(receipt_failures=Document.receipt_failures + 1, receipt_failed_at=now)
            )
            session.refresh(doc, ["receipt_failures", "receipt_failed_at"])
            return Receipt.SLOWED if receipt_wait(doc, now) else Receipt.WRONG_DIGITS
        doc.confirmed_at = now
        doc.confirmed_via = "phone_digits"
        record(
            session,
            Actor(None, "监护人（验真页面）", None, client),
            "notice.confirm",
            "document",
            doc.id,
            doc.confirmed_at,
            via="phone_digits",
        )
        return Receipt.CONFIRMED

    def check_upload(self, session: Session, data: bytes, verifier: UploadVerifier) -> UploadCheck:
        """An uploaded PDF. One of ours (an archived version, by its hash) is answered from its
        stored verdict without parsing it; any other file is parsed under hard limits in a separate
        process that is killed past them."""
        digest = sha256_hex(data)
        version = find_version_by_hash(session, digest)
        if version is not None:
            stored = StoredVerdict.of(version) if version.verdict is not None else self.check_version(session, version)
            return UploadCheck(digest, stored, version)
        report = self.engine.verify_untrusted(data, verifier)
        return UploadCheck(digest, StoredVerdict.of_report(report), None)

    # --- recovery -----------------------------------------------------------------------------

    def sweep(self, session: Session, now: dt.datetime | None = None) -> int:
        """Delete archived files that a crash left with no row pointing to them: journal entries of
        jobs that are no longer alive, and of requests older than ``REQUEST_GRACE``. Returns how
        many files were deleted. The caller commits."""
        wall = wall_now()
        now = now or self.now()
        live_jobs = select(Job.id).where(Job.status == "running", Job.lease_expires_at >= wall)
        stale = session.scalars(
            select(PendingWrite).where(or_(PendingWrite.job_id.is_(None), PendingWrite.job_id.not_in(live_jobs)))
        ).all()
        deleted = _drop(
            session,
            self.stores,
            self.file_columns,
            [r for r in stale if r.job_id is not None or r.created_at <= now - REQUEST_GRACE],
        )
        if self.requests.apart:  # the request entries kept in their own file (SQLite)
            entries = self.requests.entries(older_than=now - REQUEST_GRACE)
            deleted += _drop_entries(session, self.stores, self.file_columns, entries)
            self.requests.forget([e.id for e in entries])
        return deleted

    def sweep_job(self, session: Session, job_id: int) -> int:
        """Before a job resumes after its previous run died: delete what that run archived without
        recording it (the rerun issues those documents again, with new signatures)."""
        return _drop(
            session,
            self.stores,
            self.file_columns,
            session.scalars(select(PendingWrite).where(PendingWrite.job_id == job_id)),
        )


def _drop_entries(
    session: Session,
    stores: Mapping[str, ArchiveStore],
    file_columns: Mapping[str, Sequence[Any]],
    entries: list[Entry],
) -> int:
    """Delete the files of request journal entries that no committed row names."""
    deleted = 0
    for entry in entries:
        if not referenced(session, file_columns.get(entry.store, ()), entry.sha256):
            stores[entry.store].delete(entry.sha256)
            deleted += 1
    return deleted


def _drop(
    session: Session,
    stores: Mapping[str, ArchiveStore],
    file_columns: Mapping[str, Sequence[Any]],
    rows: Iterable[PendingWrite],
) -> int:
    deleted = 0
    for row in rows:
        if not referenced(session, file_columns.get(row.store, ()), row.sha256):
            stores[row.store].delete(row.sha256)
            deleted += 1
        session.delete(row)
    session.flush()
    return deleted


def referenced(session: Session, columns: Sequence[Any], sha256: str) -> bool:
    """Whether any committed row points to this file."""
    return any(session.scalar(select(exists().where(c == sha256))) for c in columns)
