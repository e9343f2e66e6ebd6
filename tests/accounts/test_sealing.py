"""Second-factor secrets are sealed at rest: the database alone does not give the codes."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pyotp
import pytest
from sqlalchemy import select, update

from service.accounts.errors import AuthFailed
from service.accounts.models import User
from service.accounts.sealing import SecretBox, SecretUnreadable, is_sealed
from service.container import Services
from service.demo import DEMO_PASSWORD
from tests.district import load_district


def _secret_of(uri: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]


def test_a_started_second_factor_is_sealed_and_still_gives_the_codes(services: Services) -> None:
    load_district(services)
    accounts = services.accounts
    with services.db.session() as s:
        user = s.scalars(select(User).where(User.username == "wsr-staff")).one()
        uri = accounts.start_totp(s, user)
        secret = _secret_of(uri)
        stored = user.totp_secret
        assert stored is not None and is_sealed(stored) and secret not in stored
        assert accounts.pending_totp_uri(user) == uri
        now = services.clock.now()
        accounts.confirm_totp(s, user, pyotp.TOTP(secret).at(now))
        s.commit()
        services.clock.advance(dt.timedelta(seconds=30))  # the confirming code is used up; the next one
        now = services.clock.now()
        wrong = "000000" if pyotp.TOTP(secret).at(now) != "000000" else "111111"
        with pytest.raises(AuthFailed):
            accounts.sign_in(s, "10.9.0.1", "wsr-staff", DEMO_PASSWORD, otp=wrong)
        signed_in, _, _ = accounts.sign_in(s, "10.9.0.2", "wsr-staff", DEMO_PASSWORD, otp=pyotp.TOTP(secret).at(now))
        assert signed_in.id == user.id

        # the same sealed value moved to another account does not open there
        other = s.scalars(select(User).where(User.username == "bureau")).one()
        with pytest.raises(SecretUnreadable):
            accounts.secrets.open(other.id, stored)
        # nor under another service key
        with pytest.raises(SecretUnreadable):
            SecretBox(b"another key").open(user.id, stored)


def test_a_secret_kept_in_clear_by_an_older_version_is_sealed_at_the_next_sign_in(services: Services) -> None:
    load_district(services)
    accounts = services.accounts
    secret = pyotp.random_base32()
    with services.db.session() as s:
        user = s.scalars(select(User).where(User.username == "wsr-staff")).one()
        s.execute(
            update(User)
            .where(User.id == user.id)
            .values(totp_secret=secret, totp_enabled_at=services.clock.now(), recovery_codes=[])
        )
        s.commit()
        code = pyotp.TOTP(secret).at(services.clock.now())
        accounts.sign_in(s, "10.9.0.3", "wsr-staff", DEMO_PASSWORD, otp=code)
        s.commit()
        s.refresh(user)
        assert user.totp_secret is not None and is_sealed(user.totp_secret) and secret not in user.totp_secret
        assert accounts.secrets.open(user.id, user.totp_secret) == secret
