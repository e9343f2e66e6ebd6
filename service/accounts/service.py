"""Accounts: argon2 password hashes, a TOTP second factor (single-use codes) with recovery codes,
activation links (a new account's holder, or one an administrator reset, sets their own password
and second factor: nobody else ever holds a usable login), browser sessions with an idle timeout and
an absolute lifetime, API tokens (both stored as SHA-256, tokens with an expiry and revoked with
their owner's credentials), and login throttling kept in the database: an exponential back-off per
account and client, and a cap per client, so every server process counts the same failures and
nobody can lock an account holder out from elsewhere."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import math
import re
import secrets
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from service.accounts.activity import SessionActivity
from service.accounts.errors import (
    AccountDisabled,
    ActivationExpired,
    ActivationInvalid,
    ActivationSignedIn,
    AuthFailed,
    TooManyRequests,
    TotpNotEnrolled,
    TotpReplayed,
    TotpRequired,
    UserInvalid,
)
from service.accounts.models import (
    NO_PASSWORD,
    ROLE_TITLES,
    Activation,
    ApiToken,
    Delegation,
    LoginFailure,
    LoginSession,
    Role,
    User,
    is_admin,
)
from service.accounts.passwords import password_problem
from service.accounts.scope import Scope
from service.accounts.sealing import SecretBox, is_sealed
from service.audit.service import SYSTEM, Actor, record, record_when_done
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
RECOVERY_CODES = 10
TOTP_ISSUER = "控辍保学文书服务"
#: Codes of the previous and the next 30-second step are accepted too (a phone's clock drifts).
TOTP_WINDOW = 1
#: Failed logins of one account from one client count towards its back-off for this long.
PAIR_WINDOW = dt.timedelta(hours=24)
#: Where an activation link points, under the service's public address.
ACTIVATION_PATH = "/activate/"

#: Which unit types a role may belong to.
ROLE_UNITS = {
    Role.BUREAU: {UnitType.BUREAU},
    Role.OFFICE: {UnitType.OFFICE},
    Role.SIGNER: {UnitType.OFFICE, UnitType.SCHOOL, UnitType.BUREAU},
    Role.SYSTEM_ADMIN: {UnitType.BUREAU},
    Role.SECURITY_ADMIN: {UnitType.BUREAU},
    Role.AUDIT_ADMIN: {UnitType.BUREAU},
}

#: Said when an administrator's account would be made, changed or reset from the web or the API:
#: that is done on the server, where each of the three is made at installation.
ADMIN_ON_SERVER = "管理员账号（系统管理员、安全管理员、审计管理员）只能在服务器上用命令行（docsign add-user、docsign user reset）创建和重置。"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_user(
    session: Session, *, username: str, password: str | None, display_name: str, role: str, unit: Unit
) -> User:
    """A new account; without ``password`` it has no usable one until its holder activates it."""
    if not USERNAME.match(username):
        raise UserInvalid("用户名须为3到64位字母、数字、点、下划线或短横线，且以字母或数字开头。")
    if password is not None and (problem := password_problem(password, username)):
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
        password_hash=NO_PASSWORD if password is None else hash_password(password),
        display_name=display_name.strip() or username,
        role=role_enum.value,
        unit_id=unit.id,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str, now: dt.datetime | None = None) -> User:
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None and user.password_hash != NO_PASSWORD else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise AuthFailed() from None
    if user is None or user.password_hash == NO_PASSWORD:
        raise AuthFailed()
    if not user.usable(now or dt.datetime.now(dt.UTC)):
        raise AccountDisabled(_disabled_words(user, now or dt.datetime.now(dt.UTC)))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def _disabled_words(user: User, now: dt.datetime) -> str:
    if user.active and user.expires_at is not None and user.expires_at <= now:
        return "这是临时账号，已到期停用。需要继续使用请联系教体局的系统管理员。"
    why = f"（{user.disabled_reason}）" if user.disabled_reason else ""
    return f"账号已停用{why}，请联系教体局的系统管理员。"


def start_session(session: Session, user: User, now: dt.datetime, hours: int) -> str:
    token = secrets.token_urlsafe(32)
    session.execute(delete(LoginSession).where(LoginSession.expires_at < now))
    session.add(
        LoginSession(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + dt.timedelta(hours=hours),
            last_seen_at=now,
        )
    )
    session.flush()
    return token


def end_session(session: Session, token: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash(token)))


def end_all_sessions(session: Session, user: User) -> None:
    """Every browser session of the user ends (a password change, a reset, a new second factor)."""
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))


def revoke_all_tokens(session: Session, user: User, now: dt.datetime) -> int:
    """Every live API token of the user stops working (new credentials, a reset); how many did."""
    result = session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)).values(revoked_at=now)
    )
    return result.rowcount if isinstance(result, CursorResult) else 0


def user_for_session(
    session: Session,
    token: str,
    now: dt.datetime,
    *,
    idle: dt.timedelta | None = None,
    seen: dt.datetime | None = None,
) -> User | None:
    """The user of a live session: before its absolute end, and (given ``idle``) used within that
    long, by the last use written (``last_seen_at``) or ``seen`` (noted in memory, not yet written)."""
    row = session.get(LoginSession, token_hash(token))
    if row is None or row.expires_at <= now or not row.user.usable(now):
        return None
    if idle is not None:
        last = max(t for t in (row.created_at, row.last_seen_at, seen) if t is not None)
        if now - last > idle:
            return None
    return row.user


TOKEN_ACCESS = ("read", "write")
#: What a token may be limited to: the API's domains, by key, with their titles (the API's groups).
TOKEN_DOMAINS = {
    "campaigns": "签署任务",
    "assignments": "签署",
    "documents": "文书",
    "cases": "辍学个案与通知书",
    "rosters": "名单与批量通知书",
    "ledgers": "台账与报表",
    "units": "单位与账号",
    "notify": "通知与推送",
    "accounts": "登录与账号",
    "audit": "审计",
}


def create_token(
    session: Session,
    user: User,
    name: str,
    now: dt.datetime,
    days: int = 90,
    access: str = "write",
    domains: list[str] | None = None,
) -> tuple[ApiToken, str]:
    name = name.strip()
    if not name or len(name) > 64:
        raise UserInvalid("令牌名称不能为空，且不超过64个字符。")
    if not 1 <= days <= 365:
        raise UserInvalid("令牌有效期应为 1 到 365 天。")
    if access not in TOKEN_ACCESS:
        raise UserInvalid("令牌权限应为 read（只读）或 write（读写）。")
    if domains is not None:
        unknown = [d for d in domains if d not in TOKEN_DOMAINS]
        if unknown or not domains:
            choices = "、".join(f"{k}（{t}）" for k, t in TOKEN_DOMAINS.items())
            raise UserInvalid(f"令牌的适用范围应从以下选择至少一项：{choices}。")
        domains = sorted(set(domains))
    token = "dst_" + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=token_hash(token),
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
        access=access,
        domains=domains,
    )
    session.add(row)
    session.flush()
    return row, token


def token_for(session: Session, token: str, now: dt.datetime, *, writes: bool) -> ApiToken | None:
    """A live token: not revoked, not expired (a token without an expiry is refused), its user
    active, holding a usable password and not waiting to change a reset one. A request that
    ``writes`` records the token's last use; a read leaves the token as it was (a GET never writes)."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None or not row.user.usable(now) or row.user.password_hash == NO_PASSWORD:
        return None
    if row.expires_at is None or row.expires_at <= now:
        return None
    if writes:
        row.last_used_at = now
    return row


