"""Who is acting: a signed-in user (or the command-line operator), the units they may see, and how
they appear in the audit log. Every use case that acts for someone takes a :class:`Scope`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.accounts.errors import Forbidden
from service.accounts.models import Role, User
from service.audit.service import Actor
from service.units.models import Unit, UnitType
from service.units.service import visible_unit_ids


@dataclass
class Scope:
    """``user`` is None for the operator of the command line, who acts for ``unit`` with the keys of
    the machine it runs on (and so with every role)."""

    user: User | None
    unit: Unit
    units: set[int]
    actor: Actor

    @classmethod
    def of_user(cls, session: Session, user: User, client: str | None = None) -> Scope:
        return cls(
            user=user,
            unit=user.unit,
            units=visible_unit_ids(session, user.unit),
            actor=Actor(user.id, f"{user.display_name}（{user.unit.name}）", user.unit_id, client),
        )

    @classmethod
    def operator(cls, session: Session, unit: Unit, label: str = "命令行") -> Scope:
        return cls(user=None, unit=unit, units=visible_unit_ids(session, unit), actor=Actor(None, label, unit.id))

    @property
    def role(self) -> str | None:
        return self.user.role if self.user is not None else None

    def has(self, *roles: Role) -> bool:
        return self.user is None or self.user.role in {r.value for r in roles}

    def require(self, *roles: Role, message: str | None = None) -> None:
        if not self.has(*roles):
            raise Forbidden(message)

    def bureau(self) -> Unit:
        """The bureau the user acts for; only bureau staff may act as a bureau."""
        if self.unit.type != UnitType.BUREAU:
            raise Forbidden("只有教体局工作人员可以进行此操作。")
        return self.unit
