"""Accounts as use cases: signing in (and failing, audited, limited), tokens, new accounts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.accounts.errors import AuthFailed, Forbidden, TooManyRequests, UserInvalid
from service.accounts.service import user_for_session, user_for_token
from service.audit.models import AuditEvent
from service.container import Services
from service.demo import DEMO_PASSWORD
from tests.district import load_district, scope_of, unit


def test_sign_in_opens_a_session_and_a_failure_is_kept_in_the_audit_log(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        user, token, notes = services.accounts.sign_in(s, "10.0.0.7", "wsr-sh-head", DEMO_PASSWORD)
        s.commit()
        assert user.unit.code == "WSR-SH" and notes == []
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
        user, _, _ = services.accounts.sign_in(s, "10.0.0.10", "bureau", DEMO_PASSWORD)  # another client
        assert user.username == "bureau"


def test_failures_slow_down_only_that_account_from_that_client_and_the_holder_is_told(services: Services) -> None:
    """Failures are counted in the database, so another server process (another Accounts over the
    same database) backs off the same account and client; each further failure doubles the wait;
    the holder, from their own device, is never held up, and sees the failures at their login."""
    import datetime as dt

    from service.accounts.service import Accounts
    from service.limits import MemoryRateLimiter

    load_district(services)
    free = services.settings.login_failures_before_backoff
    other_process = Accounts(
        services.db,
        MemoryRateLimiter(10_000),
        12,
        services.clock.now,
        failures_before_backoff=free,
        failures_per_client=100,
        secrets=services.accounts.secrets,
    )
    strict = Accounts(
        services.db,
        MemoryRateLimiter(10_000),
        12,
        services.clock.now,
        failures_per_client=8,
        secrets=services.accounts.secrets,
    )
    attacker = "10.0.1.1"
    with services.db.session() as s:
        for _ in range(free):
            with pytest.raises(AuthFailed):
                services.accounts.sign_in(s, attacker, "wsr-sh-head", "wrong-password")
        # the attacker's next try waits 2 seconds, in the other process too, even with the right password
        with pytest.raises(TooManyRequests) as waiting:
            other_process.sign_in(s, attacker, "wsr-sh-head", DEMO_PASSWORD)
        # (2 seconds after the last failure; the seconds its password check took pass on the real clock)
        assert 1 <= waiting.value.retry_after <= 2 and "本机" in waiting.value.message
        waits = []
        for _ in range(11):  # each failure after the wait doubles the next wait, up to the maximum
            services.clock.advance(dt.timedelta(seconds=waiting.value.retry_after + 1))
            with pytest.raises(AuthFailed):
                other_process.sign_in(s, attacker, "wsr-sh-head", "wrong-password")
            with pytest.raises(TooManyRequests) as waiting:
                other_process.sign_in(s, attacker, "wsr-sh-head", "wrong-password")
            waits.append(waiting.value.retry_after)
        maximum = services.settings.login_backoff_max_minutes * 60
        expected = [min(maximum, 2**n) for n in range(2, 13)]
        # (the seconds a password check takes pass on the real clock)
        assert all(e - 2 <= w <= e for w, e in zip(waits, expected, strict=True)), (waits, expected)
        assert waits[-1] > maximum - 3

        # the principal, on their own device, the same minute: no lock, and told what happened
        user, _, notes = other_process.sign_in(s, "10.0.2.1", "wsr-sh-head", DEMO_PASSWORD)
        s.commit()  # as a request does
        assert user.username == "wsr-sh-head"
        assert len(notes) == 1 and f"{free + 11} 次登录失败" in notes[0] and attacker in notes[0]
        # told once: the next login starts counting afresh
        assert services.accounts.sign_in(s, "10.0.2.1", "wsr-sh-head", DEMO_PASSWORD).notes == []
        s.commit()

        # per client: failures against many accounts from one address hold up that address only
        for i in range(8):
            with pytest.raises(AuthFailed):
                strict.sign_in(s, "10.0.3.3", f"guess-{i}", "wrong-password")
        with pytest.raises(TooManyRequests) as client_locked:
            strict.sign_in(s, "10.0.3.3", "bureau", DEMO_PASSWORD)
        assert "本机" in client_locked.value.message
        assert strict.sign_in(s, "10.0.3.4", "bureau", DEMO_PASSWORD).user.username == "bureau"
        services.clock.advance(dt.timedelta(minutes=services.settings.login_lockout_minutes, seconds=1))
        assert services.accounts.sign_in(s, "10.0.3.3", "bureau", DEMO_PASSWORD).user.username == "bureau"


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
        admin = scope_of(s, "sysadmin")  # the system administrator makes accounts
        with pytest.raises(UserInvalid, match="激活链接"):  # nobody sets a signer's password for them
            services.accounts.add_user(
                s,
                admin,
                username="wsr-xd-clerk",
                password="a-long-password-1",
                display_name="辛甸小学教务",
                role="unit_signer",
                unit=unit(s, "WSR-XD"),
            )
        user, link = services.accounts.add_user(
            s,
            admin,
            username="wsr-xd-clerk",
            password=None,
            display_name="辛甸小学教务",
            role="unit_signer",
            unit=unit(s, "WSR-XD"),
        )
        s.commit()
        assert user.unit.code == "WSR-XD" and link is not None and "/activate/" in link.url
        for other in ("wsr-staff", "bureau", "secadmin", "auditor"):  # nobody else, bureau staff included
            with pytest.raises(Forbidden):
                services.accounts.add_user(
                    s,
                    scope_of(s, other),
                    username="another",
                    password=None,
                    display_name="某人",
                    role="unit_signer",
                    unit=unit(s, "WSR-XD"),
                )
        with pytest.raises(Forbidden, match="docsign add-user"):  # an administrator only on the command line
            services.accounts.add_user(
                s,
                admin,
                username="second-auditor",
                password=None,
                display_name="某人",
                role="audit_admin",
                unit=unit(s, "LCJT"),
            )
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions == ["auth.token_create", "user.create"]
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 2
