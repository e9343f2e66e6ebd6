"""Accounts: argon2 password hashes, browser sessions and API tokens (both stored as SHA-256)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.accounts.errors import AuthFailed, TooManyRequests, UserInvalid
from service.accounts.models import ApiToken, LoginSession, Role, User
from service.accounts.scope import Scope
from service.audit.service import Actor, record
from service.db.session import Database
from service.errors import NotFoundForUser
from service.limits import RateLimiter
from service.units.models import Unit, UnitType

_hasher = PasswordHasher()
#: A hash verified against when the username is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("docsign-dummy-password")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
MIN_PASSWORD = 8

#: Which unit types a role may belong to.
ROLE_UNITS = {
    Role.BUREAU: {UnitType.BUREAU},
    Role.OFFICE: {UnitType.OFFICE},
    Role.SIGNER: {UnitType.OFFICE, UnitType.SCHOOL, UnitType.BUREAU},
}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_user(session: Session, *, username: str, password: str, display_name: str, role: str, unit: Unit) -> User:
    if not USERNAME.match(username):
        raise UserInvalid("用户名须为3到64位字母、数字、点、下划线或短横线，且以字母或数字开头。")
    if len(password) < MIN_PASSWORD:
        raise UserInvalid(f"密码至少需要 {MIN_PASSWORD} 位。")
    try:
        role_enum = Role(role)
    except ValueError:
        raise UserInvalid(f"角色「{role}」无效，可选：{'、'.join(r.value for r in Role)}。") from None
    if unit.type not in ROLE_UNITS[role_enum]:
        raise UserInvalid(f"「{unit.name}」不能设置这种角色的账号。")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserInvalid(f"用户名「{username}」已被使用。")
    user = User(
        username=username,
        password_hash=hash_password(password),
        display_name=display_name.strip() or username,
        role=role_enum.value,
        unit_id=unit.id,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise AuthFailed() from None
    if user is None or not user.active:
        raise AuthFailed()
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def start_session(session: Session, user: User, now: dt.datetime, hours: int) -> str:
    token = secrets.token_urlsafe(32)
    session.execute(delete(LoginSession).where(LoginSession.expires_at < now))
    session.add(
        LoginSession(
            token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=now + dt.timedelta(hours=hours)
        )
    )
    session.flush()
    return token


def end_session(session: Session, token: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash(token)))


def user_for_session(session: Session, token: str, now: dt.datetime) -> User | None:
    row = session.get(LoginSession, token_hash(token))
    if row is None or row.expires_at < now or not row.user.active:
        return None
    return row.user


def create_token(session: Session, user: User, name: str, now: dt.datetime) -> str:
    name = name.strip()
    if not name or len(name) > 64:
        raise UserInvalid("令牌名称不能为空，且不超过64个字符。")
    token = "dst_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=token_hash(token), created_at=now))
    session.flush()
    return token


def user_for_token(session: Session, token: str, now: dt.datetime) -> User | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    row.last_used_at = now
    return row.user


class Accounts:
    """The account use cases: signing in and out, API tokens, new accounts."""

    def __init__(
        self, db: Database, login_limit: RateLimiter, session_hours: int, now: Callable[[], dt.datetime]
    ) -> None:
        self.db = db
        self.login_limit = login_limit
        self.session_hours = session_hours
        self.now = now

    def sign_in(
        self, session: Session, client: str, username: str, password: str, previous: str | None = None
    ) -> tuple[User, str]:
        """Check a password login from ``client`` and open a session; returns the user and the
        session token. The browser's ``previous`` session, if any, ends: a login always starts a
        fresh session (no fixation). A failure is recorded in the audit log (in a transaction of its own, so it
        stays even though the caller's work is rolled back) before AuthFailed is raised; a client
        over the login rate limit gets TooManyRequests."""
        wait = self.login_limit.hit("login:" + client)
        if wait:
            raise TooManyRequests(wait, f"登录尝试过于频繁，请 {wait} 秒后再试。")
        now = self.now()
        try:
            user = authenticate(session, username, password)
        except AuthFailed:
            with self.db.session() as apart:  # the failure is kept whatever the caller does next
                record(apart, Actor(None, username[:64], None, client), "auth.login_failed", "user", username[:64], now)
                apart.commit()
            raise
        if previous:
            end_session(session, previous)
        token = start_session(session, user, now, self.session_hours)
        record(session, Actor(user.id, user.display_name, user.unit_id, client), "auth.login", "user", user.id, now)
        return user, token

    def sign_out(self, session: Session, token: str) -> None:
        end_session(session, token)

    def new_token(self, session: Session, user: User, name: str) -> str:
        now = self.now()
        token = create_token(session, user, name, now)
        record(
            session,
            Actor(user.id, user.display_name, user.unit_id),
            "auth.token_create",
            "user",
            user.id,
            now,
            name=name,
        )
        return token

    def add_user(
        self, session: Session, scope: Scope, *, username: str, password: str, display_name: str, role: str, unit: Unit
    ) -> User:
        """A bureau creates an account for one of its units."""
        scope.require(Role.BUREAU)
        if unit.id not in scope.units:
            raise NotFoundForUser("未找到该单位。")
        user = create_user(
            session, username=username, password=password, display_name=display_name, role=role, unit=unit
        )
        record(
            session,
            scope.actor,
            "user.create",
            "user",
            user.id,
            self.now(),
            username=user.username,
            role=user.role,
            unit=unit.name,
        )
        return user
