"""The units' reads: every list and lookup of a user goes through :func:`visible_to`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.db.scoping import Sees, valid_id
from service.units.models import Unit, UnitType


def visible_to(scope: Sees) -> Select[tuple[Unit]]:
    """The units a user sees: a bureau its tree, an office itself and its schools, a school itself."""
    return select(Unit).where(Unit.id.in_(scope.units))


def get(session: Session, scope: Sees, unit_id: int) -> Unit | None:
    return session.scalar(visible_to(scope).where(Unit.id == unit_id)) if valid_id(unit_id) else None


def listed(session: Session, scope: Sees) -> Sequence[Unit]:
    """The units a user sees, the top one first."""
    return session.scalars(visible_to(scope).order_by(Unit.parent_id.is_not(None), Unit.id)).all()


def schools(session: Session, scope: Sees, parent_id: int | None = None) -> Sequence[Unit]:
    """The schools a user sees (those directly under ``parent_id`` if given)."""
    query = visible_to(scope).where(Unit.type == UnitType.SCHOOL)
    if parent_id is not None:
        query = query.where(Unit.parent_id == parent_id)
    return session.scalars(query.order_by(Unit.id)).all()


# --- the command line's operator, who acts for the machine before choosing a unit ----------------


def by_code(session: Session, code: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.code == code))


def by_name(session: Session, name: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.name == name))


def by_cert_key(session: Session, key: str) -> Unit | None:
    return next((u for u in session.scalars(select(Unit).order_by(Unit.id)) if u.cert_key == key), None)
