from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, utcnow
from service.db.sealed import Sealed, SealedRow
from service.units.models import Unit


class DocumentStatus(StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"
    #: Removed when its record's retention ended (or at a guardian's request): the PDF and its
    #: versions are gone, the row says what it was and when it went.
    ERASED = "erased"


STATUS_TITLES = {
    DocumentStatus.VALID: "有效",
    DocumentStatus.REVOKED: "已撤回",
    DocumentStatus.SUPERSEDED: "已被替代",
    DocumentStatus.ERASED: "已按期删除",
}


class Document(SealedRow, Base):
    """An issued document. Its verification code is kept only as a SHA-256: a copy of the database
    does not give away the codes that open verification pages. Its fields (what was filled in,
    names and 身份证号 included) are sealed whole; ``public`` is masked and stays readable."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The issuing unit; None for a document issued from the command line by a unit not (yet) in
    #: the unit tree (its name is in ``public``).
    issuer_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    #: The unit the document is addressed to (a school for its pledge); None for guardian notices.
    subject_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    fields = Sealed[dict[str, Any]](json=True)
    fields_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: What the public verification page may show (already masked).
    public: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.VALID)
    revoked_at: Mapped[dt.datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    current_sha256: Mapped[str] = mapped_column(String(64))
    pages: Mapped[int] = mapped_column(default=1)
    #: The dropout case a notice or 一生一表 belongs to.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    #: A guardian's receipt: when the verification page was first opened, how often, and when
    #: 已阅知 was confirmed there.
    opened_at: Mapped[dt.datetime | None]
    opened_count: Mapped[int] = mapped_column(default=0, server_default="0")
    confirmed_at: Mapped[dt.datetime | None]
    #: How 已阅知 was confirmed (``phone_digits``: the guardian typed the end of the phone number
    #: the school recorded).
    confirmed_via: Mapped[str | None] = mapped_column(String(32))
    #: ``salt$sha256(salt + last four digits of the guardian's phone)``: what a receipt is checked
    #: against, without keeping the number on the document; None when no phone was recorded.
    receipt_digest: Mapped[str | None] = mapped_column(String(96))
    #: Wrong digits typed for this notice's receipt; past a few, the receipt is locked.
    receipt_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    #: The last wrong try: past the free tries, each next one waits longer (never a lock).
    receipt_failed_at: Mapped[dt.datetime | None]

    issuer: Mapped[Unit | None] = relationship(foreign_keys=[issuer_unit_id], lazy="joined")
    subject: Mapped[Unit | None] = relationship(foreign_keys=[subject_unit_id], lazy="joined")


class DocumentVersion(Base):
    """Every signed state of a document, in order: as issued, then after each later signature."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "number", name="uq_document_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    number: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: "issued" or "signed"
    event: Mapped[str] = mapped_column(String(16))
    signer_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    #: The stored verdict on these bytes (``genuine``, ``not_genuine``), what was wrong, and when it
    #: was reached: the public page reads it instead of parsing the PDF at every scan. None until
    #: the background check (or the first scan) has run.
    verdict: Mapped[str | None] = mapped_column(String(32))
    verdict_problems: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    verified_at: Mapped[dt.datetime | None]
    #: Until when the newest timestamp in these bytes proves the signatures (its TSA's chain or its
    #: algorithms give out then): the scheduled archive timestamps act before it.
    protected_until: Mapped[dt.datetime | None] = mapped_column(index=True)

    document: Mapped[Document] = relationship(lazy="joined")


class PendingWrite(Base):
    """A file being written to the archive whose row is not committed yet (a journal of writes in
    flight). Written and committed before the file, removed in the transaction that records the
    file. What is left after a crash names the files that no row points to: recovery deletes them."""

    __tablename__ = "archive_pending"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The store: documents, reports or files.
    store: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: The job writing it (its lease says whether it is still alive); None for a request.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
