"""The archive's use cases: issue-and-record and sign-and-record (the one path from a request to an
archived, recorded document), journaled writes and their recovery, lookups, revocation, bundles.

The signed bytes live in the archive store (content-addressed, written first); the rows here say
what they are. Every write is journaled (:class:`~service.archive.models.PendingWrite`) before it
reaches the store, and the journal entry is removed in the transaction that records the file, so a
crash between the two leaves an entry that recovery uses to delete the file no row points to.
A verification code is looked up by its SHA-256 only.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.archive.models import Document, DocumentStatus, DocumentVersion, PendingWrite
from service.archive.store import ArchiveStore, StoreName, sha256_hex
from service.audit.service import Actor, record
from service.db.session import has_writes
from service.documents.codes import normalize_code
from service.documents.registry import GUARDIAN_NOTICES, get_kind
from service.errors import DocsignError, InvalidInput
from service.jobs.models import Job
from service.jobs.runner import wall_now
from service.units.models import Unit


class TransactionNotFresh(DocsignError):
    """A programming error: a document was archived in a transaction that had already written."""

    code = "TRANSACTION_NOT_FRESH"
    http_status = 500
    default_message = "归档文书须在新的事务中进行：请先提交此前的修改。"


class DocumentAlreadyRevoked(InvalidInput):
    code = "CAMPAIGN_NOT_READY"
    http_status = 409
    default_message = "该文书已经撤回。"


if TYPE_CHECKING:
    from service.accounts.scope import Scope
    from service.db.session import Database
    from service.documents.pipeline import DocumentEngine, IssuedDocument, IssueRequest
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
    session: Session, doc: Document, *, sha256: str, size: int, signer: Unit | None, at: dt.datetime
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
        event="signed",
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


def write_bundle(out: IO[bytes], store: ArchiveStore, entries: Iterable[BundleEntry], title: str) -> int:
    """A zip of signed PDFs with manifest.json and manifest.csv (path, SHA-256 and what each file is)."""
    rows = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            size = 0
            with zf.open(e.path, "w") as member:
                for block in store.stream(e.sha256):  # re-checks each file against its hash
                    member.write(block)
                    size += len(block)
            rows.append({"path": e.path, "sha256": e.sha256, "bytes": size, **e.meta})
        manifest = {"title": title, "generated_at": dt.datetime.now(dt.UTC).isoformat(), "files": rows}
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
        zf.writestr("manifest.csv", "\ufeff" + buf.getvalue())
    return len(rows)


def safe_filename(name: str) -> str:
    bad = '\\/:*?"<>|\0'
    clean = "".join("_" if c in bad or ord(c) < 32 else c for c in name).strip()
    return "_" if clean in ("", ".", "..") else clean


def bundle_path(*parts: str) -> str:
    return str(Path(*[safe_filename(p) for p in parts]))


#: Documents recorded per commit in a batch: a crash re-issues at most one conversion chunk, with
#: the same codes, and the journal removes what it had written.
COMMIT_EVERY = 25
#: A request's journal entry older than this belongs to a request that died before committing.
REQUEST_GRACE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class UploadCheck:
    sha256: str
    report: VerificationReport
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
    """How an issued document is recorded: who issued it, to whom, for which case."""

    issuer: Unit | None
    subject: Unit | None = None
    case_id: int | None = None


class Archive:
    """Issue-and-record, sign-and-record, journaled writes and their recovery."""

    def __init__(
        self,
        db: Database,
        engine: DocumentEngine,
        stores: Mapping[str, ArchiveStore],
        now: Callable[[], dt.datetime],
        temp_root: Path | None = None,
    ) -> None:
        self.db = db
        self.engine = engine
        self.stores = dict(stores)
        self.now = now
        #: Where temporary files of this process go (see ``service.workdir``).
        self.temp_root = temp_root

    @property
    def documents(self) -> ArchiveStore:
        return self.stores["documents"]

    # --- the journal --------------------------------------------------------------------------

    def _journal_apart(self, session: Session, store: StoreName, keys: Sequence[str]) -> list[int]:
        """Journal entries written and committed in a transaction of their own (a request path:
        the caller's transaction commits the record later). The caller's transaction must not have
        written yet: on SQLite it would hold the one write lock the journal needs."""
        if has_writes(session):
            raise TransactionNotFresh()
        with self.db.session() as s:
            rows = [PendingWrite(store=store, sha256=k, created_at=self.now()) for k in keys]
            s.add_all(rows)
            s.commit()
            return [r.id for r in rows]

    @staticmethod
    def _forget(session: Session, ids: Sequence[int]) -> None:
        """In the caller's transaction: the files are recorded, the journal entries go."""
        if ids:
            session.execute(delete(PendingWrite).where(PendingWrite.id.in_(list(ids))))

    def keep(self, session: Session, store: StoreName, data: bytes) -> str:
        """Store a file (a filed report, a case's evidence) so that the caller can record it."""
        ids = self._journal_apart(session, store, [sha256_hex(data)])
        digest = self.stores[store].put(data)
        self._forget(session, ids)
        return digest

    def keep_file(self, session: Session, store: StoreName, path: Path, job_id: int | None = None) -> str:
        """Store a large file (a print PDF) streamed from disk, journaled in the caller's session
        for a job (committed by its next checkpoint) or apart for a request."""
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        key = digest.hexdigest()
        if job_id is None:
            ids = self._journal_apart(session, store, [key])
        else:  # a job's own session: the entry commits now, the record with the job's next checkpoint
            row = PendingWrite(store=store, sha256=key, job_id=job_id, created_at=self.now())
            session.add(row)
            session.commit()
            ids = [row.id]
        stored = self.stores[store].put_file(path)
        self._forget(session, ids)
        return stored

    # --- issue and record ---------------------------------------------------------------------

    def issue(
        self,
        session: Session,
        request: IssueRequest,
        record_as: RecordAs,
        actor: Actor,
        action: str = "document.issue",
        **audit: Any,
    ) -> tuple[Document, IssuedDocument]:
        """One document: issued, archived, recorded with its first version and an audit entry
        (``action``, with ``audit`` as detail). Flushes; the caller commits."""
        ids: list[int] = []

        def journal(keys: list[str]) -> None:
            ids.extend(self._journal_apart(session, "documents", keys))

        issued = self.engine.issue(request, before_store=journal)
        doc = record_issued(
            session,
            issued,
            issuer=record_as.issuer,
            subject=record_as.subject,
            at=self.now(),
            case_id=record_as.case_id,
        )
        self._forget(session, ids)
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
            if progress is not None:
                progress(done)

        def on_issued(issued: IssuedDocument) -> None:
            nonlocal done
            how = record_as.pop(id(issued.request))
            doc = record_issued(
                session, issued, issuer=how.issuer, subject=how.subject, case_id=how.case_id, at=self.now(), flush=False
            )
            group.append((issued, doc))
            done += 1
            if len(group) >= COMMIT_EVERY:
                flush_group()

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
        ids: list[int] = []

        def journal(keys: list[str]) -> None:
            ids.extend(self._journal_apart(session, "documents", keys))

        signed, sha256 = self.engine.sign_as(
            self.documents.get(doc.current_sha256),
            unit_key=key,
            field_name=field_name,
            signature_image=signature_png,
            seal_image=seal_png,
            before_store=journal,
        )
        report = self.engine.verify(signed)
        signed_at = report.signatures[-1].signing_time or self.now()
        version = record_signed(session, doc, sha256=sha256, size=len(signed), signer=unit, at=self.now())
        self._forget(session, ids)
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

    def verdict(self, doc: Document) -> VerificationReport:
        """The signatures of the document's current version, checked."""
        return self.engine.verify(self.documents.get(doc.current_sha256))

    def opened(self, session: Session, doc: Document) -> None:
        """A guardian opened a notice's verification page: the school sees that it reached home."""
        if doc.kind in GUARDIAN_NOTICES:
            doc.opened_count += 1
            if doc.opened_at is None:
                doc.opened_at = self.now()

    def confirm_receipt(self, session: Session, doc: Document, client: str | None) -> bool:
        """A guardian confirms 已阅知 on the verification page; True when the receipt is (now) given."""
        if doc.kind not in GUARDIAN_NOTICES or doc.status != DocumentStatus.VALID:
            return False
        if doc.confirmed_at is None:
            doc.confirmed_at = self.now()
            record(
                session,
                Actor(None, "监护人（验真页面）", None, client),
                "notice.confirm",
                "document",
                doc.id,
                doc.confirmed_at,
            )
        return True

    def check_upload(self, session: Session, data: bytes) -> UploadCheck:
        """An uploaded PDF: its signatures checked and its hash looked up among archived versions."""
        report = self.engine.verify(data)
        return UploadCheck(sha256_hex(data), report, find_version_by_hash(session, sha256_hex(data)))

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
        return _drop(
            session,
            self.stores,
            [r for r in stale if r.job_id is not None or r.created_at <= now - REQUEST_GRACE],
        )

    def sweep_job(self, session: Session, job_id: int) -> int:
        """Before a job resumes after its previous run died: delete what that run archived without
        recording it (the rerun issues those documents again, with new signatures)."""
        return _drop(session, self.stores, session.scalars(select(PendingWrite).where(PendingWrite.job_id == job_id)))


def _drop(session: Session, stores: Mapping[str, ArchiveStore], rows: Iterable[PendingWrite]) -> int:
    deleted = 0
    for row in rows:
        if not referenced(session, row.store, row.sha256):
            stores[row.store].delete(row.sha256)
            deleted += 1
        session.delete(row)
    session.flush()
    return deleted


def referenced(session: Session, store: str, sha256: str) -> bool:
    """Whether any committed row points to this file."""
    from service.campaigns.models import Assignment
    from service.cases.models import CaseFile, PrintBundle

    columns: dict[str, list[Any]] = {
        "documents": [DocumentVersion.sha256, PrintBundle.sha256],
        "reports": [Assignment.report_sha256],
        "files": [CaseFile.sha256],
    }
    return any(session.scalar(select(exists().where(c == sha256))) for c in columns.get(store, []))
