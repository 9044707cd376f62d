"""Alerts reach a receiver: readings through NGINX, the risk change through the outbox, relay and
broker, the dispatcher's signed POST to a receiver on loopback (doc/alerts.md). Each test checks
what the receiver saw: one message per band rise, the same `webhook-id` on every retry, nothing
lost while the receiver or the dispatcher is down."""

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pika
import stack as stack_module
from harness import eventually, free_port
from standardwebhooks import Webhook
from test_risk_end_to_end import SERIES

from painkiller_common.contracts import EXCHANGE, PatientRiskChanged, RiskChange
from painkiller_testing.webhook_receiver import Answer, Received, WebhookReceiver

SUBSCRIPTIONS = "/api/v1/patient/subscriptions"


def subscribe(api: httpx.Client, url: str, events: list[str]) -> dict:
    response = api.post(SUBSCRIPTIONS, json={"url": url, "events": events, "description": "ward 7 nurse call"})
    assert response.status_code == 201, response.text
    return response.json()


def messages(receiver: WebhookReceiver, count: int, timeout_s: float = 20) -> list[Received]:
    """The first `count` requests the receiver got, once it has had them."""
    return eventually(lambda: len(receiver.received) >= count and receiver.received[:count], timeout_s=timeout_s)


def create_patient(api: httpx.Client) -> str:
    response = api.post("/api/v1/patient", json={"first_name": "Tom", "last_name": "Kent", "age": 67})
    assert response.status_code == 201
    return response.json()["id"]


def deliveries(api: httpx.Client, subscription: dict) -> list[dict]:
    return api.get(f"{SUBSCRIPTIONS}/{subscription['id']}/deliveries").json()["items"]


def test_a_deteriorating_patient_sends_one_signed_alert_per_band_rise_within_5_s(api: httpx.Client) -> None:
    with WebhookReceiver() as receiver:
        subscription = subscribe(api, receiver.url, ["patient.risk_changed"])
        patient_id = create_patient(api)
        start = datetime.now(UTC) - timedelta(hours=3)
        committed: list[float] = []
        for hour, vitals in enumerate(SERIES):  # NEWS2 0 (low), 6 (medium), 17 (high)
            measured_at = (start + timedelta(hours=hour)).isoformat()
            response = api.post(
                f"/api/v1/patient/{patient_id}/measurements", json={**vitals, "measured_at": measured_at}
            )
            assert response.status_code == 201
            committed.append(time.time())  # the reading's transaction committed before its 201
            if hour:
                messages(receiver, hour)  # each rise arrives before the next reading is sent
            else:  # assessed (low) before the next reading: a rise from low, not from nothing
                eventually(lambda: (api.get(f"/api/v1/patient/{patient_id}").json()["risk"] or {}).get("band"))
        alerts = messages(receiver, 2)
        time.sleep(1)  # nothing more comes: one alert per rise
        assert len(receiver.received) == 2

    verify = Webhook(subscription["secret"]).verify
    bodies = [verify(alert.body, alert.headers) for alert in alerts]
    assert [(b["type"], b["data"]["previous_band"], b["data"]["band"]) for b in bodies] == [
        ("patient.risk_changed", "low", "medium"),
        ("patient.risk_changed", "medium", "high"),
    ]
    assert [b["data"]["news2_total"] for b in bodies] == [6, 17]
    assert all(b["data"]["patient_id"] == patient_id and b["data"]["based_on"] for b in bodies)
    latencies = [alert.at - at for alert, at in zip(alerts, committed[1:], strict=True)]
    print(f"reading's commit to alert received: {', '.join(f'{s:.2f} s' for s in latencies)}")
    assert all(0 < latency < 5 for latency in latencies), latencies
    assert len({alert.headers["webhook-id"] for alert in alerts}) == 2
    assert [d["state"] for d in deliveries(api, subscription)] == ["delivered", "delivered"]


