"""What the subscriptions API accepts and returns (doc/alerts.md)."""

import uuid
from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from painkiller_common.fields import Text
from painkiller_common.http.pagination import Cursor, Limit
from patient_service.models import DeliveryState

EventType = Literal["patient.risk_changed", "patient.created", "patient.updated", "patient.deleted"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
EXAMPLE_URL = "https://nurse-call.example.org/painkiller"
EXAMPLE_ID = "5d0c3e51-8f0a-4c36-9a8e-2a1b7c4d9e10"
EXAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwP8nN3aC5ZqE="
EXAMPLE_SUBSCRIPTION: dict[str, JsonValue] = {
    "id": EXAMPLE_ID, "url": "https://nurse-call.example.org/painkiller", "events": ["patient.risk_changed"],
    "description": "Ward 7 nurse call", "created_at": "2026-11-27T07:04:24.139Z",
}  # fmt: skip
EXAMPLE_DELIVERY: dict[str, JsonValue] = {
    "id": "35e4b8e8-e3a2-5846-9ed6-b8eafb9eed16", "event_id": "d799442d-cdb2-4d50-a9e4-64c7276cae08",
    "event_type": "patient.risk_changed", "state": "delivered", "created_at": "2026-11-27T07:04:30.303Z",
    "next_attempt_at": None,
    "attempts": [
        {"attempt": 1, "at": "2026-11-27T07:04:30.310Z", "status_code": 503, "error": None, "duration_ms": 31},
        {"attempt": 2, "at": "2026-11-27T07:04:34.120Z", "status_code": 200, "error": None, "duration_ms": 12},
    ],
}  # fmt: skip


def _distinct(events: list[str]) -> list[str]:
    if len(set(events)) != len(events):
        raise ValueError("name each event type once")
    return events


Url = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Where to POST: https to a public address (plain http and private addresses only "
        "for hosts in WEBHOOK_ALLOWED_HOSTS). Redirects are not followed.",
        examples=[EXAMPLE_URL],
    ),
]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": EXAMPLE_URL, "events": ["patient.risk_changed"]}]},
    )

    url: Url
    events: Annotated[list[EventType], AfterValidator(_distinct)] = Field(
        min_length=1, max_length=len(EVENT_TYPES), json_schema_extra={"uniqueItems": True}
    )
    description: Annotated[str, Text(500)] | None = None


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_SUBSCRIPTION]})

    id: uuid.UUID
    url: str
    events: list[EventType]
    description: str | None
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    model_config = ConfigDict(json_schema_extra={"examples": [{**EXAMPLE_SUBSCRIPTION, "secret": EXAMPLE_SECRET}]})

    secret: str = Field(
        description="Signs every delivery (Standard Webhooks, `whsec_<base64>`). Shown only now: keep it.",
        examples=[EXAMPLE_SECRET],
    )


class SecretOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"secret": EXAMPLE_SECRET}]})

    secret: str = Field(
        description="The new signing secret. The previous one also signs deliveries for 24 hours, so a "
        "receiver can switch without missing any.",
        examples=[EXAMPLE_SECRET],
    )


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None = Field(default=None, description="The receiver's answer; null when none came.")
    error: str | None = Field(default=None, description="Why no answer came (timeout, refused, unsafe target).")
    duration_ms: int


class DeliveryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_DELIVERY]})

    id: uuid.UUID = Field(description="Sent as `webhook-id` (`msg_<id without dashes>`) on every attempt.")
    event_id: uuid.UUID
    event_type: EventType
    state: DeliveryState
    created_at: datetime
    next_attempt_at: datetime | None = Field(
        default=None, description="When it is tried next; null once delivered or failed."
    )
    attempts: list[AttemptOut]


class DeliveryFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: DeliveryState | None = None
    limit: Limit | None = None
    cursor: Cursor | None = None
