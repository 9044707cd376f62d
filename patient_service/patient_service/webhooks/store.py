"""Webhook subscriptions and their deliveries, as the API and the dispatcher use them."""

import base64
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from painkiller_common.contracts import Event
from painkiller_common.errors import Conflict, Invalid, NotFound
from painkiller_common.http.pagination import Page, clamp_limit, decode_cursor, page_of
from patient_service.config import WebhookSettings
from patient_service.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from patient_service.webhooks import targets
from patient_service.webhooks.schemas import (
    AttemptOut,
    DeliveryFilter,
    DeliveryOut,
    SubscriptionCreate,
    SubscriptionOut,
)

# After a rotation the previous secret keeps signing for this long, beside the new one.
ROTATION_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def subscribe(
    session: Session, data: SubscriptionCreate, settings: WebhookSettings, actor: str
) -> tuple[WebhookSubscription, str]:
    """Store a subscription whose URL is safe to send to; the new subscription and its secret."""
    try:
        targets.check(data.url, settings.allowed)
    except targets.UnsafeTarget as exc:
        raise Invalid((["url"], str(exc))) from None
    secret = new_secret()
    subscription = WebhookSubscription(
        id=uuid.uuid4(),
        url=data.url,
        events=sorted(set(data.events)),
        description=data.description,
        secret=secret,
        created_by=actor[:255],
        created_at=datetime.now(UTC),
    )
    session.add(subscription)
    session.flush()
    return subscription, secret


def to_out(subscription: WebhookSubscription) -> SubscriptionOut:
    return SubscriptionOut.model_validate(subscription, from_attributes=True)


def get(session: Session, subscription_id: uuid.UUID, *, for_update: bool = False) -> WebhookSubscription:
    subscription = session.get(WebhookSubscription, subscription_id, with_for_update=True if for_update else None)
    if subscription is None:
        raise NotFound(f"Subscription {subscription_id} does not exist.")
    return subscription


def subscriptions(session: Session, limit: int | None, cursor: str | None) -> Page[SubscriptionOut]:
    """Subscriptions in creation order."""
    limit = clamp_limit(limit)
    stmt = select(WebhookSubscription).order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    if cursor:
        stmt = stmt.where(tuple_(WebhookSubscription.created_at, WebhookSubscription.id) > decode_cursor(cursor))
    rows = session.scalars(stmt.limit(limit + 1)).all()
    return page_of(rows, limit, key=lambda s: (s.created_at, s.id), out=to_out)


def unsubscribe(session: Session, subscription_id: uuid.UUID) -> None:
    """Delete a subscription; its deliveries and their record go with it."""
    session.delete(get(session, subscription_id))
    session.flush()


def rotate_secret(session: Session, subscription_id: uuid.UUID) -> str:
    """A new secret; the old one signs beside it for ROTATION_OVERLAP."""
    subscription = get(session, subscription_id, for_update=True)
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_until = datetime.now(UTC) + ROTATION_OVERLAP
    subscription.secret = new_secret()
    session.flush()
    return subscription.secret


def enqueue(session: Session, event: Event, settings: WebhookSettings) -> int:
    """A delivery of `event` for each subscription that wants its type, due now; none twice for
    one event (the unique key), however often the event arrives. How many were new."""
    now = datetime.now(UTC)
    subscription_ids = session.scalars(
        select(WebhookSubscription.id).where(WebhookSubscription.events.any_() == event.type)
    ).all()
    if not subscription_ids:
        return 0
    body = json.dumps(
        {
            "type": event.type,
            "timestamp": event.occurred_at.isoformat(),
            "data": event.model_dump(mode="json")["payload"],
        },
        separators=(",", ":"),
    )
    rows = [
        {
            "id": delivery_id(subscription_id, event.event_id),
            "subscription_id": subscription_id,
            "event_id": event.event_id,
            "event_type": event.type,
            "body": body,
            "created_at": now,
            "next_attempt_at": now,
            "give_up_at": now + timedelta(seconds=settings.give_up_after_s),
        }
        for subscription_id in subscription_ids
    ]
    inserted = session.execute(
        insert(WebhookDelivery).values(rows).on_conflict_do_nothing().returning(WebhookDelivery.id)
    ).all()
    return len(inserted)


def delivery_id(subscription_id: uuid.UUID, event_id: uuid.UUID) -> uuid.UUID:
    """Stable per event and subscription: a redelivered event maps to the same delivery."""
    return uuid.uuid5(subscription_id, str(event_id))


def deliveries(session: Session, subscription_id: uuid.UUID, query: DeliveryFilter) -> Page[DeliveryOut]:
    """A subscription's deliveries, newest first, each with every attempt."""
    get(session, subscription_id)
    limit = clamp_limit(query.limit)
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if query.state:
        stmt = stmt.where(WebhookDelivery.state == query.state)
    if query.cursor:
        stmt = stmt.where(tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < decode_cursor(query.cursor))
    rows = session.scalars(stmt).all()
    attempts = _attempts(session, [row.id for row in rows[:limit]])
    return page_of(rows, limit, key=lambda d: (d.created_at, d.id), out=lambda d: _delivery_out(d, attempts))


def _attempts(session: Session, delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[AttemptOut]]:
    found: dict[uuid.UUID, list[AttemptOut]] = {delivery: [] for delivery in delivery_ids}
    rows = session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
    )
    for row in rows:
        found[row.delivery_id].append(AttemptOut.model_validate(row, from_attributes=True))
    return found


def _delivery_out(delivery: WebhookDelivery, attempts: dict[uuid.UUID, list[AttemptOut]]) -> DeliveryOut:
    return DeliveryOut.model_validate(
        {
            "id": delivery.id,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "state": delivery.state,
            "created_at": delivery.created_at,
            "next_attempt_at": delivery.next_attempt_at,
            "attempts": attempts[delivery.id],
        }
    )


def retry(session: Session, subscription_id: uuid.UUID, delivery: uuid.UUID, settings: WebhookSettings) -> DeliveryOut:
    """Send a failed (or still pending) delivery again now, with a new retry window; 409 once delivered."""
    row = session.get(WebhookDelivery, delivery, with_for_update=True)
    if row is None or row.subscription_id != subscription_id:
        raise NotFound(f"Delivery {delivery} of subscription {subscription_id} does not exist.")
    if row.state == "delivered":
        raise Conflict(f"Delivery {delivery} was delivered; there is nothing to re-send.")
    now = datetime.now(UTC)
    row.state, row.next_attempt_at = "pending", now
    row.give_up_at = now + timedelta(seconds=settings.give_up_after_s)
    session.flush()
    return _delivery_out(row, _attempts(session, [row.id]))
