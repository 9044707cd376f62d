"""Faults while events flow: nothing committed is lost, nothing is applied twice.

Each test runs a whole stack of its own (APIs, relays, consumers, NGINX) in its own RabbitMQ
vhost, injects one fault, and prints what happened to every event (tally.Tally).
"""

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from harness import RABBITMQ, bearer, broker, eventually, observer_url, rabbitmqctl, running_stack, stack_module
from proxy import Proxy
from sqlalchemy import create_engine, text
from tally import DATABASE_OF, FAULT_DATABASES, Tally, outbox_event_ids, record_figures, tally

from painkiller_common.contracts import EXCHANGE
from painkiller_common.topology import PATIENT_EVENTS_FOR_MEASUREMENTS

BROKER = (RABBITMQ.split(":")[0], int(RABBITMQ.split(":")[1]))
CONVERGE_S = 90  # workers reconnect with back-off of up to 10 s


@dataclass
class Faulty:
    stack: stack_module.Stack
    amqp_url: str  # the test's own connection, not one of the stack's users
    relay_proxy: Proxy  # between the measurement relay and RabbitMQ
    consumer_proxy: Proxy  # between the patient consumer and RabbitMQ
    client: httpx.Client


@pytest.fixture
def faulty() -> Iterator[Faulty]:
    relay_proxy, consumer_proxy = Proxy(BROKER), Proxy(BROKER)
    with broker() as users:
        overrides = {
            "measurement-relay": {"MEASUREMENT_AMQP_URL": users.url("measurement", f"127.0.0.1:{relay_proxy.port}")},
            "patient-consumer": {"PATIENT_AMQP_URL": users.url("patient", f"127.0.0.1:{consumer_proxy.port}")},
        }
        with (
            running_stack(FAULT_DATABASES, users, overrides) as stack,
            httpx.Client(base_url=stack.url, timeout=10, headers=bearer(stack)) as client,
        ):
            yield Faulty(stack, observer_url(users.vhost), relay_proxy, consumer_proxy, client)
    relay_proxy.close()
    consumer_proxy.close()


def create_patients(client: httpx.Client, count: int) -> list[str]:
    ids = []
    for i in range(count):
        response = client.post("/api/v1/patient", json={"first_name": f"P{i}", "last_name": "Fault", "age": 50})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    return ids


def post_readings(client: httpx.Client, patient_ids: list[str], per_patient: int) -> tuple[int, int]:
    """Post readings with rising heart rates; (attempted, committed)."""
    attempted = committed = 0
    for n in range(per_patient):
        for patient_id in patient_ids:
            attempted += 1
            response = client.post(f"/api/v1/patient/{patient_id}/measurements", json={"heart_rate_bpm": 60 + n})
            committed += response.status_code == 201
    return attempted, committed


def kill9(stack: stack_module.Stack, name: str) -> None:
    process = stack.processes[name]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def restart(stack: stack_module.Stack, name: str) -> None:
    stack.processes[name] = stack_module.start_process(stack, name)


def pending(producer: str) -> int:
    engine = create_engine(FAULT_DATABASES[DATABASE_OF[producer]])
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one()
    finally:
        engine.dispose()


def tally_once(
    run_dir: Path, producer: str, until: Callable[[Tally], bool], *, timeout_s: float = 20, **counts: Any
) -> Tally:
    """The tally of `producer`'s events, as soon as `until` holds for it."""
    return eventually(lambda: t if until(t := tally(run_dir, producer, **counts)) else None, timeout_s=timeout_s)


def converged(run_dir: Path, producer: str, **counts: Any) -> Tally:
    """The tally once every event the producer committed has been applied."""
    return tally_once(run_dir, producer, lambda t: t.lost == 0, timeout_s=CONVERGE_S, **counts)


def warm_up(f: Faulty) -> list[str]:
    """A patient with one reading whose events went all the way round: every worker is connected."""
    patient_ids = create_patients(f.client, 1)
    post_readings(f.client, patient_ids, 1)
    converged(f.stack.run_dir, "patient_service", attempted=0, committed=0)
    converged(f.stack.run_dir, "measurement_service", attempted=0, committed=0)
    return patient_ids


def test_broker_stopped_while_writes_continue(faulty: Faulty) -> None:
    warm_up(faulty)
    before = outbox_event_ids("patient_service") | outbox_event_ids("measurement_service")
    rabbitmqctl("stop_app")
    try:
        patient_ids = create_patients(faulty.client, 10)
        attempted, committed = post_readings(faulty.client, patient_ids, 3)
        checks = faulty.client.get("/api/v1/measures/health/ready").json()["checks"]
        assert checks["broker"] == "unreachable"
        assert checks["outbox"]["pending"] >= 30
        time.sleep(3)  # a stretch with the broker down
    finally:
        rabbitmqctl("start_app")
    assert committed == attempted == 30

    run_dir = faulty.stack.run_dir
    readings = converged(run_dir, "measurement_service", attempted=attempted, committed=committed, since_ids=before)
    patients = converged(run_dir, "patient_service", attempted=10, committed=10, since_ids=before)
    record_figures("broker stopped: measurement events", readings)
    record_figures("broker stopped: patient events", patients)
    for figures in (readings, patients):
        assert (figures.lost, figures.applied_twice) == (0, 0)
    for patient_id in patient_ids:  # every replica converged on the last reading
        latest = faulty.client.get(f"/api/v1/patient/{patient_id}").json()["latest_vitals"]
        assert latest["heart_rate_bpm"]["value"] == 62


