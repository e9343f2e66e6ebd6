"""Injected dependencies: the services, the session, the signed-in user, and objects the user may see.

Every route that takes an object id loads it through one of the ``visible_*`` dependencies, which
answer 404 for anything outside the user's units, before the request body is even read.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import zoneinfo
from collections.abc import Iterator, Sequence
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session

from service import logs
from service.accounts import repository as accounts_repository
from service.accounts.errors import NotAuthenticated, PasswordChangeRequired, TokenOutOfScope, TokenReadOnly
from service.accounts.models import ApiToken, Delegation, User
from service.accounts.scope import Scope
from service.accounts.service import TOKEN_DOMAINS, token_for
from service.archive import repository as archive_repository
from service.archive.models import Document
from service.audit.service import record_apart
from service.campaigns import repository as campaigns_repository
from service.campaigns.models import Assignment, Campaign
from service.cases import repository as cases_repository
from service.cases.models import Case
from service.container import Services
from service.errors import NotFoundForUser
from service.jobs import repository as jobs_repository
from service.jobs.models import Job
from service.ledgers import repository as ledgers_repository
from service.ledgers.models import Finding
from service.notify import repository as notify_repository
from service.notify.models import Delivery, WebhookDelivery, WebhookSubscription
from service.rosters import repository as rosters_repository
from service.rosters.models import Roster
from service.settings import Settings
from service.units import repository as units_repository
from service.units.models import Unit

SESSION_COOKIE = "docsign_session"
#: The CSRF token's cookie: readable by the pages' script, which sends it back with every write.
CSRF_COOKIE = "docsign_csrf"
#: The header (JSON and htmx requests) and the form field (plain forms) that carry the CSRF token.
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def cookie_name(settings: Settings, name: str) -> str:
    """Over HTTPS the cookies carry the ``__Host-`` prefix: Secure, path /, no Domain, so neither a
    plain-HTTP page nor a sibling subdomain can set or overwrite them."""
    return f"__Host-{name}" if settings.cookies_secure else name


def session_token(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(cookie_name(settings, SESSION_COOKIE))


def csrf_token_for(settings: Settings, session: str) -> str:
    """The CSRF token of a browser session: an HMAC of the session token under the server secret,
    so it is per session, needs no storage, and cannot be made without the (HttpOnly) session."""
    return hmac.new(settings.secret(), b"csrf:" + session.encode(), hashlib.sha256).hexdigest()


def get_services(request: Request) -> Services:
    services: Services = request.app.state.service
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def client_address(request: Request, settings: Settings) -> str:
    """Who is asking: the peer, unless the peer is a trusted proxy (``DOCSIGN_TRUSTED_PROXIES``);
    then the right-most address of X-Forwarded-For that is not itself a trusted proxy (each proxy
    appends the address it was reached from; what lies left of that is the client's own word)."""
    peer = request.client.host if request.client else "unknown"
    networks = settings.proxy_networks
    if not networks or not _among(peer, networks):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _among(hop, networks):
            return hop[:64]
    return hops[0][:64] if hops else peer


def _among(address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


#: The API's groups (each router's tag) by the domain key a token names (``TOKEN_DOMAINS``); a
#: test holds every API route to one of them.
DOMAIN_OF_TAG = {title: key for key, title in TOKEN_DOMAINS.items()}


def route_domain(request: Request) -> str | None:
    """The domain of the API route answering ``request`` (by its group), None for any other route."""
    route = request.scope.get("route")
    tags = getattr(route, "tags", None) or []
    return DOMAIN_OF_TAG.get(str(tags[0])) if tags else None


#: Requests that only read: they write nothing, not even bookkeeping.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def optional_user(request: Request, services: ServicesDep, session: SessionDep) -> User | None:
    now = services.clock.now()
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        writes = request.method not in READ_METHODS
        row = token_for(session, auth[7:].strip(), now, writes=writes)
        if row is None:
            raise NotAuthenticated("API 令牌无效、已过期或已吊销（修改密码、账号被重置都会使令牌作废）。")
        if writes and row.access != "write":
            session.rollback()
            raise TokenReadOnly()
        if row.domains is not None and (domain := route_domain(request)) not in row.domains:
            session.rollback()
            allowed = "、".join(TOKEN_DOMAINS[d] for d in row.domains if d in TOKEN_DOMAINS)
            what = f"「{TOKEN_DOMAINS[domain]}」" if domain in TOKEN_DOMAINS else "该"
            raise TokenOutOfScope(
                f"这个 API 令牌只能用于{allowed}的接口，不能用于{what}接口；请换用适用范围包含它的令牌。"
            )
        if writes:
            session.commit()  # the token's last use, whatever becomes of the request's own work
        logs.note_user(row.user_id)
        return row.user
    token = session_token(request, services.settings)
    user = services.accounts.session_user(session, token) if token else None
    if user is not None:
        logs.note_user(user.id)  # every log line of the request names who made it
    return user


#: What a user whose password was reset may still do before choosing a new one.
PASSWORD_CHANGE_PATHS = frozenset({"/api/auth/password", "/api/auth/me", "/api/auth/logout", "/password", "/logout"})


def current_user(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise NotAuthenticated()
    if user.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise PasswordChangeRequired()
    return user


UserDep = Annotated[User, Depends(current_user)]


def get_scope(request: Request, user: UserDep, services: ServicesDep, session: SessionDep) -> Iterator[Scope]:
    today = services.clock.now().astimezone(zoneinfo.ZoneInfo(services.settings.timezone)).date()
    scope = Scope.of_user(session, user, client_address(request, services.settings), today)
    try:
        yield scope
    finally:
        if scope.refusals:
            # The request's own work is over (committed, or to be dropped): undo what is left so
            # the refusals are written apart without waiting on this transaction's locks.
            session.rollback()
            for reason in scope.refusals:
                record_apart(
                    session,
                    scope.actor,
                    "access.denied",
                    "request",
                    f"{request.method} {request.url.path}"[:64],
                    services.clock.now(),
                    reason=reason,
                )


ScopeDep = Annotated[Scope, Depends(get_scope)]


def visible_unit(unit_id: int, scope: ScopeDep, session: SessionDep) -> Unit:
    unit = units_repository.get(session, scope, unit_id)
    if unit is None:
        raise NotFoundForUser()
    return unit


def visible_campaign(campaign_id: int, scope: ScopeDep, session: SessionDep) -> Campaign:
    campaign = campaigns_repository.get(session, scope, campaign_id)
    if campaign is None:
        raise NotFoundForUser()
    return campaign


def visible_assignment(assignment_id: int, scope: ScopeDep, session: SessionDep) -> Assignment:
    assignment = campaigns_repository.get_assignment(session, scope, assignment_id)
    if assignment is None:
        raise NotFoundForUser()
    return assignment


def visible_document(document_id: int, scope: ScopeDep, session: SessionDep) -> Document:
    doc = archive_repository.get(session, scope, document_id)
    if doc is None:
        raise NotFoundForUser()
    return doc


def visible_job(job_id: int, scope: ScopeDep, session: SessionDep) -> Job:
    job = jobs_repository.get(session, scope, job_id)
    if job is None:
        raise NotFoundForUser()
    return job


def visible_case(case_id: int, scope: ScopeDep, session: SessionDep) -> Case:
    case = cases_repository.get(session, scope, case_id)
    if case is None:
        raise NotFoundForUser()
    return case


def visible_finding(finding_id: int, scope: ScopeDep, session: SessionDep) -> Finding:
    finding = ledgers_repository.get(session, scope, finding_id)
    if finding is None:
        raise NotFoundForUser()
    return finding


def visible_roster(roster_id: int, scope: ScopeDep, session: SessionDep) -> Roster:
    roster = rosters_repository.get(session, scope, roster_id)
    if roster is None:
        raise NotFoundForUser()
    return roster


def visible_user(user_id: int, scope: ScopeDep, session: SessionDep) -> User:
    """An account of the user's units, for bureau and office staff (and oneself)."""
    user = accounts_repository.get_user(session, scope, user_id)
    if user is None:
        raise NotFoundForUser("未找到该账号。")
    return user


def visible_delivery(delivery_id: int, scope: ScopeDep, session: SessionDep) -> Delivery:
    """A message of the delivery log, of the user's units."""
    delivery = notify_repository.get(session, scope, delivery_id)
    if delivery is None:
        raise NotFoundForUser("未找到该通知。")
    return delivery


def visible_webhook_delivery(delivery_id: int, scope: ScopeDep, session: SessionDep) -> WebhookDelivery:
    """A webhook push of the user's bureau."""
    delivery = notify_repository.get_webhook_delivery(session, scope, delivery_id)
    if delivery is None:
        raise NotFoundForUser("未找到该推送记录。")
    return delivery


def visible_subscription(subscription_id: int, scope: ScopeDep, session: SessionDep) -> WebhookSubscription:
    """A webhook subscription of the user's bureau."""
    sub = notify_repository.get_subscription(session, scope, subscription_id)
    if sub is None:
        raise NotFoundForUser("未找到该订阅。")
    return sub


DeliveryObj = Annotated[Delivery, Depends(visible_delivery)]
WebhookDeliveryObj = Annotated[WebhookDelivery, Depends(visible_webhook_delivery)]
SubscriptionObj = Annotated[WebhookSubscription, Depends(visible_subscription)]


def visible_token(token_id: int, scope: ScopeDep, session: SessionDep) -> ApiToken:
    """One's own API token; bureau staff also see those of their district's accounts."""
    token = accounts_repository.get_token(session, scope, token_id)
    if token is None:
        raise NotFoundForUser("未找到该令牌。")
    return token


def visible_delegation(delegation_id: int, scope: ScopeDep, session: SessionDep) -> Delegation:
    """A delegation of one of the user's units, or one made to the user."""
    row = accounts_repository.get_delegation(session, scope, delegation_id)
    if row is None:
        raise NotFoundForUser("未找到该委托。")
    return row


UnitObj = Annotated[Unit, Depends(visible_unit)]
DelegationObj = Annotated[Delegation, Depends(visible_delegation)]
UserObj = Annotated[User, Depends(visible_user)]
TokenObj = Annotated[ApiToken, Depends(visible_token)]
CampaignObj = Annotated[Campaign, Depends(visible_campaign)]
AssignmentObj = Annotated[Assignment, Depends(visible_assignment)]
DocumentObj = Annotated[Document, Depends(visible_document)]
JobObj = Annotated[Job, Depends(visible_job)]
CaseObj = Annotated[Case, Depends(visible_case)]
FindingObj = Annotated[Finding, Depends(visible_finding)]
RosterObj = Annotated[Roster, Depends(visible_roster)]


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    """The session cookie (HttpOnly) and its CSRF token (readable by the pages' script)."""
    response.set_cookie(
        cookie_name(settings, SESSION_COOKIE),
        token,
        httponly=True,
        samesite="lax",
        secure=settings.cookies_secure,
        max_age=settings.session_hours * 3600,
        path="/",
    )
    response.set_cookie(
        cookie_name(settings, CSRF_COOKIE),
        csrf_token_for(settings, token),
        httponly=False,
        samesite="strict",
        secure=settings.cookies_secure,
        max_age=settings.session_hours * 3600,
        path="/",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(
            cookie_name(settings, name), path="/", secure=settings.cookies_secure, httponly=name == SESSION_COOKIE
        )