def test_a_receiver_answering_500_gets_the_same_message_again(api: httpx.Client) -> None:
    with WebhookReceiver(answers=[Answer(500)]) as receiver:
        subscription = subscribe(api, receiver.url, ["patient.created"])
        create_patient(api)
        first, second = messages(receiver, 2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert 0 < second.at - first.at < 10  # the first retry comes within 10 s
    [delivery] = deliveries(api, subscription)
    assert delivery["state"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]


def test_a_trickling_receiver_holds_one_sender_for_10_s_and_starves_no_one(api: httpx.Client) -> None:
    """A receiver that answers a byte every 2 s would hold a sender for minutes, and with four of its
    deliveries due, every sender: each attempt ends at its 10 s deadline, a receiver gets one
    delivery at a time, and another subscription's alert still arrives within 5 s."""
    with WebhookReceiver(answers=[Answer(trickle_s=2.0)] * 20) as slow, WebhookReceiver() as good:
        slow_subscription = subscribe(api, slow.url, ["patient.created"])
        for _ in range(6):
            create_patient(api)
        messages(slow, 1)  # its first attempt is under way
        subscribe(api, good.url, ["patient.created"])
        created = time.time()
        create_patient(api)
        [message] = messages(good, 1, timeout_s=15)
        print(f"another subscription's alert came {message.at - created:.2f} s after its event")
        assert message.at - created < 5
        assert len(slow.received) == 1  # the slow receiver holds one sender, not all of them

        def attempts() -> list[dict]:
            return [a for d in deliveries(api, slow_subscription) for a in d["attempts"]]

        eventually(attempts, timeout_s=20)
    assert all(a["error"] == "no answer within 10 s" and a["duration_ms"] < 11_000 for a in attempts())


def test_a_receiver_down_for_20_s_gets_the_message_when_it_is_back(api: httpx.Client) -> None:
    port = free_port()  # nothing listens there yet: connections are refused
    subscription = subscribe(api, f"http://127.0.0.1:{port}/hooks/painkiller", ["patient.created"])
    down_since = time.time()
    patient_id = create_patient(api)
    eventually(lambda: sum(len(d["attempts"]) for d in deliveries(api, subscription)) >= 2, timeout_s=20)
    time.sleep(max(0.0, down_since + 20 - time.time()))
    with WebhookReceiver(port=port) as receiver:
        [message] = messages(receiver, 1, timeout_s=70)  # retries are 20 to 40 s apart by now
    print(f"receiver back after 20 s; message received after {message.at - down_since:.1f} s")
    body = Webhook(subscription["secret"]).verify(message.body, message.headers)
    assert body == {"type": "patient.created", "timestamp": body["timestamp"], "data": {"id": patient_id}}
    [delivery] = deliveries(api, subscription)
    assert delivery["state"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]][-1] == 200
    assert all(a["error"] for a in delivery["attempts"][:-1])


def test_the_dispatcher_killed_mid_delivery_loses_nothing(api: httpx.Client, stack: stack_module.Stack) -> None:
    # The receiver holds the first POST for 5 s; the dispatcher is killed while it waits.
    with WebhookReceiver(answers=[Answer(200, delay_s=5)]) as receiver:
        subscription = subscribe(api, receiver.url, ["patient.created"])
        first = create_patient(api)
        messages(receiver, 1)
        kill9_and_restart(stack, "patient-dispatcher", while_down=lambda: create_patient(api))
        # The held POST is sent again, and the event that came while the dispatcher was down too.
        received = eventually(lambda: len(receiver.received) >= 3 and receiver.received, timeout_s=30)
        time.sleep(1)
    by_patient: dict[str, set[str]] = {}
    for message in received:
        body = Webhook(subscription["secret"]).verify(message.body, message.headers)
        by_patient.setdefault(body["data"]["id"], set()).add(message.headers["webhook-id"])
    assert first in by_patient and len(by_patient) == 2
    assert all(len(ids) == 1 for ids in by_patient.values())  # a resend keeps its webhook-id
    assert sorted(d["state"] for d in deliveries(api, subscription)) == ["delivered", "delivered"]


def kill9_and_restart(stack: stack_module.Stack, name: str, while_down: Callable[[], object]) -> None:
    """SIGKILL, what happens meanwhile, and the process back (its supervisor restarts it)."""
    pid = stack.supervisor.pid(name)
    os.kill(pid, signal.SIGKILL)
    while_down()
    stack.supervisor.wait_running(name, not_pid=pid)


def test_an_event_published_twice_is_delivered_once(api: httpx.Client, stack: stack_module.Stack) -> None:
    """As a relay killed between publishing and marking its outbox row would publish it."""
    patient_id = uuid.uuid4()
    change = RiskChange(
        patient_id=patient_id, previous_band="low", band="high", news2_total=9, based_on=datetime.now(UTC)
    )
    event = PatientRiskChanged(aggregate_id=patient_id, aggregate_version=1, payload=change)
    publisher = pika.URLParameters(stack.env["PATIENT_AMQP_URL"])  # as the patient service's relay
    with WebhookReceiver() as receiver:
        subscription = subscribe(api, receiver.url, ["patient.risk_changed"])
        connection = pika.BlockingConnection(publisher)
        try:
            properties = pika.BasicProperties(
                message_id=str(event.event_id),
                type=event.type,
                user_id=publisher.credentials.username,
                content_type="application/json",
                delivery_mode=2,
            )
            for _ in range(2):
                connection.channel().basic_publish(EXCHANGE, event.type, event.model_dump_json(), properties)
        finally:
            connection.close()
        [message] = messages(receiver, 1)
        time.sleep(2)
        assert len(receiver.received) == 1
    assert json.loads(message.body)["data"]["patient_id"] == str(patient_id)
    assert len(deliveries(api, subscription)) == 1
