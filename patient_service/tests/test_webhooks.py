"""Webhook subscriptions through the patient API, and the dispatcher's rules for deliveries, on the
real test database with a real receiver on loopback (doc/alerts.md). The whole path through the
broker is in tests/e2e/test_alerts_end_to_end.py."""

import base64
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from standardwebhooks import Webhook

from painkiller_common.contracts import PatientRiskChanged, RiskChange
from painkiller_common.db import notifications
from painkiller_common.db.notifications import wake_on_notify
from painkiller_common.events.consumer import Consumer
from painkiller_common.events.topology import PATIENT_EVENTS_FOR_WEBHOOKS
from painkiller_common.settings import ServiceSettings
from painkiller_testing.fixtures import served
from painkiller_testing.webhook_receiver import Answer, WebhookReceiver
from patient_service.config import Settings, WebhookSettings
from patient_service.models import EVENT_TABLES, WebhookSubscription
from patient_service.webhooks import dispatcher, targets

SUBSCRIPTIONS = "/api/v1/patient/subscriptions"
RISK = ["patient.risk_changed"]


def subscribe(client: TestClient, url: str, events: list[str] = RISK) -> dict:
    response = client.post(SUBSCRIPTIONS, json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    return response.json()


def risk_changed(band: str = "high") -> PatientRiskChanged:
    patient_id = uuid.uuid4()
    change = RiskChange(
        patient_id=patient_id, previous_band="low", band=band, news2_total=7, based_on=datetime.now(UTC)
    )
    return PatientRiskChanged(aggregate_id=patient_id, aggregate_version=1, payload=change)


def dispatcher_consumer(client: TestClient, settings: ServiceSettings) -> Consumer:
    """The dispatcher's consumer, applying events straight to the test database (no broker)."""
    assert isinstance(settings, Settings)
    return Consumer(
        session_factory=served(client).state.session_factory,
        tables=EVENT_TABLES,
        queue=PATIENT_EVENTS_FOR_WEBHOOKS,
        batch=lambda session: dispatcher.WebhookEvents(session, settings.webhooks),
        amqp_url=settings.amqp_url,
    )


@contextmanager
def listening_senders(settings: Settings) -> Iterator[threading.Event]:
    """What the dispatcher's senders wait on, set by its LISTEN thread; given once it listens."""
    made, stop = threading.Event(), threading.Event()
    args = (settings.database_url, dispatcher.DELIVERIES_CHANNEL, made, stop)
    listener = threading.Thread(target=wake_on_notify, args=args, daemon=True)
    listener.start()
    try:
        assert made.wait(10), "the listener did not start"  # set once as it starts listening
        made.clear()
        yield made
    finally:
        stop.set()
        listener.join(timeout=notifications.STOP_CHECK_S + 5)


def test_an_idle_sender_waits_for_new_deliveries_or_the_earliest_due_one(
    client: TestClient, settings: ServiceSettings
) -> None:
    """No polling at rest: a delivery made by any dispatcher's consumer, or resent through the API,
    wakes the senders at its commit (NOTIFY); a sender with nothing to claim waits until the earliest
    pending one is due, at most POLL_S."""
    assert isinstance(settings, Settings)
    sender = dispatcher.Sender(served(client).state.engine, settings.webhooks)
    assert sender.idle_wait() == dispatcher.POLL_S  # nothing pending
    with WebhookReceiver(answers=[Answer(500)]) as receiver, listening_senders(settings) as made:
        created = subscribe(client, receiver.url)
        assert not made.wait(0.5)  # a subscription is no delivery
        dispatcher_consumer(client, settings).apply(risk_changed())
        assert made.wait(5)
        assert sender.idle_wait() == dispatcher.BUSY_WAIT_S  # due now, so held by another sender
        made.clear()
        assert sender.deliver_one() is True  # 500: due again in 2.5 to 5 s
        assert made.wait(5)  # a retry scheduled: the senders look again when the earliest is due
        assert dispatcher.BUSY_WAIT_S < sender.idle_wait() <= dispatcher.POLL_S

        made.clear()
        deliveries_url = f"{SUBSCRIPTIONS}/{created['id']}/deliveries"
        [delivery] = client.get(deliveries_url).json()["items"]
        assert client.post(f"{deliveries_url}/{delivery['id']}/retry").status_code == 202
        assert made.wait(5)  # resent through the API: due now
        assert sender.idle_wait() == dispatcher.BUSY_WAIT_S


def test_the_senders_poll_while_their_listener_cannot_reach_the_database() -> None:
    """A LISTEN connection that cannot be made wakes the senders at each attempt: they poll."""
    made, stop = threading.Event(), threading.Event()
    nowhere = "postgresql+psycopg://nobody@127.0.0.1:9/none"  # nothing listens on port 9
    args = (nowhere, dispatcher.DELIVERIES_CHANNEL, made, stop)
    listener = threading.Thread(target=wake_on_notify, args=args, daemon=True)
    listener.start()
    try:
        for _ in range(2):
            assert made.wait(notifications.RETRY_S + 5)
            made.clear()
    finally:
        stop.set()
        listener.join(timeout=notifications.RETRY_S + 5)
    assert not listener.is_alive()


def test_a_subscription_shows_its_signing_secret_once(client: TestClient) -> None:
    response = client.post(SUBSCRIPTIONS, json={"url": "http://127.0.0.1:9/hook", "events": RISK})
    assert response.status_code == 201
    created = response.json()
    assert created["secret"].startswith("whsec_") and len(base64.b64decode(created["secret"][6:])) == 32
    assert response.headers["location"] == f"{SUBSCRIPTIONS}/{created['id']}"

    read = client.get(response.headers["location"]).json()
    assert read == {key: value for key, value in created.items() if key != "secret"}
    listed = client.get(SUBSCRIPTIONS).json()
    assert listed == {"items": [read], "next_cursor": None}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://nurse-call.example.org/hook", "must use https"),
        ("http://10.0.0.7/hook", "must use https"),
        ("https://10.0.0.7/hook", "private, loopback or reserved"),
        ("https://169.254.169.254/latest/meta-data", "private, loopback or reserved"),
        ("https://[::1]/hook", "private, loopback or reserved"),
        ("https://[::ffff:127.0.0.2]/hook", "private, loopback or reserved"),
        ("https://nowhere.invalid/hook", "does not resolve"),
        ("https://nurse:secret@127.0.0.1/hook", "may not hold credentials"),
        ("https://[::1/hook", "not a valid URL"),
        ("ftp://127.0.0.1/hook", "should match pattern"),
    ],
)
def test_an_unsafe_url_is_refused_with_422_and_nothing_is_stored(
    client: TestClient, stored: Callable[[str], int], url: str, reason: str
) -> None:
    response = client.post(SUBSCRIPTIONS, json={"url": url, "events": RISK})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "url" and reason in error["message"], error
    assert stored("webhook_subscriptions") == 0


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::7f00:1", "64:ff9b::a00:7", "2002:7f00:1::1", "2001:0:4136:e378::1", "192.0.0.171", "fec0::1",
     "100::1", "2001:db8::1", "198.18.0.1", "192.88.99.1", "fd00::1", "ff02::1"],
)  # fmt: skip
def test_special_ranges_that_reach_inwards_are_refused(address: str) -> None:
    """NAT64, 6to4, Teredo and the other special ranges, whatever this Python's `is_global` says."""
    with pytest.raises(targets.UnsafeTarget, match="private, loopback or reserved"):
        targets.check(f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook", frozenset())


def test_no_host_is_allowed_plain_http_or_inward_by_default() -> None:
    assert WebhookSettings().allowed == frozenset()


def test_a_name_that_resolves_inward_is_refused_unless_allowed() -> None:
    """No SSRF through DNS: the check is on the addresses a name resolves to."""
    with pytest.raises(targets.UnsafeTarget, match="private, loopback or reserved"):
        targets.check("https://localhost/hook", allowed_hosts=frozenset())
    with pytest.raises(targets.UnsafeTarget, match="private, loopback or reserved"):
        targets.check(f"https://{socket.gethostname()}/hook", allowed_hosts=frozenset())
    target = targets.check("http://localhost:8099/hook?x=1", allowed_hosts=frozenset({"localhost"}))
    # The delivery goes to the address that was checked, the name kept for Host (and TLS).
    assert target.connect_url in ("http://127.0.0.1:8099/hook?x=1", "http://[::1]:8099/hook?x=1")
    assert target.host_header == "localhost:8099"


def test_a_patient_token_cannot_subscribe(client: TestClient, token: Callable[..., str]) -> None:
    patient_token = token(scope="patient/*.cruds", patient=str(uuid.uuid4()))
    response = client.post(
        SUBSCRIPTIONS,
        json={"url": "http://127.0.0.1:9/hook", "events": RISK},
        headers={"Authorization": f"Bearer {patient_token}"},
    )
    assert response.status_code == 403
    assert client.get(SUBSCRIPTIONS, headers={"Authorization": f"Bearer {patient_token}"}).status_code == 403


@pytest.mark.parametrize(
    ("events", "message"),
    [([], "at least 1 item"), (["patient.risk_changed", "patient.risk_changed"], "each event type once")],
)
def test_events_must_be_named_once_each(client: TestClient, events: list[str], message: str) -> None:
    response = client.post(SUBSCRIPTIONS, json={"url": "http://127.0.0.1:9/hook", "events": events})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "events" and message in error["message"]


def test_a_deleted_subscription_is_gone(client: TestClient) -> None:
    created = subscribe(client, "http://127.0.0.1:9/hook")
    assert client.delete(f"{SUBSCRIPTIONS}/{created['id']}").status_code == 204
    assert client.get(f"{SUBSCRIPTIONS}/{created['id']}").status_code == 404
    assert client.delete(f"{SUBSCRIPTIONS}/{created['id']}").status_code == 404
    assert client.get(f"{SUBSCRIPTIONS}/{created['id']}/deliveries").status_code == 404


def test_after_a_rotation_both_secrets_sign_for_a_day(client: TestClient) -> None:
    created = subscribe(client, "http://127.0.0.1:9/hook")
    response = client.post(f"{SUBSCRIPTIONS}/{created['id']}/rotate-secret")
    assert response.status_code == 200
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != created["secret"]

    with served(client).state.session_factory() as session:
        subscription = session.get(WebhookSubscription, uuid.UUID(created["id"]))
        assert subscription is not None
        now = datetime.now(UTC)
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": dispatcher.signature(subscription, "msg_1", now, "{}"),
        }
    assert Webhook(new).verify("{}", headers) == {}
    assert Webhook(created["secret"]).verify("{}", headers) == {}


