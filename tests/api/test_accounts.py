"""Accounts over HTTP: a second factor for everyone with single-use codes, activation links instead
of passwords handed over, resets that go through activation again, sessions that end, tokens that
do not outlive their owner's credentials, password rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.accounts.errors import UserInvalid
from service.accounts.models import ApiToken, LoginSession, User
from service.accounts.scope import Scope
from service.accounts.service import Accounts, create_user, token_hash
from service.audit.models import AuditEvent
from service.limits import MemoryRateLimiter
from tests.api.conftest import PASSWORD, Service, bootstrap_bureau, csrf_cookie, running_service

PRINCIPAL_PASSWORD = "zhao-ming-own-secret-9"


def _login(service: Service, username: str, password: str = PASSWORD, otp: str | None = None) -> dict[str, Any]:
    service.client.cookies.clear()
    body = {"username": username, "password": password} | ({"otp": otp} if otp else {})
    r = service.client.post("/api/auth/login", json=body)
    if r.status_code == 200:
        service.client.headers["X-CSRF-Token"] = csrf_cookie(service.client)
    return {"status": r.status_code} | dict(r.json())


def _enrol_bureau(service: Service, username: str = "bureau") -> pyotp.TOTP:
    """A first account's second factor (the bureau's, an administrator's), as `docsign add-user`
    prints it at installation."""
    with service.state.db.session() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        uri, _ = service.state.accounts.enroll_totp(s, Scope.operator(s, user.unit), user)
        s.commit()
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    return totp


def _next_window(service: Service) -> None:
    """The clock moves to one second past the start of the next 30-second window, so that the
    steps that follow are not carried into another window by the real seconds the test takes
    (the test clock is the wall clock plus an offset)."""
    now = service.clock.now().timestamp()
    service.clock.advance(dt.timedelta(seconds=30 - now % 30 + 1))


def _next_code(service: Service, totp: pyotp.TOTP) -> str:
    """A code of a step not used yet."""
    _next_window(service)
    return totp.at(service.clock.now())


def _bureau_in(service: Service, totp: pyotp.TOTP, username: str = "bureau") -> None:
    assert _login(service, username, otp=_next_code(service, totp))["status"] == 200


def _new_signer(service: Service, username: str = "sh-head") -> str:
    """The system administrator creates a signer account (no password): the activation link it gets."""
    unit_id = service.client.get("/api/auth/me").json()["unit_id"]
    r = service.client.post(
        "/api/users", json={"username": username, "display_name": "赵明", "role": "unit_signer", "unit_id": unit_id}
    )
    assert r.status_code == 201, r.text
    assert r.json()["activation_pending"] is True and not {"password", "temporary_password"} & set(r.json())
    return str(r.json()["activation"]["activation_url"])


def _holder_activates(service: Service, url: str, password: str = PRINCIPAL_PASSWORD) -> pyotp.TOTP:
    """The principal, on their own phone: sets the password, enrols the second factor."""
    phone = TestClient(service.client.app)
    token = url.rsplit("/", 1)[-1]
    info = phone.get(f"/api/activation/{token}").json()
    assert info["username"] and info["totp_required"] is True
    r = phone.post(f"/api/activation/{token}", json={"password": password})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    totp = pyotp.parse_uri(r.json()["otpauth_uri"])
    assert isinstance(totp, pyotp.TOTP)
    _next_window(service)
    r = phone.post(f"/api/activation/{token}/confirm", json={"code": totp.at(service.clock.now())})
    assert r.status_code == 200 and len(r.json()["recovery_codes"]) == 10, r.text
    return totp


def _actions(service: Service, action: str) -> list[AuditEvent]:
    with service.state.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_everyone_needs_a_second_factor_and_a_code_works_once(tmp_path: Path) -> None:
    with running_service(tmp_path, require_totp=True) as service:
        bootstrap_bureau(service)
        c = service.client
        # enforced but not enrolled: refused, saying how to enrol
        r = _login(service, "bureau")
        assert r["status"] == 403 and r["code"] == "TOTP_NOT_ENROLLED" and "docsign user totp" in r["message"]
        totp = _enrol_bureau(service)
        # a correct password without the code is refused; a wrong code too (and counted as a failure)
        assert _login(service, "bureau")["code"] == "TOTP_REQUIRED"
        code = _next_code(service, totp)
        wrong = "000000" if code != "000000" else "111111"
        r = _login(service, "bureau", otp=wrong)
        assert r["status"] == 401 and "动态口令" in r["message"]
        assert _login(service, "bureau", otp=code)["status"] == 200
        # the same code again, within its window (a code seen over a shoulder, or replayed): refused, audited
        r = _login(service, "bureau", otp=code)
        assert r["status"] == 401 and r["code"] == "TOTP_REPLAYED" and "已经用过" in r["message"]
        assert [e.actor for e in _actions(service, "auth.totp_replay")] == ["bureau"]
        # an earlier step's code, still inside the window, is a replay too
        service.clock.advance(dt.timedelta(seconds=30))
        earlier = totp.at(service.clock.now() - dt.timedelta(seconds=30))  # the window before: `code`'s
        assert earlier == code and _login(service, "bureau", otp=earlier)["code"] == "TOTP_REPLAYED"
        assert _login(service, "bureau", otp=totp.at(service.clock.now()))["status"] == 200

        # a signer needs it too: enrolled by its holder at activation, never by the operator
        _bureau_in(service, _enrol_bureau(service, "sysadmin"), "sysadmin")
        url = _new_signer(service)
        with service.state.db.session() as s:
            signer = s.scalars(select(User).where(User.username == "sh-head")).one()
            try:
                service.state.accounts.enroll_totp(s, Scope.operator(s, signer.unit), signer)
            except UserInvalid as exc:
                assert "本人" in exc.message
            else:
                raise AssertionError("the operator enrolled a signer's second factor")
        own = _holder_activates(service, url)
        assert _login(service, "sh-head", PRINCIPAL_PASSWORD)["code"] == "TOTP_REQUIRED"
        # the code that confirmed the enrolment cannot log in as well
        assert _login(service, "sh-head", PRINCIPAL_PASSWORD, own.at(service.clock.now()))["code"] == "TOTP_REPLAYED"
        me = _login(service, "sh-head", PRINCIPAL_PASSWORD, _next_code(service, own))
        assert me["status"] == 200 and me["totp_enabled"] is True
        assert [n for n in me["notes"] if "1 次登录失败" in n], me["notes"]  # the replay, told to the holder
        assert c.get("/api/auth/me").json()["username"] == "sh-head"

        # a signer from before (a password, no second factor) is sent to the security administrator for a reset
        with service.state.db.session() as s:
            unit = s.scalars(select(User).where(User.username == "sh-head")).one().unit
            create_user(s, username="old-head", password=PASSWORD, display_name="钱红", role="unit_signer", unit=unit)
            s.commit()
        r = _login(service, "old-head")
        assert r["code"] == "TOTP_NOT_ENROLLED" and "重置" in r["message"] and "激活链接" in r["message"]


def test_the_administrators_cannot_end_up_holding_a_signers_login(tmp_path: Path) -> None:
    """Every way an administrator might sign as a school: the system administrator creates the
    signer and logs in, or uses the activation link themselves; the security administrator resets
    the principal and logs in, enrols its second factor, makes a token for it. Each fails; the
    principal is told of the reset at their next login."""
    with running_service(tmp_path, require_totp=True) as service:
        bootstrap_bureau(service)
        c = service.client
        system = _enrol_bureau(service, "sysadmin")
        security = _enrol_bureau(service, "secadmin")
        _bureau_in(service, system, "sysadmin")
        unit_id = c.get("/api/auth/me").json()["unit_id"]

        # 1. create the signer with a password of the administrator's choosing: refused
        r = c.post(
            "/api/users",
            json={
                "username": "sh-head",
                "password": "admin-chosen-pw-1",
                "display_name": "赵明",
                "role": "unit_signer",
                "unit_id": unit_id,
            },
        )
        assert r.status_code == 422 and "激活链接" in r.json()["message"]
        # created without one: nothing to log in with (no password works, not even an empty one)
        url = _new_signer(service)
        for guess in ("admin-chosen-pw-1", PASSWORD, "!activation-pending"):
            assert _login(service, "sh-head", guess or "x")["status"] == 401
        # 2. the administrator opens the link itself in its signed-in browser: refused, audited
        _bureau_in(service, system, "sysadmin")
        token = url.rsplit("/", 1)[-1]
        r = c.post(f"/api/activation/{token}", json={"password": "admin-chosen-pw-2"})
        assert r.status_code == 409 and r.json()["code"] == "ACTIVATION_SIGNED_IN"
        assert [e.actor for e in _actions(service, "user.activation_refused")] == ["高峰"]
        # the principal activates it on their own phone
        own = _holder_activates(service, url)
        assert _login(service, "sh-head", PRINCIPAL_PASSWORD, _next_code(service, own))["status"] == 200
        principal_token = c.post("/api/auth/tokens", json={"name": "学籍系统"}).json()
        principal_cookie = c.cookies["docsign_session"]

        # 3. the system administrator may not reset; the security administrator gets a link, never a
        # password; the old credentials, the principal's session and tokens all stop working
        _bureau_in(service, system, "sysadmin")
        with service.state.db.session() as s:
            signer_id = s.scalars(select(User.id).where(User.username == "sh-head")).one()
        r = c.post(f"/api/users/{signer_id}/reset-password")
        assert r.status_code == 403 and "安全管理员" in r.json()["message"]
        _bureau_in(service, security, "secadmin")
        r = c.post(f"/api/users/{signer_id}/reset-password")
        assert r.status_code == 200 and set(r.json()) == {"activation_url", "expires_at", "note"}
        reset_url = r.json()["activation_url"]
        assert "temporary_password" not in r.text
        assert _login(service, "sh-head", PRINCIPAL_PASSWORD, _next_code(service, own))["status"] == 401
        c.cookies.clear()
        c.cookies.set("docsign_session", principal_cookie)
        assert c.get("/api/auth/me").status_code == 401
        bearer = {"Authorization": f"Bearer {principal_token['token']}"}
        assert c.get("/api/auth/me", headers=bearer).status_code == 401
        c.cookies.clear()
        # 4. the operator's enrolment of its second factor: refused (see the test above); and a token
        # the administrator makes is its own, whatever it asks for
        _bureau_in(service, security, "secadmin")
        mine = c.post("/api/auth/tokens", json={"name": "对接", "user_id": signer_id}).json()
        assert c.get("/api/auth/me", headers={"Authorization": f"Bearer {mine['token']}"}).json()["username"] == (
            "secadmin"
        )
        # ... and its signed-in browser cannot use the reset link either
        r = c.post(f"/api/activation/{reset_url.rsplit('/', 1)[-1]}", json={"password": "admin-chosen-pw-3"})
        assert r.status_code == 409

        # the principal activates again (new password, new second factor) and is told of the reset
        again = _holder_activates(service, reset_url, "zhao-ming-new-secret-4")
        assert again.secret != own.secret
        me = _login(service, "sh-head", "zhao-ming-new-secret-4", _next_code(service, again))
        # (the try with the old password after the reset is one failure the principal is told of too)
        assert me["status"] == 200 and len(me["notes"]) == 2, me["notes"]
        assert "被 孟琳（济南市历城区教育和体育局） 重置" in me["notes"][0] and "1 次登录失败" in me["notes"][1]
        # told once
        assert _login(service, "sh-head", "zhao-ming-new-secret-4", _next_code(service, again))["notes"] == []
        with service.state.db.session() as s:
            tokens = s.scalars(select(ApiToken).where(ApiToken.user_id == signer_id)).all()
            assert tokens and all(t.revoked_at is not None for t in tokens)
        reset = _actions(service, "user.password_reset")
        assert len(reset) == 1 and reset[0].detail["tokens_revoked"] == 1
        assert [e.detail["reason"] for e in _actions(service, "user.activate")] == ["create", "reset"]


def test_bureau_staff_try_every_way_to_gain_a_schools_seal_and_fail_each(tmp_path: Path) -> None:
    """Bureau staff no longer administer accounts: creating a signer (or any account), resetting
    the principal, changing a role, disabling or ending an account, revoking or making a token for
    someone else, recording a delegation for the school: each refused, and the principal's login
    stays the principal's own."""
    from tests.api.conftest import setup_licheng

    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        with service.state.db.session() as s:
            head = s.scalars(select(User).where(User.username == "wsr-sh-head")).one()
            head_id, head_hash = head.id, head.password_hash
        service.login("wsr-sh-head")
        principal_token = c.post("/api/auth/tokens", json={"name": "学籍系统"}).json()
        service.login("bureau")
        bureau_id = c.get("/api/auth/me").json()["id"]
        school = units["WSR-SH"]
        body = {"username": "sh-seal", "display_name": "赵明", "role": "unit_signer", "unit_id": school}
        attempts = [
            c.post("/api/users", json=body),
            c.post("/api/users", json=body | {"password": "bureau-chosen-pw-1"}),
            c.post("/api/users", json=body | {"role": "bureau_staff", "unit_id": units["LCJT"]}),
            c.post(f"/api/users/{head_id}/reset-password"),
            c.post(f"/api/users/{head_id}/role", json={"role": "office_staff"}),
            c.post(f"/api/users/{head_id}/disable", json={"reason": "调离"}),
            c.put(f"/api/users/{head_id}/expiry", json={"expires_at": None}),
            c.post(f"/api/auth/tokens/{principal_token['id']}/revoke"),
            c.post(
                f"/api/units/{school}/delegations",
                json={"user_id": bureau_id, "starts_on": "2020-01-01", "ends_on": "2030-01-01", "reason": "代签"},
            ),
        ]
        assert [r.status_code for r in attempts] == [403, 403, 403, 403, 403, 403, 403, 404, 403], [
            (r.status_code, r.text[:120]) for r in attempts
        ]
        assert "系统管理员" in attempts[0].json()["message"] and attempts[0].json()["code"] == "FORBIDDEN"
        assert "安全管理员" in attempts[3].json()["message"]
        # a token the bureau makes is its own, whatever it names
        mine = c.post("/api/auth/tokens", json={"name": "对接", "user_id": head_id}).json()
        assert c.get("/api/auth/me", headers={"Authorization": f"Bearer {mine['token']}"}).json()["username"] == (
            "bureau"
        )
        with service.state.db.session() as s:
            head = s.get(User, head_id)
            assert head is not None and head.password_hash == head_hash and head.role == "unit_signer" and head.active
            assert s.scalar(select(User).where(User.username == "sh-seal")) is None
        assert not _actions(service, "user.password_reset") and not _actions(service, "user.role_changed")
        assert c.get("/api/auth/me", headers={"Authorization": f"Bearer {principal_token['token']}"}).status_code == 200
        # each refusal is in the audit log, for the audit administrator to see
        denied = _actions(service, "access.denied")
        assert len([e for e in denied if e.actor_user_id == bureau_id]) >= 8


