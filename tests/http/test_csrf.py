"""CSRF: every cookie-authenticated write needs the session's token and, when the browser names
it, this site as its origin; programs with a bearer token are exempt; logins rotate the session;
over HTTPS the cookies are Secure and ``__Host-`` prefixed."""

from __future__ import annotations

from pathlib import Path

from tests.api.conftest import PASSWORD, bootstrap_bureau, csrf_cookie, running_service


def test_cookie_writes_need_the_sessions_token_and_this_sites_origin(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        service.login("bureau")
        token = csrf_cookie(c)
        del c.headers["X-CSRF-Token"]

        # the JSON API: no token, a wrong token, another session's token
        for headers in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": token[:-1] + "x"}):
            r = c.post("/api/auth/tokens", json={"name": "对接"}, headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "CSRF_TOKEN_INVALID", r.text
            assert "刷新页面" in r.json()["message"]
        assert c.post("/api/auth/tokens", json={"name": "对接"}, headers={"X-CSRF-Token": token}).status_code == 200
        # a matching token from another site's page is still refused
        r = c.post(
            "/api/auth/tokens",
            json={"name": "对接"},
            headers={"X-CSRF-Token": token, "Origin": "https://evil.example.com"},
        )
        assert r.status_code == 403 and r.json()["code"] == "CROSS_SITE_REQUEST"
        r = c.post("/api/auth/tokens", json={"name": "x"}, headers={"X-CSRF-Token": token, "Origin": "null"})
        assert r.status_code == 403

        # a page form: the hidden field the pages' script adds
        r = c.post("/logout", data={}, headers={"accept": "text/html"}, follow_redirects=False)
        assert r.status_code == 403 and "表单令牌" in r.text
        assert c.get("/api/auth/me").status_code == 200  # still signed in
        r = c.post("/logout", data={"csrf_token": token}, headers={"accept": "text/html"}, follow_redirects=False)
        assert r.status_code == 303
        assert c.get("/api/auth/me").status_code == 401

        # a program with a bearer token sends no CSRF token
        service.login("bureau")
        api_token = c.post("/api/auth/tokens", json={"name": "学籍系统"}).json()["token"]
        c.cookies.clear()
        del c.headers["X-CSRF-Token"]
        r = c.post("/api/auth/tokens", json={"name": "另一个"}, headers={"Authorization": f"Bearer {api_token}"})
        assert r.status_code == 200, r.text


def test_a_login_posted_from_another_site_is_refused(tmp_path: Path) -> None:
    """Login CSRF: another site's page posting its own account's password would sign the
    browser in as that account (and what the victim then types would go to it)."""
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        body = {"username": "bureau", "password": PASSWORD}
        for origin in ({"Origin": "https://evil.example.com"}, {"Referer": "https://evil.example.com/x"}):
            r = c.post("/api/auth/login", json=body, headers=origin)
            assert r.status_code == 403 and r.json()["code"] == "CROSS_SITE_REQUEST", r.text
            page = c.post("/login", data=body, headers={**origin, "accept": "text/html"}, follow_redirects=False)
            assert page.status_code == 403 and "其他网站" in page.text
        assert "docsign_session" not in c.cookies
        # this site's own login page, and a program that names no origin
        r = c.post("/login", data=body, headers={"Origin": "http://testserver"}, follow_redirects=False)
        assert r.status_code == 303 and "docsign_session" in c.cookies
        c.cookies.clear()
        assert c.post("/api/auth/login", json=body).status_code == 200


def test_a_login_rotates_the_session(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        service.login("bureau")
        first = c.cookies["docsign_session"]
        r = c.post("/api/auth/login", json={"username": "bureau", "password": PASSWORD})
        assert r.status_code == 200
        second = c.cookies["docsign_session"]
        assert second != first
        c.cookies.clear()
        c.cookies.set("docsign_session", first)
        assert c.get("/api/auth/me").status_code == 401  # the session before the login has ended
        c.cookies.set("docsign_session", second)
        assert c.get("/api/auth/me").status_code == 200


def test_over_https_the_cookies_are_secure_and_host_prefixed(tmp_path: Path) -> None:
    with running_service(tmp_path, secure_cookies=True) as service:
        bootstrap_bureau(service)
        r = service.client.post("/api/auth/login", json={"username": "bureau", "password": PASSWORD})
        assert r.status_code == 200
        cookies = r.headers.get_list("set-cookie")
        session = next(h for h in cookies if h.startswith("__Host-docsign_session="))
        csrf = next(h for h in cookies if h.startswith("__Host-docsign_csrf="))
        for header in (session, csrf):
            assert "Secure" in header and "Path=/" in header and "Domain" not in header
        assert "HttpOnly" in session and "HttpOnly" not in csrf
        assert not any(h.startswith("docsign_session=") for h in cookies)
