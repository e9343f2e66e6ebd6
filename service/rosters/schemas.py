"""A roster as the API returns it and the pages show it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.archive.models import Document
from service.documents.registry import get_kind
from service.rosters.models import PrintBundle, Roster, RosterEntry


def roster_view(session: Session, roster: Roster) -> dict[str, Any]:
    """A roster with how many of its notices were issued, opened and confirmed, and its print files."""
    entries = session.execute(
        select(RosterEntry.document_id, Document.opened_at, Document.confirmed_at)
        .outerjoin(Document, Document.id == RosterEntry.document_id)
        .where(RosterEntry.roster_id == roster.id)
    ).all()
    bundles = session.scalars(select(PrintBundle).where(PrintBundle.roster_id == roster.id))
    return {
        "id": roster.id,
        "kind": roster.kind,
        "title": get_kind(roster.kind).title,
        "filename": roster.filename,
        "issuer": roster.issuer.name,
        "report_by": roster.report_by,
        "rows": roster.rows,
        "skipped": roster.skipped,
        "issued": sum(1 for e in entries if e.document_id),
        "opened": sum(1 for e in entries if e.opened_at),
        "confirmed": sum(1 for e in entries if e.confirmed_at),
        "print": [
            {
                "school_id": b.school_id,
                "school": b.school.name,
                "notices": b.notices,
                "pages": b.pages,
                "sha256": b.sha256,
            }
            for b in bundles
        ],
    }
