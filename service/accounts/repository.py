"""The accounts' reads: one ``visible_to`` each for accounts, API tokens and delegations, which
every list and lookup of a user goes through."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, false, or_, select
from sqlalchemy.orm import Session

from service.accounts.models import ADMIN_ROLES, ApiToken, Delegation, Role, User
from service.accounts.scope import Scope
from service.db.scoping import valid_id
from service.units.models import Unit


def _own_user_id(scope: Scope) -> int:
    return scope.user.id if scope.user is not None else 0


def visible_to(scope: Scope) -> Select[tuple[User]]:
    """Oneself; for bureau and office staff the accounts of their units; for the three
    administrators the accounts of the units they manage (the district)."""
    units = set(scope.units) if scope.has(Role.BUREAU, Role.OFFICE) else set()
    units |= scope.manages
    others = User.unit_id.in_(units) if units else false()
    return select(User).where(or_(User.id == _own_user_id(scope), others))


def get_user(session: Session, scope: Scope, user_id: int) -> User | None:
    return session.scalar(visible_to(scope).where(User.id == user_id)) if valid_id(user_id) else None


def users(session: Session, scope: Scope) -> Sequence[User]:
    return session.scalars(visible_to(scope).order_by(User.id)).all()


def managed_unit(session: Session, scope: Scope, unit_id: int) -> Unit | None:
    """A unit whose accounts the user administers (the system administrator, the operator)."""
    if not valid_id(unit_id) or not scope.manages:
        return None
    return session.scalar(select(Unit).where(Unit.id == unit_id, Unit.id.in_(scope.manages)))


def matching_ids(session: Session, scope: Scope, text: str, limit: int = 200) -> list[int]:
    """The ids of the accounts the user sees whose username or name holds ``text``."""
    text = text.strip()
    if not text:
        return []
    query = visible_to(scope).where(
        or_(User.username.contains(text, autoescape=True), User.display_name.contains(text, autoescape=True))
    )
    return list(session.scalars(query.with_only_columns(User.id).order_by(User.id).limit(limit)))


def delegate_candidate(session: Session, scope: Scope, unit: Unit, user_id: int) -> User | None:
    """An account ``unit`` may delegate signing to: one of the user's units or of the units above ``unit``."""
    above = []
    node = unit
    while node.parent is not None:
        node = node.parent
        above.append(node.id)
    if not valid_id(user_id):
        return None
    # never an administrator: they sign nothing, not even by a delegation
    admins = [r.value for r in ADMIN_ROLES]
    query = select(User).where(User.id == user_id, User.unit_id.in_([*scope.units, *above]), User.role.not_in(admins))
    return session.scalar(query)


def tokens_visible_to(scope: Scope) -> Select[tuple[ApiToken]]:
    """One's own API tokens; the security administrator also those of the district's accounts."""
    others = (
        ApiToken.user_id.in_(select(User.id).where(User.unit_id.in_(scope.manages)))
        if scope.manages and scope.has(Role.SECURITY_ADMIN)
        else false()
    )
    return select(ApiToken).where(or_(ApiToken.user_id == _own_user_id(scope), others))


def get_token(session: Session, scope: Scope, token_id: int) -> ApiToken | None:
    return session.scalar(tokens_visible_to(scope).where(ApiToken.id == token_id)) if valid_id(token_id) else None


def own_tokens(session: Session, scope: Scope) -> Sequence[ApiToken]:
    query = tokens_visible_to(scope).where(ApiToken.user_id == _own_user_id(scope))
    return session.scalars(query.order_by(ApiToken.id)).all()


def delegations_visible_to(scope: Scope) -> Select[tuple[Delegation]]:
    """The delegations of the user's units, and those made to the user."""
    return select(Delegation).where(or_(Delegation.unit_id.in_(scope.units), Delegation.user_id == _own_user_id(scope)))


def get_delegation(session: Session, scope: Scope, delegation_id: int) -> Delegation | None:
    if not valid_id(delegation_id):
        return None
    return session.scalar(delegations_visible_to(scope).where(Delegation.id == delegation_id))


def delegations_of(session: Session, scope: Scope, unit: Unit) -> Sequence[Delegation]:
    query = delegations_visible_to(scope).where(Delegation.unit_id == unit.id)
    return session.scalars(query.order_by(Delegation.id.desc())).all()


# --- the command line's operator ------------------------------------------------------------------


def by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))