def test_an_activation_link_works_once_and_expires(tmp_path: Path) -> None:
    with running_service(tmp_path, require_totp=True) as service:
        bootstrap_bureau(service)
        c = service.client
        totp = _enrol_bureau(service, "sysadmin")
        security = _enrol_bureau(service, "secadmin")
        _bureau_in(service, totp, "sysadmin")
        url = _new_signer(service)
        _holder_activates(service, url)
        phone = TestClient(service.client.app)
        token = url.rsplit("/", 1)[-1]
        r = phone.post(f"/api/activation/{token}", json={"password": "someone-else-pw-7"})
        assert r.status_code == 404 and r.json()["code"] == "ACTIVATION_INVALID"
        assert phone.get(f"/api/activation/{token}").status_code == 404
        assert phone.get("/api/activation/not-a-token").status_code == 404

        # a second account's link, left for longer than 72 hours
        _bureau_in(service, totp, "sysadmin")
        late = _new_signer(service, "xd-head").rsplit("/", 1)[-1]
        assert phone.get(f"/api/activation/{late}").status_code == 200  # reading it changes nothing
        service.clock.advance(dt.timedelta(hours=service.settings.activation_hours, seconds=1))
        r = phone.post(f"/api/activation/{late}", json={"password": "own-secret-of-xd-7"})
        assert r.status_code == 410 and r.json()["code"] == "ACTIVATION_EXPIRED"
        # a step one without its code leaves the account without a password
        _bureau_in(service, security, "secadmin")
        with service.state.db.session() as s:
            xd_id = s.scalars(select(User.id).where(User.username == "xd-head")).one()
        fresh = c.post(f"/api/users/{xd_id}/reset-password").json()["activation_url"].rsplit("/", 1)[-1]
        assert phone.post(f"/api/activation/{fresh}", json={"password": "own-secret-of-xd-7"}).status_code == 200
        assert _login(service, "xd-head", "own-secret-of-xd-7")["status"] == 401
        # a weak password is refused at activation as anywhere
        r = phone.post(f"/api/activation/{fresh}", json={"password": "woaini1314"})
        assert r.status_code == 422 and "太常见" in r.json()["message"]