def test_relay_killed_between_publish_and_mark(faulty: Faulty) -> None:
    patient_ids = warm_up(faulty)
    before = outbox_event_ids("measurement_service")
    relay = faulty.stack.processes["measurement-relay"]
    relay.send_signal(signal.SIGSTOP)  # so that all 20 go out in one batch
    attempted, committed = post_readings(faulty.client, patient_ids, 20)
    counts = {"attempted": attempted, "committed": committed, "since_ids": before}
    faulty.relay_proxy.freeze_to_client()  # confirms are held: published, never marked
    relay.send_signal(signal.SIGCONT)
    published = tally_once(faulty.stack.run_dir, "measurement_service", lambda t: t.lost == 0, **counts)
    assert published.applied == 20
    assert pending("measurement_service") == 20, "the relay marked events it had no confirm for"

    kill9(faulty.stack, "measurement-relay")
    faulty.relay_proxy.cut()
    restart(faulty.stack, "measurement-relay")
    eventually(lambda: pending("measurement_service") == 0, timeout_s=CONVERGE_S)
    figures = tally_once(faulty.stack.run_dir, "measurement_service", lambda t: t.duplicates_delivered >= 20, **counts)
    record_figures("relay SIGKILL between publish and mark", figures)
    assert (figures.lost, figures.applied_twice) == (0, 0)


def test_consumer_killed_between_commit_and_ack(faulty: Faulty) -> None:
    patient_ids = warm_up(faulty)
    before = outbox_event_ids("measurement_service")
    faulty.consumer_proxy.freeze_to_broker()  # acks are held: applied and committed, never acked
    attempted, committed = post_readings(faulty.client, patient_ids, 20)
    counts = {"attempted": attempted, "committed": committed, "since_ids": before}
    applied = tally_once(faulty.stack.run_dir, "measurement_service", lambda t: t.lost == 0, **counts)
    assert applied.applied == 20

    kill9(faulty.stack, "patient-consumer")
    faulty.consumer_proxy.cut()  # the broker sees the consumer gone and requeues what it had
    restart(faulty.stack, "patient-consumer")
    figures = tally_once(
        faulty.stack.run_dir,
        "measurement_service",
        lambda t: t.duplicates_delivered >= 20,
        timeout_s=CONVERGE_S,
        **counts,
    )
    record_figures("consumer SIGKILL between commit and ack", figures)
    assert (figures.lost, figures.applied_twice) == (0, 0)
    latest = faulty.client.get(f"/api/v1/patient/{patient_ids[0]}").json()["latest_vitals"]
    assert latest["heart_rate_bpm"]["value"] == 79


def test_forged_message_is_dead_lettered_while_the_rest_flow(faulty: Faulty) -> None:
    warm_up(faulty)
    before = outbox_event_ids("patient_service")
    poison_id = f"poison-{uuid.uuid4()}"
    connection = pika.BlockingConnection(pika.URLParameters(faulty.amqp_url))
    try:
        channel = connection.channel()
        channel.basic_publish(
            EXCHANGE,
            "patient.created",
            b'{"type": "patient.created", "payload": "not a patient"}',
            properties=pika.BasicProperties(message_id=poison_id, delivery_mode=2, content_type="application/json"),
        )
        patient_ids = create_patients(faulty.client, 5)
        dead_letter_queue = PATIENT_EVENTS_FOR_MEASUREMENTS.dead_letter_queue

        def dead_lettered() -> bool:
            return channel.queue_declare(dead_letter_queue, passive=True).method.message_count == 1

        eventually(dead_lettered, timeout_s=30)
        method, properties, _ = channel.basic_get(dead_letter_queue, auto_ack=True)
        assert properties.message_id == poison_id
    finally:
        connection.close()

    figures = converged(faulty.stack.run_dir, "patient_service", attempted=5, committed=5, since_ids=before)
    record_figures("forged message among good ones", figures)
    assert (figures.lost, figures.applied_twice, figures.applied) == (0, 0, 5)
    # Published by no producer the consumer trusts, and not an event: refused at once, never retried.
    refusals = (faulty.stack.run_dir / "measurement-consumer.log").read_text().count(f"event {poison_id} refused")
    assert refusals == 1, refusals
    for patient_id in patient_ids:  # the good events were applied: the replica knows them
        assert (
            faulty.client.post(f"/api/v1/patient/{patient_id}/measurements", json={"spo2_percent": 97}).status_code
            == 201
        )
