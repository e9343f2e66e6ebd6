"""Injected dependencies: the session, the signed-in user, and objects the user may see.

Every route that takes an object id loads it through one of the ``visible_*`` dependencies, which
answer 404 for anything outside the user's units, before the request body is even read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.accounts.errors import Forbidden, NotAuthenticated
from service.accounts.models import Role, User
from service.accounts.service import user_for_session, user_for_token
from service.api.state import ServiceState
from service.archive.models import Document
from service.audit.service import Actor
from service.campaigns.errors import NotFoundForUser
from service.campaigns.models import Assignment, Campaign, Unit, UnitType
from service.campaigns.units import visible_unit_ids
from service.jobs.models import Job

SESSION_COOKIE = "docsign_session"


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def client_address(request: Request, state: ServiceState) -> str:
    if state.settings.trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            # the right-most address is the one our own proxy added; the others are the client's word
            return forwarded.split(",")[-1].strip()[:64]
    return request.client.host if request.client else "unknown"


def optional_user(request: Request, state: StateDep, session: SessionDep) -> User | None:
    now = state.clock.now()
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = user_for_token(session, auth[7:].strip(), now)
        if user is None:
            raise NotAuthenticated("API 令牌无效或已吊销。")
        session.commit()
        return user
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        return user_for_session(session, token, now)
    return None


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise NotAuthenticated()
    return user


UserDep = Annotated[User, Depends(current_user)]


@dataclass
class Scope:
    """The signed-in user, the units they may see, and how they appear in the audit log."""

    user: User
    units: set[int]
    actor: Actor

    @property
    def unit(self) -> Unit:
        return self.user.unit

    def require(self, *roles: Role) -> None:
        if self.user.role not in {r.value for r in roles}:
            raise Forbidden()


def get_scope(request: Request, user: UserDep, state: StateDep, session: SessionDep) -> Scope:
    return Scope(
        user=user,
        units=visible_unit_ids(session, user.unit),
        actor=Actor(user.id, f"{user.display_name}（{user.unit.name}）", user.unit_id, client_address(request, state)),
    )


ScopeDep = Annotated[Scope, Depends(get_scope)]


def visible_unit(unit_id: int, scope: ScopeDep, session: SessionDep) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None or unit.id not in scope.units:
        raise NotFoundForUser()
    return unit


def campaign_visible(session: Session, campaign: Campaign, scope: Scope) -> bool:
    if campaign.bureau_id in scope.units:
        return True
    return bool(
        session.scalar(
            select(exists().where(Assignment.campaign_id == campaign.id, Assignment.unit_id.in_(scope.units)))
        )
    )


def visible_campaign(campaign_id: int, scope: ScopeDep, session: SessionDep) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or not campaign_visible(session, campaign, scope):
        raise NotFoundForUser()
    return campaign


def visible_assignment(assignment_id: int, scope: ScopeDep, session: SessionDep) -> Assignment:
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.unit_id not in scope.units:
        raise NotFoundForUser()
    return assignment


def visible_document(document_id: int, scope: ScopeDep, session: SessionDep) -> Document:
    doc = session.get(Document, document_id)
    if doc is None or not (doc.issuer_unit_id in scope.units or (doc.subject_unit_id in scope.units)):
        raise NotFoundForUser()
    return doc


def visible_job(job_id: int, scope: ScopeDep, session: SessionDep) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.unit_id not in scope.units:
        raise NotFoundForUser()
    return job


UnitObj = Annotated[Unit, Depends(visible_unit)]
CampaignObj = Annotated[Campaign, Depends(visible_campaign)]
AssignmentObj = Annotated[Assignment, Depends(visible_assignment)]
DocumentObj = Annotated[Document, Depends(visible_document)]
JobObj = Annotated[Job, Depends(visible_job)]


def bureau_of_scope(scope: Scope) -> Unit:
    unit = scope.unit
    if unit.type != UnitType.BUREAU:
        raise Forbidden("只有教体局工作人员可以进行此操作。")
    return unit


def refresh_periods(state: ServiceState, session: Session) -> None:
    """Open this month's periods of recurring campaigns before reading them. Two readers racing to
    open the same period is harmless: the loser's rows already exist."""
    try:
        state.campaigns.refresh_recurring(session)
        session.commit()
    except IntegrityError:
        session.rollback()