def test_sessions_end_after_idle_time_and_after_their_lifetime(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        idle = service.settings.session_idle_minutes
        assert idle == 30 and service.settings.session_hours == 12
        service.login("bureau")
        for _ in range(3):  # in use: alive
            service.clock.advance(dt.timedelta(minutes=idle - 1))
            assert c.get("/api/auth/me").status_code == 200
        service.clock.advance(dt.timedelta(minutes=idle, seconds=1))
        assert c.get("/api/auth/me").status_code == 401
        assert (
            c.get("/units", headers={"accept": "text/html"}, follow_redirects=False)
            .headers["location"]
            .startswith("/login")
        )

        # the use is written in batches, and another server process sees it
        service.login("bureau")
        session_hash = token_hash(c.cookies["docsign_session"])
        service.clock.advance(dt.timedelta(minutes=idle - 1))
        assert c.get("/api/auth/me").status_code == 200
        service.state.flush_batches()
        with service.state.db.session() as s:
            row = s.get(LoginSession, session_hash)
            assert row is not None and row.last_seen_at is not None
            assert abs(row.last_seen_at - service.clock.now()) < dt.timedelta(seconds=5)
            other = Accounts(
                service.state.db, MemoryRateLimiter(100), 12, service.clock.now, secrets=service.state.accounts.secrets
            )
            service.clock.advance(dt.timedelta(minutes=idle - 1))
            assert other.session_user(s, c.cookies["docsign_session"]) is not None

        # however busy, a session ends 12 hours after its login
        service.login("bureau")
        for _ in range(12 * 60 // 25):
            service.clock.advance(dt.timedelta(minutes=25))
            assert c.get("/api/auth/me").status_code == 200
        service.clock.advance(dt.timedelta(minutes=12 * 60 % 25, seconds=1))
        assert c.get("/api/auth/me").status_code == 401


def test_tokens_expire_are_revoked_with_the_password_and_may_only_read(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        service.login("bureau")
        short = c.post("/api/auth/tokens", json={"name": "临时", "days": 1}).json()
        kept = c.post("/api/auth/tokens", json={"name": "学籍系统"}).json()
        reader = c.post("/api/auth/tokens", json={"name": "统计", "access": "read"}).json()
        assert c.post("/api/auth/tokens", json={"name": "太久", "days": 400}).status_code == 422
        assert dt.datetime.fromisoformat(kept["expires_at"]) > service.clock.now() + dt.timedelta(days=89)
        listed = {t["name"]: t for t in c.get("/api/auth/tokens").json()}
        assert set(listed) == {"临时", "学籍系统", "统计"} and "token" not in listed["临时"]
        assert listed["统计"]["access"] == "read"

        def me(token: str) -> int:
            return c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code

        c.cookies.clear()
        # a read-only token reads, and is refused any write
        assert me(reader["token"]) == 200
        r = c.post(
            "/api/auth/tokens", json={"name": "再来一个"}, headers={"Authorization": f"Bearer {reader['token']}"}
        )
        assert r.status_code == 403 and r.json()["code"] == "TOKEN_READ_ONLY"
        assert me(short["token"]) == 200 and me(kept["token"]) == 200
        service.clock.advance(dt.timedelta(days=1, seconds=1))
        assert me(short["token"]) == 401  # expired
        assert me(kept["token"]) == 200
        r = c.post(f"/api/auth/tokens/{kept['id']}/revoke", headers={"Authorization": f"Bearer {kept['token']}"})
        assert r.status_code == 200 and r.json()["revoked_at"]
        assert me(kept["token"]) == 401  # revoked

        # a password change revokes every token of the account
        service.login("bureau")
        survivor = c.post("/api/auth/tokens", json={"name": "对接"}).json()
        assert me(survivor["token"]) == 200
        r = c.post("/api/auth/password", json={"current_password": PASSWORD, "new_password": "a-new-long-secret-7"})
        assert r.status_code == 200
        assert me(survivor["token"]) == 401 and me(reader["token"]) == 401
        [changed] = _actions(service, "auth.password_change")
        assert changed.detail["tokens_revoked"] == 3  # every one not revoked yet, the expired one too


def test_a_token_limited_to_some_domains_is_refused_everywhere_else(tmp_path: Path) -> None:
    """A 学籍 system that only fetches rosters and ledgers gets a token for those two groups of the
    API: it works there and is refused (403 TOKEN_OUT_OF_SCOPE, in Chinese) in every other group."""
    from fastapi.routing import APIRoute

    from service.http.deps import DOMAIN_OF_TAG

    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        service.login("bureau")
        r = c.post("/api/auth/tokens", json={"name": "学籍系统", "domains": ["rosters", "ledgers"], "access": "read"})
        assert r.status_code == 200 and r.json()["domains"] == ["ledgers", "rosters"], r.text
        token = r.json()["token"]
        r = c.post("/api/auth/tokens", json={"name": "乱填", "domains": ["everything"]})
        assert r.status_code == 422 and "rosters（名单与批量通知书）" in r.json()["message"]
        assert c.post("/api/auth/tokens", json={"name": "空", "domains": []}).status_code == 422
        assert [t["domains"] for t in c.get("/api/auth/tokens").json()] == [["ledgers", "rosters"]]
        c.cookies.clear()
        bearer = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/rosters", headers=bearer).status_code == 200
        for path, group in (
            ("/api/cases", "辍学个案与通知书"),
            ("/api/campaigns", "签署任务"),
            ("/api/auth/me", "登录与账号"),
        ):
            r = c.get(path, headers=bearer)
            assert r.status_code == 403 and r.json()["code"] == "TOKEN_OUT_OF_SCOPE", (path, r.text)
            assert (
                f"不能用于「{group}」接口" in r.json()["message"]
                and "台账与报表、名单与批量通知书" in r.json()["message"]
            )
    # every group of the API can be named in a token
    for route in service.client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and route.path.startswith("/api/"):
            assert route.tags and route.tags[0] in DOMAIN_OF_TAG, route.path


def test_a_staff_account_without_a_password_is_activated_and_the_rules_hold(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        service.login("sysadmin")
        unit_id = c.get("/api/auth/me").json()["unit_id"]
        for weak, why in (
            ("short1", "至少需要 10 位"),
            ("1234567890", "太常见"),
            ("woaini1314", "太常见"),
            ("qqqqqqqqqqqq", "重复"),
        ):
            body = {"username": "clerk", "password": weak, "display_name": "x", "role": "bureau_staff"}
            r = c.post("/api/users", json=body | {"unit_id": unit_id})
            assert r.status_code == 422 and why in r.json()["message"], (weak, r.text)
        r = c.post(
            "/api/users",
            json={"username": "clerk", "display_name": "办事员", "role": "bureau_staff", "unit_id": unit_id},
        )
        assert r.status_code == 201 and r.json()["activation"]
        token = r.json()["activation"]["activation_url"].rsplit("/", 1)[-1]
        phone = TestClient(service.client.app)
        r = phone.post(f"/api/activation/{token}", json={"password": "clerk-password"})
        assert r.status_code == 422 and "用户名" in r.json()["message"]
        # development: no second factor asked, the account is active at once
        r = phone.post(f"/api/activation/{token}", json={"password": "a-new-long-secret-7"})
        assert r.status_code == 200 and r.json()["active"] is True
        assert _login(service, "clerk", "a-new-long-secret-7")["status"] == 200
        assert c.get("/api/units").status_code == 200


def test_an_account_is_disabled_enabled_given_an_end_and_disabled_when_unused(tmp_path: Path) -> None:
    """The account's life, each step audited: disabled (its session and tokens end at once, its
    holder told why with the right password only), enabled, another role (never 签署人), an end
    date for a temporary account, and the daily job that disables accounts nobody used."""
    from tests.api.conftest import setup_licheng

    with running_service(tmp_path, account_dormant_days=90) as service:
        setup_licheng(service)
        c = service.client
        staff = TestClient(c.app)  # the office clerk's own browser
        r = staff.post("/api/auth/login", json={"username": "wsr-staff", "password": PASSWORD})
        assert r.status_code == 200
        staff.headers["X-CSRF-Token"] = csrf_cookie(staff)
        token = staff.post("/api/auth/tokens", json={"name": "台账导出", "access": "read"}).json()["token"]
        service.login("sysadmin")
        users = {u["username"]: u for u in c.get("/api/users").json()}
        clerk = users["wsr-staff"]
        assert clerk["active"] is True and clerk["last_login_at"] is not None and clerk["expires_at"] is None

        # disabled: at once, everywhere
        r = c.post(f"/api/users/{clerk['id']}/disable", json={"reason": "调离教育办"})
        assert r.status_code == 200 and r.json()["active"] is False and r.json()["disabled_reason"] == "调离教育办"
        assert staff.get("/api/auth/me").status_code == 401
        assert c.get("/api/auth/me", headers={"authorization": f"Bearer {token}"}).status_code == 401
        refused = _login(service, "wsr-staff")
        assert refused["status"] == 403 and refused["code"] == "ACCOUNT_DISABLED" and "调离教育办" in refused["message"]
        wrong = _login(service, "wsr-staff", "not-the-password-9")
        assert wrong["status"] == 401 and wrong["code"] == "AUTH_FAILED"  # a guesser learns nothing
        service.login("sysadmin")
        assert c.post(f"/api/users/{clerk['id']}/disable", json={"reason": "again"}).status_code == 422
        me = c.get("/api/auth/me").json()
        assert c.post(f"/api/users/{me['id']}/disable", json={"reason": "x"}).status_code == 403  # not oneself

        # enabled: the password it had works again; its token stays revoked
        assert c.post(f"/api/users/{clerk['id']}/enable").json()["active"] is True
        assert _login(service, "wsr-staff")["status"] == 200
        assert c.get("/api/auth/me", headers={"authorization": f"Bearer {token}"}).status_code == 401

        # a role, by the security administrator (not the system administrator): never 签署人 (a seal
        # is its holder's own, by activation) nor an administrator's; only one the unit may hold
        assert c.post(f"/api/users/{clerk['id']}/role", json={"role": "bureau_staff"}).status_code == 403
        service.login("secadmin")
        r = c.post(f"/api/users/{clerk['id']}/role", json={"role": "unit_signer"})
        assert r.status_code == 403 and "激活链接" in r.json()["message"]
        r = c.post(f"/api/users/{clerk['id']}/role", json={"role": "bureau_staff"})
        assert r.status_code == 422 and "不能属于" in r.json()["message"]
        assert c.post(f"/api/users/{clerk['id']}/role", json={"role": "chief"}).status_code == 422
        r = c.post(f"/api/users/{clerk['id']}/role", json={"role": "audit_admin"})
        assert r.status_code == 403 and "docsign add-user" in r.json()["message"]
        # nor may it disable, enable or end an account: that is the system administrator's
        assert c.post(f"/api/users/{clerk['id']}/disable", json={"reason": "调离"}).status_code == 403
        service.login("sysadmin")

        # a temporary account: its end in the future, then past it
        past = (service.clock.now() - dt.timedelta(hours=1)).isoformat()
        assert c.put(f"/api/users/{clerk['id']}/expiry", json={"expires_at": past}).status_code == 422
        end = (service.clock.now() + dt.timedelta(days=1)).isoformat()
        assert c.put(f"/api/users/{clerk['id']}/expiry", json={"expires_at": end}).json()["expires_at"] is not None
        service.clock.advance(dt.timedelta(days=1, minutes=1))
        ended = _login(service, "wsr-staff")
        assert ended["status"] == 403 and "临时账号" in ended["message"]
        service.login("sysadmin")
        assert c.put(f"/api/users/{clerk['id']}/expiry", json={"expires_at": None}).json()["expires_at"] is None

        # unused for 90 days: disabled by the daily job; an account used since stays
        service.clock.advance(dt.timedelta(days=91))
        service.login("bureau")
        with service.state.db.session() as s:
            dormant = {u.username for u in service.state.accounts.disable_dormant(s, 90)}
            s.commit()
        assert "wsr-staff" in dormant and "hjl-staff" in dormant and "bureau" not in dormant
        assert "wsr-sh-head" in dormant  # activated and never signed in since: counted from its making
        refused = _login(service, "hjl-staff")
        assert refused["code"] == "ACCOUNT_DISABLED" and "90 天未登录" in refused["message"]

        actions = [e.action for e in _actions(service, "user.disabled")] + [
            a
            for a in ("user.enabled", "user.role_changed", "user.expiry_set", "user.disabled_dormant")
            if _actions(service, a)
        ]
        assert actions == ["user.disabled", "user.enabled", "user.expiry_set", "user.disabled_dormant"]
        assert [e.actor for e in _actions(service, "auth.login_disabled")][:1] == ["wsr-staff"]