def test_an_event_arriving_twice_makes_one_delivery(client: TestClient, settings: ServiceSettings) -> None:
    wanted = subscribe(client, "http://127.0.0.1:9/hook")
    subscribe(client, "http://127.0.0.1:9/other", events=["patient.deleted"])
    consumer, event = dispatcher_consumer(client, settings), risk_changed()
    assert consumer.apply(event) is True
    assert consumer.apply(event) is False

    deliveries = client.get(f"{SUBSCRIPTIONS}/{wanted['id']}/deliveries").json()["items"]
    assert [(d["event_id"], d["state"], d["attempts"]) for d in deliveries] == [(str(event.event_id), "pending", [])]


def test_a_failing_receiver_is_retried_with_backoff_then_failed_and_can_be_resent(
    client: TestClient, settings: ServiceSettings
) -> None:
    assert isinstance(settings, Settings)
    sender = dispatcher.Sender(served(client).state.engine, settings.webhooks)
    with WebhookReceiver(answers=[Answer(500), Answer(503)]) as receiver:
        created = subscribe(client, receiver.url)
        dispatcher_consumer(client, settings).apply(event := risk_changed())
        deliveries_url = f"{SUBSCRIPTIONS}/{created['id']}/deliveries"

        assert sender.deliver_one() is True  # 500: due again in 2.5 to 5 s
        [delivery] = client.get(deliveries_url).json()["items"]
        [first] = delivery["attempts"]
        assert (delivery["state"], first["status_code"]) == ("pending", 500)
        wait = datetime.fromisoformat(delivery["next_attempt_at"]) - datetime.fromisoformat(first["at"])
        assert 2.5 <= wait.total_seconds() <= 5
        assert sender.deliver_one() is False  # nothing else is due yet

        # A day later the last retry fails too: the delivery is failed, not retried again.
        with served(client).state.engine.begin() as conn:
            conn.execute(text("UPDATE webhook_deliveries SET next_attempt_at = now(), give_up_at = now()"))
        assert sender.deliver_one() is True
        [delivery] = client.get(deliveries_url).json()["items"]
        assert (delivery["state"], delivery["next_attempt_at"]) == ("failed", None)
        assert client.get(deliveries_url, params={"state": "pending"}).json()["items"] == []

        # Re-sent by hand: delivered, with the same webhook-id every time, each signed.
        retried = client.post(f"{deliveries_url}/{delivery['id']}/retry")
        assert (retried.status_code, retried.json()["state"]) == (202, "pending")
        assert sender.deliver_one() is True

    [delivery] = client.get(deliveries_url).json()["items"]
    assert delivery["state"] == "delivered"
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(1, 500), (2, 503), (3, 200)]
    assert {r.headers["webhook-id"] for r in receiver.received} == {f"msg_{uuid.UUID(delivery['id']).hex}"}
    for received in receiver.received:
        body = Webhook(created["secret"]).verify(received.body, received.headers)
        assert body["type"] == "patient.risk_changed"
        assert body["data"]["patient_id"] == str(event.payload.patient_id)
    assert client.post(f"{deliveries_url}/{delivery['id']}/retry").status_code == 409
    assert client.post(f"{deliveries_url}/{uuid.uuid4()}/retry").status_code == 404
