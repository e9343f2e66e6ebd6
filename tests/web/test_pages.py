"""The login form, without a browser: it shares its checks with the API's login."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from service.api.deps import SESSION_COOKIE
from service.audit.models import AuditEvent
from tests.api.conftest import PASSWORD, bootstrap_bureau, running_service


def test_login_form_says_what_is_wrong_next_to_the_field_and_signs_in(tmp_path: Path) -> None:
    with running_service(tmp_path, login_rate_per_minute=2) as service:
        bootstrap_bureau(service)
        c = service.client
        r = c.post("/login", data={"username": "bureau", "password": "wrong-password", "next": "/campaigns"})
        assert r.status_code == 200 and "用户名或密码错误，请重新输入。" in r.text
        assert 'value="bureau"' in r.text  # what was typed is kept
        assert SESSION_COOKIE not in c.cookies
        with service.state.db.session() as s:
            failures = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "auth.login_failed")
            assert s.scalar(failures) == 1

        r = c.post(
            "/login", data={"username": "bureau", "password": PASSWORD, "next": "/campaigns"}, follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"] == "/campaigns"
        assert SESSION_COOKIE in c.cookies
        c.cookies.clear()

        r = c.post("/login", data={"username": "bureau", "password": PASSWORD})  # the third this minute
        assert r.status_code == 200 and "登录尝试过于频繁" in r.text
        assert SESSION_COOKIE not in c.cookies
