"""Accounts: argon2 password hashes, a TOTP second factor with recovery codes, browser sessions and
API tokens (both stored as SHA-256, tokens with an expiry), and login throttling per account and per
client kept in the database, so every server process counts the same failures."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
from collections.abc import Callable

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.accounts.errors import (
    AuthFailed,
    TooManyRequests,
    TotpNotEnrolled,
    TotpRequired,
    UserInvalid,
)
from service.accounts.models import ApiToken, Delegation, LoginFailure, LoginSession, Role, User
from service.accounts.passwords import password_problem
from service.accounts.scope import Scope
from service.accounts.sealing import SecretBox, is_sealed
from service.audit.service import Actor, record
from service.db.session import Database
from service.errors import NotFoundForUser
from service.limits import RateLimiter
from service.units.models import Unit, UnitType

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash verified against when the username is unknown, so both failures cost the same time
    (made at the first login, not at every process start: an Argon2 hash takes ~0.1 s)."""
    return _hasher.hash("docsign-dummy-password")


USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
#: Roles that must use the second factor when ``require_staff_totp`` is on.
STAFF_ROLES = {Role.BUREAU.value, Role.OFFICE.value}
RECOVERY_CODES = 10
TOTP_ISSUER = "控辍保学文书服务"

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
    problem = password_problem(password, username)
    if problem:
        raise UserInvalid(problem)
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
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
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


def end_all_sessions(session: Session, user: User) -> None:
    """Every browser session of the user ends (a password change, a reset, a new second factor)."""
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))


def user_for_session(session: Session, token: str, now: dt.datetime) -> User | None:
    row = session.get(LoginSession, token_hash(token))
    if row is None or row.expires_at < now or not row.user.active:
        return None
    return row.user


def create_token(session: Session, user: User, name: str, now: dt.datetime, days: int = 90) -> tuple[ApiToken, str]:
    name = name.strip()
    if not name or len(name) > 64:
        raise UserInvalid("令牌名称不能为空，且不超过64个字符。")
    if not 1 <= days <= 365:
        raise UserInvalid("令牌有效期应为 1 到 365 天。")
    token = "dst_" + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=token_hash(token),
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
    )
    session.add(row)
    session.flush()
    return row, token