def user_for_token(session: Session, token: str, now: dt.datetime, *, writes: bool) -> User | None:
    row = token_for(session, token, now, writes=writes)
    return None if row is None else row.user


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").replace(" ", "").lower().encode()).hexdigest()


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]


def matching_step(totp: pyotp.TOTP, code: str, now: dt.datetime) -> int | None:
    """The 30-second step whose code ``code`` is (within the window around ``now``), or None."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    current = totp.timecode(now)
    for offset in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(current + offset), code):
            return current + offset
    return None


class SignedIn(NamedTuple):
    user: User
    token: str
    #: What the holder should know (a reset of their account, failed logins since the last one).
    notes: list[str]


@dataclass(frozen=True)
class ActivationLink:
    """A link handed to an account's holder: shown once, only its token's SHA-256 is stored."""

    url: str
    expires_at: dt.datetime


@dataclass
class ActivationStep:
    """Step one of an activation done: the authenticator's address to confirm (None: no second
    factor is asked for here, and the account is active)."""

    otpauth_uri: str | None
    recovery_codes: list[str] = field(default_factory=list)


class Accounts:
    """The account use cases: signing in and out with a password and a second factor, activation,
    password changes and resets, API tokens, new accounts."""

    def __init__(
        self,
        db: Database,
        login_limit: RateLimiter,
        session_hours: int,
        now: Callable[[], dt.datetime],
        *,
        require_totp: bool = False,
        session_idle_minutes: int = 30,
        failures_before_backoff: int = 3,
        backoff_max_minutes: int = 15,
        failures_per_client: int = 30,
        lockout_minutes: int = 15,
        activation_hours: int = 72,
        public_base_url: str = "",
        timezone: str = "Asia/Shanghai",
        secrets: SecretBox,
    ) -> None:
        self.db = db
        self.secrets = secrets
        self.login_limit = login_limit
        self.session_hours = session_hours
        self.idle = dt.timedelta(minutes=session_idle_minutes)
        self.now = now
        self.require_totp = require_totp
        self.failures_before_backoff = failures_before_backoff
        self.backoff_max = dt.timedelta(minutes=backoff_max_minutes)
        self.failures_per_client = failures_per_client
        self.lockout = dt.timedelta(minutes=lockout_minutes)
        self.activation_ttl = dt.timedelta(hours=activation_hours)
        self.public_base_url = public_base_url.rstrip("/")
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.activity = SessionActivity(db)

    def _local(self, at: dt.datetime) -> str:
        return at.astimezone(self.tz).strftime("%Y年%m月%d日 %H:%M")

    def _totp(self, user: User) -> pyotp.TOTP | None:
        return None if user.totp_secret is None else pyotp.TOTP(self.secrets.open(user.id, user.totp_secret))

    def _new_totp(self, session: Session, user: User) -> pyotp.TOTP:
        session.flush()  # the account's id binds the sealed secret to it
        secret = pyotp.random_base32()
        user.totp_secret = self.secrets.seal(user.id, secret)
        return pyotp.TOTP(secret)

    def needs_totp(self, user: User) -> bool:
        """Everyone when the setting asks for it (production: always); anyone who turned it on."""
        return user.totp_enabled_at is not None or self.require_totp

    # --- sessions -----------------------------------------------------------------------------

    def session_user(self, session: Session, token: str) -> User | None:
        """The user of a browser session still alive (absolute end and idle timeout); its use is
        noted in memory (written in batches: a GET writes nothing)."""
        now = self.now()
        digest = token_hash(token)
        user = user_for_session(session, token, now, idle=self.idle, seen=self.activity.last(digest))
        if user is not None:
            self.activity.note(digest, now)
        return user

    # --- throttling ---------------------------------------------------------------------------

    def _throttle(self, session: Session, client: str, username: str, now: dt.datetime) -> None:
        """An exponential back-off for this account from this client (other clients, the holder's
        own among them, are not held up), and a cap on failures from this client."""
        failures, last = session.execute(
            select(func.count(), func.max(LoginFailure.at)).where(
                LoginFailure.username == username[:64],
                LoginFailure.client == client[:64],
                LoginFailure.at > now - PAIR_WINDOW,
            )
        ).one()
        if failures and last is not None and failures >= self.failures_before_backoff:
            wait = min(self.backoff_max, dt.timedelta(seconds=2 ** (failures - self.failures_before_backoff + 1)))
            if now < last + wait:
                seconds = math.ceil((last + wait - now).total_seconds())
                raise TooManyRequests(
                    seconds,
                    f"该账号在本机登录失败 {failures} 次，请 {seconds} 秒后再试（每多错一次，等待时间加倍）。"
                    "在其他设备上登录不受影响。",
                )
        by_client = session.scalar(
            select(func.count()).where(LoginFailure.client == client[:64], LoginFailure.at > now - self.lockout)
        )
        if (by_client or 0) >= self.failures_per_client:
            minutes = int(self.lockout.total_seconds() // 60)
            raise TooManyRequests(int(self.lockout.total_seconds()), f"本机登录失败次数过多，请 {minutes} 分钟后再试。")

    def _failed(self, client: str, username: str, now: dt.datetime, action: str = "auth.login_failed") -> None:
        """A failure, kept whatever the caller does next: counted for the back-off, and for the
        account's holder to see at their next login, and audited."""
        with self.db.session() as apart:
            apart.add(LoginFailure(at=now, username=username[:64], client=client[:64]))
            apart.execute(delete(LoginFailure).where(LoginFailure.at < now - max(PAIR_WINDOW, 4 * self.lockout)))
            apart.execute(
                update(User)
                .where(User.username == username[:64])
                .values(
                    failed_logins=User.failed_logins + 1, last_failed_login_at=now, last_failed_login_client=client[:64]
                )
            )
            record(apart, Actor(None, username[:64], None, client), action, "user", username[:64], now)
            apart.commit()

    # --- the second factor --------------------------------------------------------------------

    def _use_step(self, session: Session, user: User, step: int) -> bool:
        """Take the TOTP step for the account, once: False if it (or a later one) was used already.
        One conditional update, so two requests racing with the same code cannot both pass."""
        result = session.execute(
            update(User)
            .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
        taken = isinstance(result, CursorResult) and result.rowcount == 1
        if taken:
            set_committed_value(user, "totp_last_step", step)
        return taken

    def _second_factor(self, session: Session, client: str, user: User, otp: str) -> None:
        """``otp`` is the user's TOTP code of a step not used before, or an unused recovery code
        (used up); otherwise the failure is recorded and refused."""
        totp = self._totp(user)
        now = self.now()
        code = otp.strip().replace(" ", "")
        if totp is not None and code.isdigit() and len(code) == 6:
            step = matching_step(totp, code, now)
            if step is not None:
                if user.totp_last_step is not None and step <= user.totp_last_step:
                    self._failed(client, user.username, now, "auth.totp_replay")
                    raise TotpReplayed()
                if not self._use_step(session, user, step):
                    raise TotpReplayed()  # the same code, accepted a moment ago by another request
                if user.totp_secret is not None and not is_sealed(user.totp_secret):
                    user.totp_secret = self.secrets.seal(user.id, totp.secret)  # kept in clear by an older version
                return
        elif totp is not None:
            digest = _recovery_hash(code)
            remaining = list(user.recovery_codes or [])
            if digest in remaining:
                remaining.remove(digest)
                user.recovery_codes = remaining
                return
        self._failed(client, user.username, now, "auth.totp_failed")
        raise AuthFailed("动态口令或恢复码不正确。")

    # --- signing in ---------------------------------------------------------------------------

    def _notes(self, user: User) -> list[str]:
        notes = []
        if user.reset_at is not None and (user.last_login_at is None or user.reset_at > user.last_login_at):
            notes.append(
                f"您的账号于 {self._local(user.reset_at)} 被 {user.reset_by or '管理员'} 重置（密码与动态口令已清除，"
                "原有会话和 API 令牌已作废），之后由持激活链接的人重新激活。如非您本人申请，请立即联系教体局的安全管理员并修改密码。"
            )
        if user.failed_logins:
            last = (
                f"，最近一次在 {self._local(user.last_failed_login_at)}，来自 {user.last_failed_login_client}"
                if user.last_failed_login_at is not None
                else ""
            )
            notes.append(
                f"自上次登录以来，您的账号有 {user.failed_logins} 次登录失败（密码或动态口令错误{last}）。"
                "如非本人操作，请修改密码。"
            )
        return notes

    def sign_in(
        self,
        session: Session,
        client: str,
        username: str,
        password: str,
        previous: str | None = None,
        otp: str | None = None,
    ) -> SignedIn:
        """Check a password login from ``client`` and open a session; returns the user, the session
        token and what the holder should be told. The browser's ``previous`` session, if any, ends:
        a login always starts a fresh session (no fixation). A failure is recorded in the audit log
        (in a transaction of its own, so it stays even though the caller's work is rolled back)
        before AuthFailed is raised; a client over the login rate limit gets TooManyRequests."""
        wait = self.login_limit.hit("login:" + client)
        if wait:
            raise TooManyRequests(wait, f"登录尝试过于频繁，请 {wait} 秒后再试。")
        now = self.now()
        self._throttle(session, client, username, now)
        try:
            user = authenticate(session, username, password, now)
        except AuthFailed:
            self._failed(client, username, now)
            raise
        except AccountDisabled:
            self._failed(client, username, now, "auth.login_disabled")
            raise
        if self.needs_totp(user):
            if user.totp_enabled_at is None:
                if user.role == Role.SIGNER.value:  # only its holder enrols it, by activation
                    raise TotpNotEnrolled(
                        "您的账号须使用动态口令登录，但尚未开通。请联系教体局的安全管理员重置您的账号，"
                        "用交给您本人的激活链接设置密码并开通动态口令。"
                    )
                raise TotpNotEnrolled()
            if not otp:
                raise TotpRequired()
            self._second_factor(session, client, user, otp)
        if previous:
            end_session(session, previous)
        token = start_session(session, user, now, self.session_hours)
        session.refresh(user, ["failed_logins", "last_failed_login_at", "last_failed_login_client"])
        notes = self._notes(user)
        user.last_login_at = now
        user.failed_logins = 0
        session.execute(
            delete(LoginFailure).where(LoginFailure.username == user.username, LoginFailure.client == client[:64])
        )
        record(session, Actor(user.id, user.display_name, user.unit_id, client), "auth.login", "user", user.id, now)
        return SignedIn(user, token, notes)

    def sign_out(self, session: Session, token: str) -> None:
        self.activity.forget(token_hash(token))
        end_session(session, token)

    # --- API tokens ---------------------------------------------------------------------------

    def new_token(
        self,
        session: Session,
        user: User,
        name: str,
        days: int = 90,
        access: str = "write",
        domains: list[str] | None = None,
    ) -> tuple[ApiToken, str]:
        now = self.now()
        row, token = create_token(session, user, name, now, days, access, domains)
        record(
            session,
            Actor(user.id, user.display_name, user.unit_id),
            "auth.token_create",
            "api_token",
            row.id,
            now,
            name=name,
            days=days,
            access=access,
            domains=row.domains,
        )
        return row, token

    def revoke_token(self, session: Session, scope: Scope, token: ApiToken) -> None:
        """A user revokes their own token; the security administrator any token of an account in the district."""
        own = scope.user is not None and token.user_id == scope.user.id
        if not own and not (scope.has(Role.SECURITY_ADMIN) and token.user.unit_id in scope.manages):
            raise NotFoundForUser("未找到该令牌。")
        if token.revoked_at is None:
            token.revoked_at = self.now()
            record(session, scope.actor, "auth.token_revoke", "api_token", token.id, self.now(), name=token.name)
        session.flush()

    # --- passwords, resets, activation ----------------------------------------------------------

    def change_password(self, session: Session, user: User, current: str, new: str) -> str:
        """The user changes their password (giving the current one); every other session ends, their
        API tokens are revoked, and a new session starts, whose token is returned."""
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
        revoked = revoke_all_tokens(session, user, now)
        record(
            session,
            Actor(user.id, user.display_name, user.unit_id),
            "auth.password_change",
            "user",
            user.id,
            now,
            tokens_revoked=revoked,
        )
        return start_session(session, user, now, self.session_hours)

    def _activation_link(self, session: Session, user: User, reason: str, by: str) -> ActivationLink:
        """A new one-time link for the account (an earlier unused one stops working)."""
        now = self.now()
        session.execute(delete(Activation).where(Activation.user_id == user.id, Activation.used_at.is_(None)))
        token = secrets.token_urlsafe(32)
        row = Activation(
            user_id=user.id,
            token_hash=token_hash(token),
            reason=reason,
            created_at=now,
            created_by=by[:160],
            expires_at=now + self.activation_ttl,
        )
        session.add(row)
        session.flush()
        return ActivationLink(f"{self.public_base_url}{ACTIVATION_PATH}{token}", row.expires_at)

    @staticmethod
    def _by(scope: Scope) -> str:
        """Who acts, as the holder will read it: a name with its unit, or the command line's operator."""
        return scope.actor.label

    def reset_password(self, session: Session, scope: Scope, user: User) -> ActivationLink:
        """The security administrator (安全管理员) resets an account of the district: its password and
        second factor are cleared, its sessions end and its API tokens are revoked, and its holder
        activates it again with the link returned (to hand over). The administrator never holds a
        password of the account; the holder is told of the reset (when, by whom) at their next
        login. An administrator's account is reset on the command line only."""
        now = self._managed(scope, user, "重置", Role.SECURITY_ADMIN)
        user.password_hash = NO_PASSWORD
        user.totp_secret = None
        user.totp_enabled_at = None
        user.totp_last_step = None
        user.recovery_codes = None
        user.must_change_password = False
        user.reset_at = now
        user.reset_by = self._by(scope)[:160]
        end_all_sessions(session, user)
        revoked = revoke_all_tokens(session, user, now)
        link = self._activation_link(session, user, "reset", self._by(scope))
        record(
            session,
            scope.actor,
            "user.password_reset",
            "user",
            user.id,
            now,
            username=user.username,
            tokens_revoked=revoked,
            activation_expires_at=link.expires_at.isoformat(),
        )
        return link

    # --- the account's life: disable, enable, role, end date, dormant accounts ------------------

    def _managed(self, scope: Scope, user: User, what: str, role: Role) -> dt.datetime:
        """An administrator of ``role`` (or the operator) manages the accounts of the district's
        units, never their own; another administrator's account only on the command line."""
        scope.require(role, message=f"只有{ROLE_TITLES[role]}可以{what}账号。")
        if user.unit_id not in scope.manages:
            raise NotFoundForUser("未找到该账号。")
        if scope.user is not None and user.id == scope.user.id:
            raise scope.refuse(f"不能{what}自己的账号。" + ("请使用修改密码。" if what == "重置" else ""))
        if scope.user is not None and is_admin(user.role):
            raise scope.refuse(ADMIN_ON_SERVER)
        return self.now()

    def _cut_off(self, session: Session, user: User, now: dt.datetime) -> int:
        """Its sessions end and its API tokens are revoked; how many tokens were."""
        end_all_sessions(session, user)
        return revoke_all_tokens(session, user, now)

    def disable(self, session: Session, scope: Scope, user: User, reason: str) -> None:
        """The account can no longer be used (a principal who left, a lost phone): its sessions end
        and its tokens are revoked at once; its documents and history stay."""
        now = self._managed(scope, user, "停用", Role.SYSTEM_ADMIN)
        reason = " ".join(reason.split())
        if not reason or len(reason) > 200:
            raise UserInvalid("请写明停用原因（不超过200个字）。")
        if not user.active:
            raise UserInvalid("该账号已经停用。")
        user.active, user.disabled_at, user.disabled_reason = False, now, reason
        revoked = self._cut_off(session, user, now)
        session.flush()
        record(session, scope.actor, "user.disabled", "user", user.id, now, reason=reason, tokens_revoked=revoked)

    def enable(self, session: Session, scope: Scope, user: User) -> None:
        """A disabled account is usable again (with the password and second factor it had; its
        tokens stay revoked). An account disabled for not being used is usually better reset."""
        now = self._managed(scope, user, "启用", Role.SYSTEM_ADMIN)
        if user.active:
            raise UserInvalid("该账号没有停用。")
        before = user.disabled_reason
        user.active, user.disabled_at, user.disabled_reason = True, None, None
        user.last_login_at = user.last_login_at or now  # not disabled again as dormant by the next run
        session.flush()
        record(session, scope.actor, "user.enabled", "user", user.id, now, was=before)

    def change_role(self, session: Session, scope: Scope, user: User, role: str) -> None:
        """Another role within its unit. Never into 签署人: a signer's account is new, and its holder
        sets it up with their own activation link (nobody gains a seal by administration). The
        account's sessions end and its tokens are revoked: they were granted for the old role."""
        now = self._managed(scope, user, "修改角色", Role.SECURITY_ADMIN)
        try:
            new = Role(role)
        except ValueError:
            raise UserInvalid("角色应为 bureau_staff、office_staff 或 unit_signer。") from None
        if new.value == user.role:
            raise UserInvalid("该账号已经是这个角色。")
        if is_admin(new.value):
            raise scope.refuse(ADMIN_ON_SERVER)
        if new is Role.SIGNER:
            raise scope.refuse("不能把账号改为签署人：签署人账号须新建，由本人用激活链接设置密码并开通动态口令。")
        if UnitType(user.unit.type) not in ROLE_UNITS[new]:
            raise UserInvalid(f"「{ROLE_TITLES[new]}」不能属于{user.unit.name}这类单位。")
        before = user.role
        user.role = new.value
        revoked = self._cut_off(session, user, now)
        session.flush()
        record(
            session,
            scope.actor,
            "user.role_changed",
            "user",
            user.id,
            now,
            before=before,
            after=new.value,
            tokens_revoked=revoked,
        )

    def set_expiry(self, session: Session, scope: Scope, user: User, expires_at: dt.datetime | None) -> None:
        """A temporary account (a substitute, an inspector) ends at ``expires_at``; None: no end."""
        now = self._managed(scope, user, "设置到期时间", Role.SYSTEM_ADMIN)
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise UserInvalid("到期时间须带时区，例如 2025-07-31T17:00:00+08:00。")
            if expires_at <= now:
                raise UserInvalid("到期时间须晚于现在；要立即停用账号请用“停用”。")
        before = user.expires_at
        user.expires_at = expires_at
        session.flush()
        record(
            session,
            scope.actor,
            "user.expiry_set",
            "user",
            user.id,
            now,
            before=before.isoformat() if before else None,
            after=expires_at.isoformat() if expires_at else None,
        )

    def disable_dormant(self, session: Session, days: int) -> list[User]:
        """Accounts unused for ``days`` days (the daily job): disabled, each audited. An account
        never signed in to counts from when it was made; one waiting for activation is left to its
        link. Returns those disabled."""
        now = self.now()
        since = now - dt.timedelta(days=days)
        candidates = session.scalars(
            select(User).where(User.active, User.password_hash != NO_PASSWORD, User.created_at < since)
        ).all()
        dormant = [u for u in candidates if (u.last_login_at or u.created_at) < since]
        for user in dormant:
            user.active, user.disabled_at = False, now
            user.disabled_reason = f"连续 {days} 天未登录，自动停用"
            self._cut_off(session, user, now)
            record(session, SYSTEM, "user.disabled_dormant", "user", user.id, now, days=days)
        session.flush()
        return dormant

    def _live_activation(self, session: Session, token: str) -> Activation:
        row = session.scalar(select(Activation).where(Activation.token_hash == token_hash(token)))
        if row is None or row.used_at is not None or not row.user.usable(self.now()):
            raise ActivationInvalid()
        if row.expires_at <= self.now():
            raise ActivationExpired()
        return row

    def activation(self, session: Session, token: str) -> Activation:
        """The live activation of a link (reading it changes nothing)."""
        return self._live_activation(session, token)

    def activate(
        self, session: Session, client: str, token: str, password: str, signed_in: User | None = None
    ) -> ActivationStep:
        """Step one: the holder chooses a password. Where a second factor is required, a new TOTP
        secret is returned to enrol and the password waits for its first code; otherwise the
        account is active now. Refused in a browser signed in to an account (the link is for its
        holder, not for the staff who handed it over)."""
        row = self._live_activation(session, token)
        if signed_in is not None:
            record_when_done(
                session,
                Actor(signed_in.id, signed_in.display_name, signed_in.unit_id, client),
                "user.activation_refused",
                "user",
                row.user_id,
                self.now(),
                reason="signed_in",
            )
            raise ActivationSignedIn()
        user = row.user
        if problem := password_problem(password, user.username):
            raise UserInvalid(problem)
        if not self.require_totp:
            user.password_hash = hash_password(password)
            self._activated(session, row, client)
            return ActivationStep(None)
        secret = pyotp.random_base32()
        row.pending_password_hash = hash_password(password)
        row.pending_totp_secret = self.secrets.seal(user.id, secret)
        session.flush()
        return ActivationStep(pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER))

    def pending_activation_uri(self, row: Activation) -> str | None:
        if row.pending_totp_secret is None:
            return None
        secret = self.secrets.open(row.user_id, row.pending_totp_secret)
        return pyotp.TOTP(secret).provisioning_uri(name=row.user.username, issuer_name=TOTP_ISSUER)

    def confirm_activation(
        self, session: Session, client: str, token: str, code: str, signed_in: User | None = None
    ) -> list[str]:
        """Step two: the first code of the new second factor confirms it and the password; the
        account is active, and its recovery codes are returned (shown once)."""
        row = self._live_activation(session, token)
        if signed_in is not None:
            record_when_done(
                session,
                Actor(signed_in.id, signed_in.display_name, signed_in.unit_id, client),
                "user.activation_refused",
                "user",
                row.user_id,
                self.now(),
                reason="signed_in",
            )
            raise ActivationSignedIn()
        if row.pending_password_hash is None or row.pending_totp_secret is None:
            raise UserInvalid("请先设置密码。")
        user = row.user
        secret = self.secrets.open(user.id, row.pending_totp_secret)
        step = matching_step(pyotp.TOTP(secret), code, self.now())
        if step is None:
            raise UserInvalid("动态口令不正确，请核对手机验证器中的 6 位数字。")
        user.password_hash = row.pending_password_hash
        user.totp_secret = self.secrets.seal(user.id, secret)
        user.totp_enabled_at = self.now()
        user.totp_last_step = step  # the code that confirmed it cannot log in too
        codes = new_recovery_codes()
        user.recovery_codes = [_recovery_hash(c) for c in codes]
        self._activated(session, row, client)
        return codes

    def _activated(self, session: Session, row: Activation, client: str) -> None:
        """The link is used up (once: a conditional update, so two racing requests cannot both
        use it); the account's sessions and tokens from before end."""
        now = self.now()
        used = session.execute(
            update(Activation)
            .where(Activation.id == row.id, Activation.used_at.is_(None))
            .values(used_at=now, pending_password_hash=None, pending_totp_secret=None)
            .execution_options(synchronize_session=False)
        )
        if not (isinstance(used, CursorResult) and used.rowcount == 1):
            raise ActivationInvalid()
        user = row.user
        user.must_change_password = False
        user.password_changed_at = now
        end_all_sessions(session, user)
        revoke_all_tokens(session, user, now)
        record(
            session,
            Actor(user.id, user.display_name, user.unit_id, client),
            "user.activate",
            "user",
            user.id,
            now,
            reason=row.reason,
            link_by=row.created_by,
            totp=user.totp_enabled_at is not None,
        )
        session.flush()

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
        step = None if totp is None else matching_step(totp, code, self.now())
        if step is None:
            raise UserInvalid("动态口令不正确，请核对手机验证器中的 6 位数字。")
        codes = new_recovery_codes()
        user.recovery_codes = [_recovery_hash(c) for c in codes]
        user.totp_enabled_at = self.now()
        user.totp_last_step = step
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
        if is_admin(delegate.role):
            problems.append("管理员账号不能受托签署")
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
        """The operator (``docsign user totp``) turns the second factor on for a staff account at
        once; returns the secret's address and the recovery codes, to hand to the person. A signer
        enrols their own at activation: nobody else may hold the second factor of a seal."""
        if user.role == Role.SIGNER.value:
            raise UserInvalid(
                "签署人（单位负责人）的动态口令只能由本人在激活账号时开通；如需更换，请由安全管理员重置账号并把激活链接交给本人。"
            )
        totp = self._new_totp(session, user)
        codes = new_recovery_codes()
        user.recovery_codes = [_recovery_hash(c) for c in codes]
        user.totp_enabled_at = self.now()
        end_all_sessions(session, user)
        record(session, scope.actor, "user.totp_enroll", "user", user.id, self.now(), username=user.username)
        return totp.provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER), codes

    def add_user(
        self,
        session: Session,
        scope: Scope,
        *,
        username: str,
        password: str | None,
        display_name: str,
        role: str,
        unit: Unit,
    ) -> tuple[User, ActivationLink | None]:
        """The system administrator (系统管理员, or the operator) creates an account for one of the
        district's units. A signer's account, and any account created without a password, gets no
        usable password: its holder sets one (and the second factor) with the activation link
        returned, to hand over. The three administrators' accounts are made on the command line."""
        scope.require(Role.SYSTEM_ADMIN, message="只有系统管理员可以创建账号。")
        if unit.id not in scope.manages:
            raise NotFoundForUser("未找到该单位。")
        if scope.user is not None and is_admin(role):
            raise scope.refuse(ADMIN_ON_SERVER)
        if role == Role.SIGNER.value and password is not None:
            raise UserInvalid(
                "签署人（单位负责人）账号不能由他人设定密码：创建后把激活链接交给本人，由本人设置密码并开通动态口令。"
            )
        user = create_user(
            session, username=username, password=password, display_name=display_name, role=role, unit=unit
        )
        link = self._activation_link(session, user, "create", self._by(scope)) if password is None else None
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
            activation=link is not None,
        )
        return user, link
