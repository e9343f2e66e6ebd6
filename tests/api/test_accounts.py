"""Accounts over HTTP: the second factor for staff, password changes and resets, token expiry and
revocation, password rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyotp
from sqlalchemy import select

from service.accounts.models import User
from tests.api.conftest import PASSWORD, Service, bootstrap_bureau, csrf_cookie, running_service


def _login(service: Service, username: str, password: str = PASSWORD, otp: str | None = None) -> int:
    service.client.cookies.clear()
    body = {"username": username, "password": password} | ({"otp": otp} if otp else {})
    r = service.client.post("/api/auth/login", json=body)
    if r.status_code == 200:
        service.client.headers["X-CSRF-Token"] = csrf_cookie(service.client)
    return r.status_code


def test_staff_need_a_second_factor_and_recovery_codes_work_once(tmp_path: Path) -> None:
    with running_service(tmp_path, require_staff_totp=True) as service:
        bootstrap_bureau(service)
        c = service.client
        # enforced but not enrolled: refused, saying how to enrol
        r = c.post("/api/auth/login", json={"username": "bureau", "password": PASSWORD})
        assert (
            r.status_code == 403
            and r.json()["code"] == "TOTP_NOT_ENROLLED"
            and "docsign user totp" in r.json()["message"]
        )
        with service.state.db.session() as s:
            from service.accounts.scope import Scope

            user = s.scalar(select(User).where(User.username == "bureau"))
            assert user is not None
            uri, codes = service.state.accounts.enroll_totp(s, Scope.operator(s, user.unit), user)
            s.commit()
        totp = pyotp.parse_uri(uri)
        assert isinstance(totp, pyotp.TOTP) and len(codes) == 10

        # a correct password without the code is refused; a wrong code too (and counted as a failure)
        r = c.post("/api/auth/login", json={"username": "bureau", "password": PASSWORD})
        assert r.status_code == 401 and r.json()["code"] == "TOTP_REQUIRED"
        wrong = "000000" if totp.at(service.clock.now()) != "000000" else "111111"
        r = c.post("/api/auth/login", json={"username": "bureau", "password": PASSWORD, "otp": wrong})
        assert r.status_code == 401 and "动态口令" in r.json()["message"]
        assert _login(service, "bureau", otp=totp.at(service.clock.now())) == 200
        assert c.get("/api/auth/me").json()["totp_enabled"] is True
        # a recovery code works once
        assert _login(service, "bureau", otp=codes[0]) == 200
        assert _login(service, "bureau", otp=codes[0]) == 401
        assert _login(service, "bureau", otp=codes[1].upper()) == 200

        # a signer may turn it on by themselves
        c.post(
            "/api/users",
            json={
                "username": "sh-head",
                "password": PASSWORD,
                "display_name": "赵明",
                "role": "unit_signer",
                "unit_id": user.unit_id,
            },
        )
        assert _login(service, "sh-head") == 200  # signers are not forced
        uri2 = c.post("/api/auth/totp").json()["otpauth_uri"]
        own = pyotp.parse_uri(uri2)
        r = c.post("/api/auth/totp/confirm", json={"code": own.at(service.clock.now())})
        assert r.status_code == 200 and len(r.json()["recovery_codes"]) == 10
        c.headers["X-CSRF-Token"] = csrf_cookie(c)  # the session was rotated
        assert c.get("/api/auth/me").status_code == 200
        assert _login(service, "sh-head") == 401  # now the code is needed


def test_tokens_expire_and_can_be_revoked(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        service.login("bureau")
        short = c.post("/api/auth/tokens", json={"name": "临时", "days": 1}).json()
        kept = c.post("/api/auth/tokens", json={"name": "学籍系统"}).json()
        assert c.post("/api/auth/tokens", json={"name": "太久", "days": 400}).status_code == 422
        assert dt.datetime.fromisoformat(kept["expires_at"]) > service.clock.now() + dt.timedelta(days=89)
        listed = {t["name"]: t for t in c.get("/api/auth/tokens").json()}
        assert set(listed) == {"临时", "学籍系统"} and "token" not in listed["临时"]

        def me(token: str) -> int:
            return c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code

        c.cookies.clear()
        assert me(short["token"]) == 200 and me(kept["token"]) == 200
        service.clock.advance(dt.timedelta(days=1, seconds=1))
        assert me(short["token"]) == 401  # expired
        assert me(kept["token"]) == 200
        r = c.post(f"/api/auth/tokens/{kept['id']}/revoke", headers={"Authorization": f"Bearer {kept['token']}"})
        assert r.status_code == 200 and r.json()["revoked_at"]
        assert me(kept["token"]) == 401  # revoked
        # another user cannot see or revoke someone's token
        with service.state.db.session() as s:
            from service.accounts.service import create_user
            from service.units.models import Unit

            unit = s.scalar(select(Unit))
            assert unit is not None
            create_user(
                s, username="other-staff", password=PASSWORD, display_name="另一人", role="bureau_staff", unit=unit
            )
            s.commit()
        service.login("bureau")
        mine = c.post("/api/auth/tokens", json={"name": "我的"}).json()
        service.login("other-staff")
        # bureau staff of the same bureau may revoke (supervision); a signer may not: see the route walk
        assert c.post(f"/api/auth/tokens/{mine['id']}/revoke").status_code == 200


def test_an_admin_reset_forces_a_new_password_and_the_rules_hold(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        service.login("bureau")
        unit_id = c.get("/api/auth/me").json()["unit_id"]
        for weak, why in (
            ("short1", "至少需要 10 位"),
            ("1234567890", "太常见"),
            ("woaini1314", "太常见"),
            ("qqqqqqqqqqqq", "重复"),
        ):
            r = c.post(
                "/api/users",
                json={
                    "username": "clerk",
                    "password": weak,
                    "display_name": "x",
                    "role": "bureau_staff",
                    "unit_id": unit_id,
                },
            )
            assert r.status_code == 422 and why in r.json()["message"], (weak, r.text)
        r = c.post(
            "/api/users",
            json={
                "username": "clerk",
                "password": PASSWORD,
                "display_name": "办事员",
                "role": "bureau_staff",
                "unit_id": unit_id,
            },
        )
        assert r.status_code == 201
        clerk_id = r.json()["id"]
        assert _login(service, "clerk") == 200
        clerk_cookie = c.cookies["docsign_session"]

        service.login("bureau")
        temporary = c.post(f"/api/users/{clerk_id}/reset-password").json()["temporary_password"]
        # the clerk's open session ended with the reset
        c.cookies.clear()
        c.cookies.set("docsign_session", clerk_cookie)
        assert c.get("/api/auth/me").status_code == 401
        assert _login(service, "clerk", PASSWORD) == 401
        assert _login(service, "clerk", temporary) == 200
        assert c.get("/api/auth/me").json()["must_change_password"] is True
        r = c.get("/api/units")
        assert r.status_code == 403 and r.json()["code"] == "PASSWORD_CHANGE_REQUIRED"
        page = c.get("/units", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/password"
        r = c.post("/api/auth/password", json={"current_password": temporary, "new_password": "clerk-password"})
        assert r.status_code == 422 and "用户名" in r.json()["message"]
        r = c.post("/api/auth/password", json={"current_password": temporary, "new_password": "a-new-long-secret-7"})
        assert r.status_code == 200 and r.json()["must_change_password"] is False
        c.headers["X-CSRF-Token"] = csrf_cookie(c)
        assert c.get("/api/units").status_code == 200
        assert _login(service, "clerk", "a-new-long-secret-7") == 200
