"""Who is acting: a signed-in user (or the command-line operator), the units they may see, and how
they appear in the audit log. Every use case that acts for someone takes a :class:`Scope`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.errors import Forbidden
from service.accounts.models import Delegation, Role, User, is_admin
from service.audit.service import Actor
from service.db.scoping import Sees
from service.units.models import Unit, UnitType
from service.units.service import visible_unit_ids


def may_export_full(user: User) -> bool:
    """Full 身份证号 and phones in an export: bureau staff, and a school's head (the school's
    ``unit_signer``, whose scope is the school's own children). See ``Scope.may_export_full``."""
    return user.role == Role.BUREAU.value or (user.role == Role.SIGNER.value and user.unit.type == UnitType.SCHOOL)


@dataclass(frozen=True)
class _Units:
    units: frozenset[int]


@dataclass
class Scope:
    """``user`` is None for the operator of the command line, who acts for ``unit`` with the keys of
    the machine it runs on (and so with every role).

    ``units`` are the units whose business (documents, cases, rosters, ledgers, campaigns) the user
    sees: empty for the three administrators, whatever their unit. ``manages`` are the units whose
    accounts (and names) the administrators see: the bureau's tree for each of the three (and the
    operator), empty for everyone else; what each may change there is its role's alone."""

    user: User | None
    unit: Unit
    units: set[int]
    actor: Actor
    manages: set[int] = field(default_factory=set)
    #: Units whose signer has delegated signing to this user for today (``Delegation``).
    delegated: frozenset[int] = field(default_factory=frozenset)
    #: What this user was refused, in order; the request's face writes them to the audit log.
    refusals: list[str] = field(default_factory=list)

    def refuse(self, message: str | None = None) -> Forbidden:
        """The refusal to raise, noted for the audit log (written once the request's work is undone)."""
        refusal = Forbidden(message)
        self.refusals.append(refusal.message)
        return refusal

    @classmethod
    def of_user(cls, session: Session, user: User, client: str | None = None, today: dt.date | None = None) -> Scope:
        delegated: frozenset[int] = frozenset()
        if today is not None and not is_admin(user.role):  # an administrator signs for nobody
            delegated = frozenset(
                d.unit_id
                for d in session.scalars(select(Delegation).where(Delegation.user_id == user.id))
                if d.active_on(today)
            )
        tree = visible_unit_ids(session, user.unit)
        return cls(
            user=user,
            unit=user.unit,
            # an administrator's unit is the bureau, but none of its business is theirs to see
            units=set() if is_admin(user.role) else tree,
            actor=Actor(user.id, f"{user.display_name}（{user.unit.name}）", user.unit_id, client),
            delegated=delegated,
            manages=tree if is_admin(user.role) else set(),
        )

    @classmethod
    def operator(cls, session: Session, unit: Unit, label: str = "命令行") -> Scope:
        tree = visible_unit_ids(session, unit)
        return cls(user=None, unit=unit, units=tree, actor=Actor(None, label, unit.id), manages=set(tree))

    @property
    def reads_audit(self) -> bool:
        """Only the audit administrator (审计管理员) reads the audit and access logs on the web and
        the API (the command line's operator verifies them with ``docsign audit verify``)."""
        return self.user is not None and self.user.role == Role.AUDIT_ADMIN.value

    @property
    def administered(self) -> Sees:
        """The units the administrators see by name (for their filters and forms), as a scope the
        units' repository reads."""
        return _Units(frozenset(self.manages))

    @property
    def is_admin(self) -> bool:
        """One of the three administrators (never the command line's operator)."""
        return self.user is not None and is_admin(self.user.role)

    @property
    def role(self) -> str | None:
        return self.user.role if self.user is not None else None

    def has(self, *roles: Role) -> bool:
        return self.user is None or self.user.role in {r.value for r in roles}

    @property
    def may_export_full(self) -> bool:
        """Whether an export may hold full 身份证号 and phone numbers (masked otherwise): bureau staff,
        and a school's head (a school's ``unit_signer``) for the school's own children; the command
        line's operator. Office staff and office directors get masked exports."""
        return self.user is None or may_export_full(self.user)

    def require(self, *roles: Role, message: str | None = None) -> None:
        if not self.has(*roles):
            raise self.refuse(message)

    def acts_for(self, unit: Unit) -> bool:
        """Whether this user acts for ``unit`` itself (not merely sees it from above). The operator of
        the command line acts for any unit it sees."""
        if self.user is None:
            return unit.id in self.units
        return self.user.unit_id == unit.id and not self.is_admin

    def require_own(self, unit: Unit, message: str | None = None) -> None:
        """Only the unit's own accounts change the unit's records (a school's cases, its reports)."""
        if not self.acts_for(unit):
            raise self.refuse(message or f"只有「{unit.name}」自己的账号可以进行此操作；上级单位只能查看和督促。")

    def require_signer_for(self, unit: Unit) -> None:
        """Only a unit's own signer signs with the unit's key (or the account the signer delegated
        to, between the delegation's dates); bureau staff sign as their bureau and for nobody else.
        Office staff never sign for themselves."""
        if self.user is None:
            if unit.id not in self.units:
                raise self.refuse(f"不能以「{unit.name}」的名义签章。")
            return
        if unit.id in self.delegated:
            return  # the unit's own signer delegated it, for today
        if self.user.unit_id != unit.id:
            raise self.refuse(f"只有「{unit.name}」自己的签署人可以用该单位的证书签章。")
        allowed = {Role.SIGNER.value} | ({Role.BUREAU.value} if unit.type == UnitType.BUREAU else set())
        if self.user.role not in allowed:
            raise self.refuse(f"您的账号不能以「{unit.name}」的名义签章：只有该单位负责人（签署人）可以。")

    def keeps_units(self) -> Unit:
        """The bureau whose unit tree the user keeps (imports): its staff, or its system
        administrator (系统管理员: accounts and units); anyone else is refused."""
        self.require(Role.BUREAU, Role.SYSTEM_ADMIN, message="只有教体局工作人员或系统管理员可以导入单位。")
        if self.user is not None and self.user.role == Role.SYSTEM_ADMIN.value:
            return self.user.unit
        return self.bureau()

    def bureau_staff(self) -> Unit:
        """The bureau of its staff; anyone else is refused."""
        self.require(Role.BUREAU)
        return self.bureau()

    def bureau(self) -> Unit:
        """The bureau the user acts for; only bureau staff may act as a bureau."""
        if self.unit.type != UnitType.BUREAU or self.is_admin:
            raise self.refuse("只有教体局工作人员可以进行此操作。")
        return self.unit
