"""The rosters' reads: a user sees the rosters their units issued (:func:`visible_to`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.db.scoping import valid_id
from service.rosters.models import PrintBundle, Roster, RosterEntry


def visible_to(scope: Scope) -> Select[tuple[Roster]]:
    return select(Roster).where(Roster.issuer_id.in_(scope.units))


def get(session: Session, scope: Scope, roster_id: int) -> Roster | None:
    return session.scalar(visible_to(scope).where(Roster.id == roster_id)) if valid_id(roster_id) else None


def rosters(session: Session, scope: Scope) -> Sequence[Roster]:
    return session.scalars(visible_to(scope).order_by(Roster.id.desc())).all()


def print_bundles(session: Session, scope: Scope, roster: Roster) -> Sequence[PrintBundle]:
    """The print files of a roster the user sees, one per school."""
    visible = visible_to(scope).where(Roster.id == roster.id).with_only_columns(Roster.id)
    query = select(PrintBundle).where(PrintBundle.roster_id.in_(visible)).order_by(PrintBundle.id)
    return session.scalars(query).all()


def print_bundle_by_hash(session: Session, sha256: str) -> PrintBundle | None:
    """A print file by its SHA-256, for the public verification page (which reads by hash, as it
    does archived versions): it names no school and no child, only that the file is a print bundle."""
    return session.scalars(select(PrintBundle).where(PrintBundle.sha256 == sha256).limit(1)).first()


def issued_count(session: Session, scope: Scope, roster: Roster) -> int:
    """How many of a roster's notices are issued."""
    visible = visible_to(scope).where(Roster.id == roster.id).with_only_columns(Roster.id)
    query = (
        select(func.count())
        .select_from(RosterEntry)
        .where(RosterEntry.roster_id.in_(visible), RosterEntry.document_id.is_not(None))
    )
    return int(session.scalar(query) or 0)


# --- the command line's operator, who names a roster before acting for its issuer ----------------


def by_id(session: Session, roster_id: int) -> Roster | None:
    return session.get(Roster, roster_id) if valid_id(roster_id) else None
