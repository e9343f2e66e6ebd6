"""Notices: units' contacts, 催办, the delivery log with resend, webhook subscriptions with replay."""

from __future__ import annotations

from fastapi import APIRouter

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
from service.notify.schemas import (
    ContactIn,
    ContactOut,
    DeliveryOut,
    UrgeIn,
    UrgeOut,
    WebhookDeliveryOut,
    WebhookIn,
    WebhookOut,
)
from service.notify.service import ContactSpec

router = APIRouter(prefix="/api", tags=["通知与推送"])


@router.get("/units/{unit_id}/contacts", response_model=ContactOut, summary="单位的通知联系方式（脱敏显示）")
def get_contacts(unit: UnitObj, session: SessionDep) -> ContactOut:
    return ContactOut.of(unit.id, notify_repository.contact(session, unit))


@router.put("/units/{unit_id}/contacts", response_model=ContactOut, summary="设置单位的通知联系方式与接收渠道")
def set_contacts(
    unit: UnitObj, body: ContactIn, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> ContactOut:
    contact = services.notify.set_contacts(session, scope, unit, ContactSpec(**body.model_dump()))
    session.commit()
    return ContactOut.of(unit.id, contact)


@router.post(
    "/campaigns/{campaign_id}/urge",
    response_model=UrgeOut,
    status_code=202,
    summary="催办：立即提醒所选的未签署单位（教体局；同一单位限频，记入审计日志）",
)
def urge(campaign: CampaignObj, body: UrgeIn, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> UrgeOut:
    queued = services.notify.urge(session, scope, campaign, body.unit_ids, services.jobs)
    session.commit()
    return UrgeOut(queued=len(queued), deliveries=[DeliveryOut.of(d) for d in queued])


@router.get("/notify/deliveries", response_model=list[DeliveryOut], summary="发送记录（最近200条，收件人脱敏）")
def list_deliveries(
    scope: ScopeDep, session: SessionDep, status: str | None = None, campaign_id: int | None = None
) -> list[DeliveryOut]:
    rows = notify_repository.deliveries(session, scope, status=status, campaign_id=campaign_id)
    return [DeliveryOut.of(d) for d in rows]


@router.post(
    "/notify/deliveries/{delivery_id}/resend", response_model=DeliveryOut, summary="重发一条失败的通知（教体局）"
)
def resend(delivery: DeliveryObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> DeliveryOut:
    services.notify.resend(session, scope, delivery, services.jobs)
    session.commit()
    return DeliveryOut.of(delivery)


@router.get("/webhooks", response_model=list[WebhookOut], summary="本局的 Webhook 订阅")
def list_webhooks(scope: ScopeDep, session: SessionDep) -> list[WebhookOut]:
    return [WebhookOut.of(s) for s in notify_repository.subscriptions(session, scope)]


@router.post(
    "/webhooks",
    response_model=WebhookOut,
    status_code=201,
    summary="订阅事件推送（教体局）；签名密钥只在此次应答中给出",
)
def subscribe(body: WebhookIn, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> WebhookOut:
    sub = services.notify.subscribe(session, scope, body.url, body.events)
    session.commit()
    return WebhookOut.of(sub, with_secret=True)


@router.get("/webhooks/deliveries", response_model=list[WebhookDeliveryOut], summary="Webhook 推送记录（最近200条）")
def list_webhook_deliveries(scope: ScopeDep, session: SessionDep) -> list[WebhookDeliveryOut]:
    return [WebhookDeliveryOut.of(d) for d in notify_repository.webhook_deliveries(session, scope)]


@router.post(
    "/webhooks/deliveries/{delivery_id}/replay",
    response_model=WebhookDeliveryOut,
    summary="重新推送一个事件（同一消息编号，重新签名）",
)
def replay(
    delivery: WebhookDeliveryObj, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> WebhookDeliveryOut:
    services.notify.replay(session, scope, delivery)
    session.commit()
    return WebhookDeliveryOut.of(delivery)


@router.post(
    "/webhooks/{subscription_id}/test",
    response_model=WebhookDeliveryOut,
    summary="向订阅地址推送一条测试事件（webhook.test），立即发送并返回对方的应答",
)
def test_webhook(
    sub: SubscriptionObj, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> WebhookDeliveryOut:
    delivery = services.notify.test_webhook(session, scope, sub)
    session.commit()
    services.notify.send_webhooks(session, session.commit, only=[delivery.id])
    return WebhookDeliveryOut.of(delivery)