def user_for_token(session: Session, token: str, now: dt.datetime, *, writes: bool) -> User | None:
    """The user of a live token: not revoked, not expired (a token without an expiry is refused),
    its user active and not waiting to change a reset password. A request that ``writes`` records
    the token's last use; a read leaves the token as it was (a GET never writes)."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    if row.expires_at is None or row.expires_at <= now:
        return None
    if writes:
        row.last_used_at = now
    return row.user


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").replace(" ", "").lower().encode()).hexdigest()


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]


class Accounts:
    """The account use cases: signing in and out with a password and (for staff) a second factor,
    password changes and resets, API tokens, new accounts."""

    def __init__(
        self,
        db: Database,
        login_limit: RateLimiter,
        session_hours: int,
        now: Callable[[], dt.datetime],
        *,
        require_staff_totp: bool = False,
        failures_per_account: int = 5,
        failures_per_client: int = 30,
        lockout_minutes: int = 15,
        secrets: SecretBox,
    ) -> None:
        self.db = db
        self.secrets = secrets
        self.login_limit = login_limit
        self.session_hours = session_hours
        self.now = now
        self.require_staff_totp = require_staff_totp
        self.failures_per_account = failures_per_account
        self.failures_per_client = failures_per_client
        self.lockout = dt.timedelta(minutes=lockout_minutes)

    def _totp(self, user: User) -> pyotp.TOTP | None:
        return None if user.totp_secret is None else pyotp.TOTP(self.secrets.open(user.id, user.totp_secret))

    def _new_totp(self, session: Session, user: User) -> pyotp.TOTP:
        session.flush()  # the account's id binds the sealed secret to it
        secret = pyotp.random_base32()
        user.totp_secret = self.secrets.seal(user.id, secret)
        return pyotp.TOTP(secret)

    def needs_totp(self, user: User) -> bool:
        """Bureau and office staff when the setting asks for it; anyone who turned it on."""
        return user.totp_enabled_at is not None or (self.require_staff_totp and user.role in STAFF_ROLES)

    def _throttle(self, session: Session, client: str, username: str, now: dt.datetime) -> None:
        """Too many failures for this account, or from this client, within the lockout window."""
        since = now - self.lockout
        minutes = int(self.lockout.total_seconds() // 60)
        by_account = session.scalar(
            select(func.count()).where(LoginFailure.username == username[:64], LoginFailure.at > since)
        )
        if (by_account or 0) >= self.failures_per_account:
            raise TooManyRequests(
                int(self.lockout.total_seconds()),
                f"该账号登录失败次数过多，已暂时锁定，请 {minutes} 分钟后再试；如非本人操作，请联系管理员。",
            )
        by_client = session.scalar(
            select(func.count()).where(LoginFailure.client == client[:64], LoginFailure.at > since)
        )
        if (by_client or 0) >= self.failures_per_client:
            raise TooManyRequests(int(self.lockout.total_seconds()), f"本机登录失败次数过多，请 {minutes} 分钟后再试。")

    def _failed(self, client: str, username: str, now: dt.datetime, action: str = "auth.login_failed") -> None:
        with self.db.session() as apart:  # the failure is kept whatever the caller does next
            apart.add(LoginFailure(at=now, username=username[:64], client=client[:64]))
            apart.execute(delete(LoginFailure).where(LoginFailure.at < now - 4 * self.lockout))
            record(apart, Actor(None, username[:64], None, client), action, "user", username[:64], now)
            apart.commit()

    def _second_factor(self, session: Session, user: User, otp: str | None) -> bool:
        """Whether ``otp`` is the user's current TOTP code or an unused recovery code (used up)."""
        totp = self._totp(user)
        if not otp or totp is None:
            return False
        code = otp.strip().replace(" ", "")
        if code.isdigit() and len(code) == 6:
            good = totp.verify(code, for_time=self.now(), valid_window=1)
            if good and user.totp_secret is not None and not is_sealed(user.totp_secret):
                user.totp_secret = self.secrets.seal(user.id, totp.secret)  # kept in clear by an older version
            return good
        digest = _recovery_hash(code)
        remaining = list(user.recovery_codes or [])
        if digest in remaining:
            remaining.remove(digest)
            user.recovery_codes = remaining
            return True
        return False

    def sign_in(
        self,
        session: Session,
        client: str,
        username: str,
        password: str,
        previous: str | None = None,
        otp: str | None = None,
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
        self._throttle(session, client, username, now)
        try:
            user = authenticate(session, username, password)
        except AuthFailed:
            self._failed(client, username, now)
            raise
        if self.needs_totp(user):
            if user.totp_enabled_at is None:
                raise TotpNotEnrolled()
            if not otp:
                raise TotpRequired()
            if not self._second_factor(session, user, otp):
                self._failed(client, username, now, "auth.totp_failed")
                raise AuthFailed("动态口令或恢复码不正确。")
        if previous:
            end_session(session, previous)
        token = start_session(session, user, now, self.session_hours)
        record(session, Actor(user.id, user.display_name, user.unit_id, client), "auth.login", "user", user.id, now)
        return user, token

    def sign_out(self, session: Session, token: str) -> None:
        end_session(session, token)

    def new_token(self, session: Session, user: User, name: str, days: int = 90) -> tuple[ApiToken, str]:
        now = self.now()
        row, token = create_token(session, user, name, now, days)
        record(
            session,
            Actor(user.id, user.display_name, user.unit_id),
            "auth.token_create",
            "api_token",
            row.id,
            now,
            name=name,
            days=days,
        )
        return row, token

    def revoke_token(self, session: Session, scope: Scope, token: ApiToken) -> None:
        """A user revokes their own token; bureau staff any token of an account in their district."""
        own = scope.user is not None and token.user_id == scope.user.id
        if not own and not (scope.has(Role.BUREAU) and token.user.unit_id in scope.units):
            raise NotFoundForUser("未找到该令牌。")
        if token.revoked_at is None:
            token.revoked_at = self.now()
            record(session, scope.actor, "auth.token_revoke", "api_token", token.id, self.now(), name=token.name)
        session.flush()

    def change_password(self, session: Session, user: User, current: str, new: str) -> str:
        """The user changes their password (giving the current one); every other session ends and a
        new one starts, whose token is returned."""
        try:
            _hasher.verify(user.password_hash, current)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise AuthFailed("当前密码不正确。") from None
        problem = password_problem(new, user.username)
        if problem:
            raise UserInvalid(problem)
        if new == current:
            raise UserInvalid("新密码不能与当前密码相同。")
        now = self.now()
        user.password_hash = hash_password(new)
        user.must_change_password = False
        user.password_changed_at = now
        end_all_sessions(session, user)
        record(session, Actor(user.id, user.display_name, user.unit_id), "auth.password_change", "user", user.id, now)
        return start_session(session, user, now, self.session_hours)

    def reset_password(self, session: Session, scope: Scope, user: User) -> str:
        """Bureau staff reset an account of their district: a one-time password is returned, the
        account's sessions end, and the user must choose a new password at the next login."""
        scope.require(Role.BUREAU)
        if user.unit_id not in scope.units:
            raise NotFoundForUser("未找到该账号。")
        if scope.user is not None and user.id == scope.user.id:
            raise scope.refuse("不能重置自己的密码，请使用修改密码。")
        temporary = secrets.token_urlsafe(12)
        user.password_hash = hash_password(temporary)
        user.must_change_password = True
        end_all_sessions(session, user)
        record(session, scope.actor, "user.password_reset", "user", user.id, self.now(), username=user.username)
        return temporary

    def start_totp(self, session: Session, user: User) -> str:
        """A new TOTP secret for the user, not yet in force until confirmed with a code; returns the
        ``otpauth://`` address a phone authenticator reads (as a QR code or typed in)."""
        if user.totp_enabled_at is not None:
            raise UserInvalid("动态口令已开通；如需更换，请联系管理员重置。")
        totp = self._new_totp(session, user)
        session.flush()
        return totp.provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)

    def pending_totp_uri(self, user: User) -> str | None:
        """The authenticator address of a second factor started but not yet confirmed."""
        totp = self._totp(user)
        if totp is None or user.totp_enabled_at is not None:
            return None
        return totp.provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)

    def confirm_totp(self, session: Session, user: User, code: str) -> tuple[list[str], str]:
        """Turn the second factor on with a first code; returns the recovery codes (shown once) and
        a new session's token (the others end: a privilege change rotates the session)."""
        totp = self._totp(user)
        if totp is None or not totp.verify(code.strip(), for_time=self.now(), valid_window=1):
            raise UserInvalid("动态口令不正确，请核对手机验证器中的 6 位数字。")
        codes = new_recovery_codes()
        user.recovery_codes = [_recovery_hash(c) for c in codes]
        user.totp_enabled_at = self.now()
        end_all_sessions(session, user)
        record(
            session, Actor(user.id, user.display_name, user.unit_id), "auth.totp_enable", "user", user.id, self.now()
        )
        return codes, start_session(session, user, self.now(), self.session_hours)

    def delegate(
        self,
        session: Session,
        scope: Scope,
        unit: Unit,
        delegate: User,
        *,
        starts_on: dt.date,
        ends_on: dt.date,
        reason: str,
        today: dt.date,
    ) -> Delegation:
        """A unit's own signer lets ``delegate`` sign with the unit's key from ``starts_on`` to
        ``ends_on`` (inclusive): an account of the unit itself or of a unit above it."""
        if scope.user is not None and not (scope.user.unit_id == unit.id and scope.user.role == Role.SIGNER.value):
            raise scope.refuse(f"只有「{unit.name}」自己的负责人（签署人）可以委托他人签署。")
        if scope.user is None and unit.id not in scope.units:
            raise NotFoundForUser("未找到该单位。")
        above = {unit.id}
        node = unit
        while node.parent is not None:
            node = node.parent
            above.add(node.id)
        problems = []
        if not delegate.active or delegate.unit_id not in above:
            problems.append("受托人应为本单位或上级单位的在用账号")
        if scope.user is not None and delegate.id == scope.user.id:
            problems.append("不能委托给自己")
        if ends_on < starts_on:
            problems.append("结束日期不能早于开始日期")
        if starts_on < today:
            problems.append("开始日期不能早于今天")
        if (ends_on - starts_on).days > 366:
            problems.append("委托期限不能超过一年")
        if not reason.strip():
            problems.append("请填写委托原因")
        if problems:
            raise UserInvalid("；".join(problems) + "。")
        row = Delegation(
            unit_id=unit.id,
            user_id=delegate.id,
            starts_on=starts_on,
            ends_on=ends_on,
            reason=reason.strip()[:200],
            created_by_id=scope.actor.user_id,
            created_at=self.now(),
        )
        session.add(row)
        session.flush()
        record(
            session,
            scope.actor,
            "delegation.create",
            "delegation",
            row.id,
            self.now(),
            unit=unit.name,
            delegate=delegate.username,
            starts_on=starts_on.isoformat(),
            ends_on=ends_on.isoformat(),
        )
        return row

    def revoke_delegation(self, session: Session, scope: Scope, delegation: Delegation) -> None:
        """The unit's own signer (or the delegate, giving it back) ends a delegation at once."""
        own_unit = scope.user is None or (
            scope.user.unit_id == delegation.unit_id and scope.user.role == Role.SIGNER.value
        )
        if not own_unit and not (scope.user is not None and scope.user.id == delegation.user_id):
            raise scope.refuse(f"只有「{delegation.unit.name}」自己的负责人（签署人）或受托人可以撤销委托。")
        if delegation.revoked_at is None:
            delegation.revoked_at = self.now()
            record(session, scope.actor, "delegation.revoke", "delegation", delegation.id, self.now())
        session.flush()

    def enroll_totp(self, session: Session, scope: Scope, user: User) -> tuple[str, list[str]]:
        """The operator (``docsign user totp``) turns the second factor on for an account at once;
        returns the secret's address and the recovery codes, to hand to the person."""
        totp = self._new_totp(session, user)
        codes = new_recovery_codes()
        user.recovery_codes = [_recovery_hash(c) for c in codes]
        user.totp_enabled_at = self.now()
        end_all_sessions(session, user)
        record(session, scope.actor, "user.totp_enroll", "user", user.id, self.now(), username=user.username)
        return totp.provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER), codes

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
