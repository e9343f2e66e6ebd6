from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, utcnow
from service.units.models import Unit


class Role(StrEnum):
    #: 区教体局 staff: units, campaigns, issuing, receiving, revoking, exports.
    BUREAU = "bureau_staff"
    #: 街道教育办 staff: their office's and schools' documents; forward the schools' batch.
    OFFICE = "office_staff"
    #: A principal or office director: reads and signs their own unit's documents.
    SIGNER = "unit_signer"
    #: 系统管理员 (三员): creates accounts, disables and enables them, sets their end dates.
    SYSTEM_ADMIN = "system_admin"
    #: 安全管理员 (三员): resets accounts (password and second factor), changes roles, revokes tokens.
    SECURITY_ADMIN = "security_admin"
    #: 审计管理员 (三员): reads and exports the audit log and the access log; changes nothing.
    AUDIT_ADMIN = "audit_admin"


ROLE_TITLES = {
    Role.BUREAU: "教体局工作人员",
    Role.OFFICE: "教育办工作人员",
    Role.SIGNER: "单位负责人（签署人）",
    Role.SYSTEM_ADMIN: "系统管理员",
    Role.SECURITY_ADMIN: "安全管理员",
    Role.AUDIT_ADMIN: "审计管理员",
}

#: The three administrators (三员分立). They hold no business role: they see no child's data, sign
#: nothing and issue nothing; each account holds one role, so nobody is two of them.
ADMIN_ROLES = frozenset({Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN, Role.AUDIT_ADMIN})


def is_admin(role: str | None) -> bool:
    """Whether ``role`` is one of the three administrators'."""
    return role in {r.value for r in ADMIN_ROLES}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The TOTP secret (base32); the second factor is on once ``totp_enabled_at`` is set.
    #: Sealed (``service.accounts.sealing``); an older row may hold it in clear until its next sign-in.
    totp_secret: Mapped[str | None] = mapped_column(String(128))
    totp_enabled_at: Mapped[dt.datetime | None]
    #: SHA-256 of each unused recovery code.
    recovery_codes: Mapped[list[str] | None] = mapped_column(JSON)
    #: Set by an administrator's reset: the user must choose a new password before anything else.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    password_changed_at: Mapped[dt.datetime | None]
    #: The TOTP time step (30-second window number) of the last code accepted: a code of that step
    #: or an earlier one is a replay and refused.
    totp_last_step: Mapped[int | None]
    #: An administrator's reset: when, and who (name and unit), shown to the holder at the next login.
    reset_at: Mapped[dt.datetime | None]
    reset_by: Mapped[str | None] = mapped_column(String(160))
    #: The last successful login; failures since then are counted for the holder to see.
    last_login_at: Mapped[dt.datetime | None]
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    last_failed_login_at: Mapped[dt.datetime | None]
    last_failed_login_client: Mapped[str | None] = mapped_column(String(64))
    #: A temporary account's end: its holder cannot sign in after it (None: no end).
    expires_at: Mapped[dt.datetime | None]
    #: When and why the account was disabled (by an administrator, or unused for too long);
    #: ``active`` is what counts, these say why.
    disabled_at: Mapped[dt.datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(200))

    unit: Mapped[Unit] = relationship(lazy="joined")

    def usable(self, now: dt.datetime) -> bool:
        """Whether the account may be used now: not disabled, not past its end."""
        return self.active and (self.expires_at is None or self.expires_at > now)


#: A password hash no password matches: an account waiting for activation has no usable password.
NO_PASSWORD = "!activation-pending"


class Activation(Base):
    """A one-time link with which an account's holder sets their password and enrols the second
    factor (a new account, or one an administrator reset). Only the token's SHA-256 is stored; the
    password and TOTP secret chosen in the first step wait here until the code confirms them."""

    __tablename__ = "account_activations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: ``create`` (a new account) or ``reset`` (an administrator's reset).
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(160))
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    #: Step one's choices, kept until the first code confirms them (the secret sealed to the account).
    pending_password_hash: Mapped[str | None] = mapped_column(String(255))
    pending_totp_secret: Mapped[str | None] = mapped_column(String(128))

    user: Mapped[User] = relationship(lazy="joined")


class ApiToken(Base):
    """A bearer token for programs; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    #: A token stops working at this time (None: a token made before expiry existed; refused too).
    expires_at: Mapped[dt.datetime | None]
    #: ``write`` (any request) or ``read`` (GET, HEAD and OPTIONS only).
    access: Mapped[str] = mapped_column(String(8), default="write", server_default="write")
    #: The domains (``TOKEN_DOMAINS`` keys: ``rosters``, ``ledgers`` …) the token may be used for;
    #: None: every domain its holder's role reaches.
    domains: Mapped[list[str] | None] = mapped_column(JSON)

    user: Mapped[User] = relationship(lazy="joined")


class LoginSession(Base):
    """A browser session; the cookie holds a random token, the table its SHA-256."""

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The absolute end (``created_at`` plus ``session_hours``).
    expires_at: Mapped[dt.datetime]
    #: The last request seen with the session, as written by the batch flush (requests note it in
    #: memory: a GET writes nothing); the session ends after ``session_idle_minutes`` without one.
    last_seen_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class LoginFailure(Base):
    """A failed login, kept in the database so that every server process throttles the same
    account and the same client (per account and per client, over a sliding window)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)


class Delegation(Base):
    """A unit's signer lets another account sign with the unit's key between two dates (a vice
    principal while the principal is away). Recorded by the unit itself, revocable, audited."""

    __tablename__ = "delegations"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    starts_on: Mapped[dt.date]
    ends_on: Mapped[dt.date]
    reason: Mapped[str] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]

    unit: Mapped[Unit] = relationship(lazy="joined")
    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")

    def active_on(self, day: dt.date) -> bool:
        return self.revoked_at is None and self.starts_on <= day <= self.ends_on
