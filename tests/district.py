"""The demo district (a bureau, two offices with three schools each, two 区直学校, an account for
every unit) in a test's database, and the scopes its people act in."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import User
from service.accounts.scope import Scope
from service.container import Services
from service.demo import load_demo
from service.units.models import Unit


def load_district(services: Services) -> None:
    with services.db.session() as s:
        load_demo(s)
        s.commit()


def scope_of(session: Session, username: str) -> Scope:
    user = session.scalar(select(User).where(User.username == username))
    assert user is not None, username
    return Scope.of_user(session, user, "127.0.0.1")


def unit(session: Session, code: str) -> Unit:
    found = session.scalar(select(Unit).where(Unit.code == code))
    assert found is not None, code
    return found
