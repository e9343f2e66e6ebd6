"""The notices' reads: the delivery log of the units a user sees (:func:`visible_to`), a unit's
contacts, and a bureau's webhook subscriptions and their deliveries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.db.scoping import valid_id
from service.notify.channels import CHANNELS
from service.notify.models import Delivery, DeliveryStatus, UnitContact, WebhookDelivery, WebhookSubscription
from service.units.models import Unit

#: Rows of the delivery log one page or answer shows.
PAGE = 200


def visible_to(scope: Scope) -> Select[tuple[Delivery]]:
    return select(Delivery).where(Delivery.unit_id.in_(scope.units), Delivery.channel != "digest")


def deliveries(
    session: Session, scope: Scope, *, status: str | None = None, campaign_id: int | None = None
) -> Sequence[Delivery]:
    """The newest messages first (the delivery log page and ``/api/notify/deliveries``)."""
    query = visible_to(scope)
    if status:
        query = query.where(Delivery.status == status)
    if campaign_id is not None:
        if not valid_id(campaign_id):
            return []
        query = query.where(Delivery.campaign_id == campaign_id)
    return session.scalars(query.order_by(Delivery.id.desc()).limit(PAGE)).all()


def get(session: Session, scope: Scope, delivery_id: int) -> Delivery | None:
    return session.scalar(visible_to(scope).where(Delivery.id == delivery_id)) if valid_id(delivery_id) else None


def contact(session: Session, unit: Unit) -> UnitContact | None:
    return session.scalar(select(UnitContact).where(UnitContact.unit_id == unit.id))


def subscriptions(session: Session, scope: Scope) -> Sequence[WebhookSubscription]:
    return session.scalars(
        select(WebhookSubscription)
        .where(WebhookSubscription.bureau_id.in_(scope.units))
        .order_by(WebhookSubscription.id)
    ).all()


def webhook_deliveries_visible_to(scope: Scope) -> Select[tuple[WebhookDelivery]]:
    return (
        select(WebhookDelivery)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookSubscription.bureau_id.in_(scope.units))
    )


def webhook_deliveries(session: Session, scope: Scope) -> Sequence[WebhookDelivery]:
    query = webhook_deliveries_visible_to(scope).order_by(WebhookDelivery.id.desc()).limit(PAGE)
    return session.scalars(query).all()


def get_webhook_delivery(session: Session, scope: Scope, delivery_id: int) -> WebhookDelivery | None:
    if not valid_id(delivery_id):
        return None
    return session.scalar(webhook_deliveries_visible_to(scope).where(WebhookDelivery.id == delivery_id))


def get_subscription(session: Session, scope: Scope, subscription_id: int) -> WebhookSubscription | None:
    if not valid_id(subscription_id):
        return None
    return session.scalar(
        select(WebhookSubscription).where(
            WebhookSubscription.id == subscription_id, WebhookSubscription.bureau_id.in_(scope.units)
        )
    )


# --- the operator's metrics: the whole log -----------------------------------------------------


def delivery_counts(session: Session) -> list[tuple[str, str, int]]:
    """Messages in the delivery log by channel and state (queued, sent, failed …); every channel's
    sent and failed are there from the start (0), so a rate over them has a series to work on."""
    query = select(Delivery.channel, Delivery.status, func.count()).group_by(Delivery.channel, Delivery.status)
    counts = {(channel, status): int(n) for channel, status, n in session.execute(query).all()}
    for channel in CHANNELS:
        for status in (DeliveryStatus.SENT, DeliveryStatus.FAILED):
            counts.setdefault((channel, status), 0)
    return [(channel, status, n) for (channel, status), n in sorted(counts.items())]
