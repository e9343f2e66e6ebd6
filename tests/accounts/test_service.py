"""Accounts as use cases: signing in (and failing, audited, limited), tokens, new accounts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.accounts.errors import AuthFailed, Forbidden, TooManyRequests
from service.accounts.service import user_for_session, user_for_token
from service.audit.models import AuditEvent
from service.container import Services
from service.demo import DEMO_PASSWORD
from tests.district import load_district, scope_of, unit


def test_sign_in_opens_a_session_and_a_failure_is_kept_in_the_audit_log(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        user, token = services.accounts.sign_in(s, "10.0.0.7", "wsr-sh-head", DEMO_PASSWORD)
        s.commit()
        assert user.unit.code == "WSR-SH"
        found = user_for_session(s, token, services.clock.now())
        assert found is not None and found.id == user.id
        with pytest.raises(AuthFailed):
            services.accounts.sign_in(s, "10.0.0.7", "wsr-sh-head", "not-the-password")
        s.rollback()  # the caller's work is gone; the failure is not
        failures = s.scalars(select(AuditEvent).where(AuditEvent.action == "auth.login_failed")).all()
        assert [(e.actor, e.client) for e in failures] == [("wsr-sh-head", "10.0.0.7")]


def test_sign_in_is_limited_per_client(services: Services) -> None:
    load_district(services)
    limit = services.settings.login_rate_per_minute
    with services.db.session() as s:
        for i in range(limit):  # wrong passwords for many accounts from one client
            with pytest.raises(AuthFailed):
                services.accounts.sign_in(s, "10.0.0.9", f"nobody-{i}", "wrong-password")
        with pytest.raises(TooManyRequests):
            services.accounts.sign_in(s, "10.0.0.9", "bureau", DEMO_PASSWORD)
        user, _ = services.accounts.sign_in(s, "10.0.0.10", "bureau", DEMO_PASSWORD)  # another client
        assert user.username == "bureau"


def test_failures_lock_the_account_from_every_client_and_every_process(services: Services) -> None:
    """Failures are counted in the database: another server process (another Accounts over the same
    database) sees the same lock, per account and per client, until the window has passed."""
    import datetime as dt

    from service.accounts.service import Accounts
    from service.limits import MemoryRateLimiter

    load_district(services)
    per_account = services.settings.login_failures_per_account
    other_process = Accounts(
        services.db,
        MemoryRateLimiter(10_000),
        12,
        services.clock.now,
        failures_per_account=per_account,
        failures_per_client=8,
        secrets=services.accounts.secrets,
    )
    with services.db.session() as s:
        for i in range(per_account):  # from as many clients as attempts
            with pytest.raises(AuthFailed):
                services.accounts.sign_in(s, f"10.0.1.{i}", "bureau", "wrong-password")
        # the right password, from a new client, in the other process: still locked
        with pytest.raises(TooManyRequests) as locked:
            other_process.sign_in(s, "10.0.2.1", "bureau", DEMO_PASSWORD)
        assert "该账号" in locked.value.message
        assert other_process.sign_in(s, "10.0.2.1", "wsr-staff", DEMO_PASSWORD)[0].username == "wsr-staff"
        s.commit()  # as a request does
        # per client: failures against many accounts from one address
        for i in range(8):
            with pytest.raises(AuthFailed):
                other_process.sign_in(s, "10.0.3.3", f"guess-{i}", "wrong-password")
        with pytest.raises(TooManyRequests) as client_locked:
            other_process.sign_in(s, "10.0.3.3", "wsr-sh-head", DEMO_PASSWORD)
        assert "本机" in client_locked.value.message
        services.clock.advance(dt.timedelta(minutes=services.settings.login_lockout_minutes, seconds=1))
        assert services.accounts.sign_in(s, "10.0.2.1", "bureau", DEMO_PASSWORD)[0].username == "bureau"


def test_tokens_and_new_accounts(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        _, token = services.accounts.new_token(s, bureau.user, "学籍系统对接")  # type: ignore[arg-type]
        s.commit()
        found = user_for_token(s, token, services.clock.now(), writes=False)
        assert found is not None and found.username == "bureau"
        assert not s.dirty  # reading with a token records nothing
        assert user_for_token(s, token, services.clock.now(), writes=True) is found
        assert s.dirty  # a write with it records its last use
        user = services.accounts.add_user(
            s,
            bureau,
            username="wsr-xd-clerk",
            password="a-long-password-1",
            display_name="辛甸小学教务",
            role="unit_signer",
            unit=unit(s, "WSR-XD"),
        )
        s.commit()
        assert user.unit.code == "WSR-XD"
        with pytest.raises(Forbidden):
            services.accounts.add_user(
                s,
                scope_of(s, "wsr-staff"),
                username="another",
                password="a-long-password-2",
                display_name="某人",
                role="unit_signer",
                unit=unit(s, "WSR-XD"),
            )
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions == ["auth.token_create", "user.create"]
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 2
