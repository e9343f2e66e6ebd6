"""Rosters: a sheet of students and guardians imported once, its notices issued as one batch,
and each school's print file. The tables keep the names they had under ``cases``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, utcnow
from service.db.sealed import Sealed, SealedRow
from service.units.models import Unit

#: The notices a roster issues in bulk.
ROSTER_KINDS = ("enrollment_notice", "return_notice")


class Roster(Base):
    """An imported sheet of students and guardians, issued as one batch of notices."""

    __tablename__ = "rosters"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The unit that issues the notices (a school, or the bureau for a district-wide roster).
    issuer_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: enrollment_notice, return_notice or deadline_return_notice
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(128))
    report_by: Mapped[dt.date]
    issue_date: Mapped[dt.date]
    rows: Mapped[int]
    skipped: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[dt.datetime | None]
    #: When its entries' personal data, notices and print files were removed (retention).
    erased_at: Mapped[dt.datetime | None]

    issuer: Mapped[Unit] = relationship(lazy="joined")


class RosterEntry(SealedRow, Base):
    """One notice to issue. Its verification code is reserved at import, so a batch that is killed
    and run again issues the same code, never a second one. Its fields (the notice's names, 身份证号
    and the like) are sealed whole."""

    __tablename__ = "roster_entries"
    __table_args__ = (UniqueConstraint("roster_id", "row", name="uq_roster_entry_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    roster_id: Mapped[int] = mapped_column(ForeignKey("rosters.id"), index=True)
    row: Mapped[int]
    school_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: Sort key for the print copy: grade, class, row.
    class_order: Mapped[str] = mapped_column(String(40))
    #: 年级班级 as the sheet gave it (an enrollment notice does not print it; the receipts ledger does).
    grade_class: Mapped[str | None] = mapped_column(String(30))
    fields = Sealed[dict[str, Any]](json=True)
    fields_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The reserved verification code until the notice is issued, then its SHA-256 (``code_hash``).
    code: Mapped[str] = mapped_column(String(64), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), index=True)
    #: What the notice's receipt is checked against (see ``Document.receipt_digest``), made at import
    #: from the guardian's phone so the phone itself is not kept on the entry.
    receipt_digest: Mapped[str | None] = mapped_column(String(96))


class PrintBundle(Base):
    """One school's notices of a roster merged in class order, for the print room."""

    __tablename__ = "print_bundles"
    __table_args__ = (UniqueConstraint("roster_id", "school_id", name="uq_print_bundle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    roster_id: Mapped[int] = mapped_column(ForeignKey("rosters.id"), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    notices: Mapped[int]
    pages: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    school: Mapped[Unit] = relationship(lazy="joined")
