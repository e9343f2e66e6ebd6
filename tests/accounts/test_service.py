"""Accounts as use cases: signing in (and failing, audited, limited), tokens, new accounts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.accounts.errors import AuthFailed, Forbidden, TooManyRequests
from service.accounts.service import user_for_session, user_for_token
from service.audit.models import AuditEvent
from service.container import Services
from service.units.demo import DEMO_PASSWORD
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
        for _ in range(limit):
            with pytest.raises(AuthFailed):
                services.accounts.sign_in(s, "10.0.0.9", "bureau", "wrong-password")
        with pytest.raises(TooManyRequests):
            services.accounts.sign_in(s, "10.0.0.9", "bureau", DEMO_PASSWORD)
        user, _ = services.accounts.sign_in(s, "10.0.0.10", "bureau", DEMO_PASSWORD)  # another client
        assert user.username == "bureau"


def test_tokens_and_new_accounts(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        token = services.accounts.new_token(s, bureau.user, "学籍系统对接")  # type: ignore[arg-type]
        s.commit()
        found = user_for_token(s, token, services.clock.now())
        assert found is not None and found.username == "bureau"
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
