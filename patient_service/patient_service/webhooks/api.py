"""Routes of the webhook subscriptions, under /api/v1/patient/subscriptions (doc/alerts.md).

Subscribing is for the ward's systems and staff (`system/` or `user/` scopes on `Subscription`):
a `patient/` token reaches one patient's record and cannot have that patient's alerts, or anyone
else's, sent elsewhere.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from painkiller_common.db import SessionDep
from painkiller_common.http.bodies import JsonBody, json_response
from painkiller_common.http.pagination import Cursor, Limit, Page
from painkiller_common.http.problems import problem_responses
from patient_service.patients.api import PREFIX, SettingsDep
from patient_service.permissions import (
    CreateSubscription,
    DeleteSubscription,
    ReadSubscription,
    SearchSubscriptions,
    UpdateSubscription,
)
from patient_service.webhooks import store
from patient_service.webhooks.schemas import (
    DeliveryFilter,
    DeliveryOut,
    SecretOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
)

router = APIRouter(prefix=f"{PREFIX}/subscriptions", tags=["subscriptions"])


@router.post(
    "",
    name="subscription_create",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionCreated,
    dependencies=JsonBody,
    responses=problem_responses(415, 422),
)
def create_subscription(
    data: SubscriptionCreate, session: SessionDep, settings: SettingsDep, access: CreateSubscription
) -> Response:
    """Send these events to `url`, signed (Standard Webhooks). The answer holds the signing secret,
    shown only here; 422 for a URL that is not https to a public address."""
    subscription, secret = store.subscribe(session, data, settings.webhooks, access.actor)
    access.record(session, 201, [(subscription.id, None)])
    created = SubscriptionCreated(**store.to_out(subscription).model_dump(), secret=secret)
    response = json_response(created, status.HTTP_201_CREATED)
    response.headers["Location"] = f"{router.prefix}/{subscription.id}"
    return response


@router.get("", name="subscription_list", response_model=Page[SubscriptionOut], responses=problem_responses(422))
def list_subscriptions(
    session: SessionDep,
    access: SearchSubscriptions,
    limit: Annotated[Limit | None, Query()] = None,
    cursor: Cursor | None = None,
) -> Response:
    """Every subscription, oldest first (no secrets)."""
    page = store.subscriptions(session, limit, cursor)
    access.record(session, 200, [(subscription.id, None) for subscription in page.items])
    return json_response(page)


@router.get(
    "/{subscription_id:uuid}",
    name="subscription_read",
    response_model=SubscriptionOut,
    responses=problem_responses(404),
)
def get_subscription(subscription_id: uuid.UUID, session: SessionDep, access: ReadSubscription) -> Response:
    subscription = store.to_out(store.get(session, subscription_id))
    access.record(session, 200, [(subscription_id, None)])
    return json_response(subscription)


@router.delete(
    "/{subscription_id:uuid}",
    name="subscription_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
def delete_subscription(subscription_id: uuid.UUID, session: SessionDep, access: DeleteSubscription) -> None:
    """Stop sending; deliveries not yet made are dropped with the subscription."""
    store.unsubscribe(session, subscription_id)
    access.record(session, 204, [(subscription_id, None)])


@router.post(
    "/{subscription_id:uuid}/rotate-secret",
    name="subscription_rotate_secret",
    response_model=SecretOut,
    responses=problem_responses(404),
)
def rotate_secret(subscription_id: uuid.UUID, session: SessionDep, access: UpdateSubscription) -> Response:
    """A new signing secret; deliveries carry a signature by each of the old and new secrets for
    24 hours, so the receiver can switch without dropping any."""
    secret = store.rotate_secret(session, subscription_id)
    access.record(session, 200, [(subscription_id, None)])
    return json_response(SecretOut(secret=secret))


@router.get(
    "/{subscription_id:uuid}/deliveries",
    name="subscription_deliveries",
    response_model=Page[DeliveryOut],
    responses=problem_responses(404, 422),
)
def list_deliveries(
    subscription_id: uuid.UUID, query: Annotated[DeliveryFilter, Query()], session: SessionDep, access: ReadSubscription
) -> Response:
    """The subscription's deliveries, newest first, each with every attempt: status code or error,
    time, and when it is tried next."""
    page = store.deliveries(session, subscription_id, query)
    access.record(session, 200, [(subscription_id, None)])
    return json_response(page)


@router.post(
    "/{subscription_id:uuid}/deliveries/{delivery_id:uuid}/retry",
    name="subscription_delivery_retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses=problem_responses(404, 409),
)
def retry_delivery(
    subscription_id: uuid.UUID,
    delivery_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    access: UpdateSubscription,
) -> Response:
    """Send a failed delivery again now, with the same `webhook-id`, and retry it as a new one; 409
    once it was delivered."""
    delivery = store.retry(session, subscription_id, delivery_id, settings.webhooks)
    access.record(session, 202, [(subscription_id, None)])
    return json_response(delivery, status.HTTP_202_ACCEPTED)
