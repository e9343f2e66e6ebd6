"""The bureau's delivery log page (with resend) and 催办 from a campaign's page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from service.accounts.models import Role
from service.errors import NotFoundForUser
from service.http.deps import CampaignObj, ScopeDep, ServicesDep, SessionDep
from service.notify import repository as notify_repository
from service.notify.schemas import delivery_row
from service.web.common import PageUser, flash_redirect, render, tz_of

router = APIRouter(include_in_schema=False)

STATUS_FILTERS = [("", "全部"), ("failed", "发送失败"), ("queued", "待发送"), ("sent", "已发送")]


@router.get("/notices")
def notices_page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    status: str = "",
    campaign_id: int | None = None,
    resent: int | None = None,
) -> Response:
    rows = notify_repository.deliveries(session, scope, status=status or None, campaign_id=campaign_id)
    tz = tz_of(services)
    flash = {"tone": "ok", "text": "已重新排队发送。"} if resent else None
    return render(
        request,
        "notices.html",
        user,
        rows=[delivery_row(d, tz) for d in rows],
        filters=STATUS_FILTERS,
        status=status,
        campaign_id=campaign_id,
        may_resend=scope.has(Role.BUREAU) and scope.unit.type == "bureau",
        flash=flash,
    )


@router.post("/notices/{delivery_id}/resend")
def notice_resend(delivery_id: int, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> Response:
    delivery = notify_repository.get(session, scope, delivery_id)
    if delivery is None:
        raise NotFoundForUser()
    services.notify.resend(session, scope, delivery, services.jobs)
    session.commit()
    return flash_redirect("/notices?resent=1")


@router.post("/campaigns/{campaign_id}/urge")
def campaign_urge(
    campaign: CampaignObj,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    unit_id: Annotated[list[int] | None, Form()] = None,
) -> Response:
    queued = services.notify.urge(session, scope, campaign, unit_id or [], services.jobs)
    session.commit()
    return flash_redirect(f"/campaigns/{campaign.id}?urged={len(queued)}")
