"""The bureau's delivery log page (with resend) and 催办 from a campaign's page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from service.accounts.models import Role, User
from service.errors import InvalidInput
from service.http.deps import (
    CampaignObj,
    DeliveryObj,
    ScopeDep,
    ServicesDep,
    SessionDep,
    SubscriptionObj,
    UnitObj,
    WebhookDeliveryObj,
)
from service.notify import repository as notify_repository
from service.notify.schemas import ContactOut, WebhookOut, delivery_row, webhook_row
from service.notify.service import WEBHOOK_EVENTS, ContactSpec
from service.units.models import Unit
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
def notice_resend(delivery: DeliveryObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> Response:
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


CHANNEL_CHOICES = [("email", "邮件"), ("wecom", "企业微信群机器人"), ("dingtalk", "钉钉群机器人"), ("sms", "短信")]


def _contacts_page(
    request: Request, user: User, unit: Unit, session: SessionDep, error: str = "", saved: bool = False
) -> Response:
    current = ContactOut.of(unit.id, notify_repository.contact(session, unit))
    return render(
        request,
        "unit_contacts.html",
        user,
        unit=unit,
        current=current,
        choices=CHANNEL_CHOICES,
        error=error,
        flash={"tone": "ok", "text": "联系方式已保存。"} if saved else None,
        status_code=422 if error else 200,
    )


@router.get("/units/{unit_id}/contacts")
def contacts_page(request: Request, unit: UnitObj, user: PageUser, session: SessionDep, saved: int = 0) -> Response:
    return _contacts_page(request, user, unit, session, saved=bool(saved))


@router.post("/units/{unit_id}/contacts")
def contacts_save(
    request: Request,
    unit: UnitObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    email: Annotated[str, Form()] = "",
    mobile: Annotated[str, Form()] = "",
    wecom_webhook: Annotated[str, Form()] = "",
    dingtalk_webhook: Annotated[str, Form()] = "",
    dingtalk_secret: Annotated[str, Form()] = "",
    clear: Annotated[list[str] | None, Form()] = None,
    channel: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """A field left empty keeps what is stored (the page shows it masked); ``clear`` removes it."""
    typed = {
        "email": email,
        "mobile": mobile,
        "wecom_webhook": wecom_webhook,
        "dingtalk_webhook": dingtalk_webhook,
        "dingtalk_secret": dingtalk_secret,
    }
    cleared = set(clear or [])
    spec = ContactSpec(
        **{k: ("" if k in cleared else (v.strip() or None)) for k, v in typed.items()},
        channels=list(channel or []),
    )
    try:
        services.notify.set_contacts(session, scope, unit, spec)
    except InvalidInput as exc:  # a refusal goes to the error page (403) and the audit log
        session.rollback()
        return _contacts_page(request, user, unit, session, error=exc.message)
    session.commit()
    return flash_redirect(f"/units/{unit.id}/contacts?saved=1")


@router.get("/webhooks")
def webhooks_page(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep, done: str = ""
) -> Response:
    scope.bureau_staff()
    tz = tz_of(services)
    flash = {
        "replayed": {"tone": "ok", "text": "已重新排队推送。"},
        "tested": {"tone": "ok", "text": "测试事件已推送，结果见下方推送记录。"},
    }.get(done)
    return render(
        request,
        "webhooks.html",
        user,
        subscriptions=[WebhookOut.of(s) for s in notify_repository.subscriptions(session, scope)],
        deliveries=[webhook_row(d, tz) for d in notify_repository.webhook_deliveries(session, scope)],
        events=WEBHOOK_EVENTS,
        flash=flash,
    )


@router.post("/webhooks/{subscription_id}/test")
def webhook_test_page(sub: SubscriptionObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> Response:
    delivery = services.notify.test_webhook(session, scope, sub)
    session.commit()
    services.notify.send_webhooks(session, session.commit, only=[delivery.id])
    return flash_redirect("/webhooks?done=tested")


@router.post("/webhooks/deliveries/{delivery_id}/replay")
def webhook_replay_page(
    delivery: WebhookDeliveryObj, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    services.notify.replay(session, scope, delivery)
    session.commit()
    return flash_redirect("/webhooks?done=replayed")
