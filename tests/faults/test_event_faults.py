"""Faults while events flow: nothing committed is lost, nothing is applied twice.

Each test runs a whole stack of its own (APIs, relays, consumers, NGINX) in its own RabbitMQ
vhost, injects one fault, and prints what happened to every event (tally.Tally). The tally
scenarios run twice: with one of every process, and with two (both replicas of a kind behind
the same proxy, and a kill takes both).
"""

import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pika
from faulty import (
    BOTH,
    CONVERGE_S,
    Faulty,
    converged,
    create_patients,
    kill9,
    pending,
    post_readings,
    restarted,
    signal_all,
    tally_once,
    warm_up,
)
from harness import eventually, rabbitmqctl
from sqlalchemy import create_engine, text
from tally import FAULT_DATABASES, outbox_event_ids, record_figures

from painkiller_common.contracts import EXCHANGE
from painkiller_common.events.topology import (
    MEASUREMENT_EVENTS_FOR_PATIENTS,
    PATIENT_EVENTS_FOR_MEASUREMENTS,
    UNROUTED,
    declare,
)


@BOTH
def test_broker_stopped_while_writes_continue(faulty: Faulty) -> None:
    warm_up(faulty)
    before = outbox_event_ids("patient_service") | outbox_event_ids("measurement_service")
    rabbitmqctl("stop_app")
    try:
        patient_ids = create_patients(faulty.client, 10)
        attempted, committed = post_readings(faulty.client, patient_ids, 3)

        def checks() -> dict:
            return faulty.client.get("/api/v1/measures/health/ready").json()["checks"]

        # As the measurement relay reported it, once it lost the broker.
        eventually(lambda: checks()["broker"] == "unreachable" or None)
        assert checks()["outbox"]["pending"] >= 30
        time.sleep(3)  # a stretch with the broker down
    finally:
        rabbitmqctl("start_app")
    assert committed == attempted == 30

    run_dir = faulty.stack.run_dir
    readings = converged(run_dir, "measurement_service", attempted=attempted, committed=committed, since_ids=before)
    patients = converged(run_dir, "patient_service", attempted=10, committed=10, since_ids=before)
    record_figures(faulty.named("broker stopped: measurement events"), readings)
    record_figures(faulty.named("broker stopped: patient events"), patients)
    for figures in (readings, patients):
        assert (figures.lost, figures.applied_twice) == (0, 0)
    for patient_id in patient_ids:  # every replica converged on the last reading
        latest = faulty.client.get(f"/api/v1/patient/{patient_id}").json()["latest_vitals"]
        assert latest["heart_rate_bpm"]["value"] == 62


@BOTH
def test_relay_killed_between_publish_and_mark(faulty: Faulty) -> None:
    patient_ids = warm_up(faulty)
    before = outbox_event_ids("measurement_service")
    signal_all(faulty.stack, "measurement-relay", signal.SIGSTOP)  # so that all 20 go out together
    attempted, committed = post_readings(faulty.client, patient_ids, 20)
    counts = {"attempted": attempted, "committed": committed, "since_ids": before}
    faulty.relay_proxy.freeze_to_client()  # confirms are held: published, never marked
    signal_all(faulty.stack, "measurement-relay", signal.SIGCONT)
    published = tally_once(faulty.stack.run_dir, "measurement_service", lambda t: t.lost == 0, **counts)
    assert published.applied == 20
    assert pending("measurement_service") == 20, "the relay marked events it had no confirm for"

    killed = kill9(faulty.stack, "measurement-relay")
    faulty.relay_proxy.cut()
    restarted(faulty.stack, killed)
    eventually(lambda: pending("measurement_service") == 0, timeout_s=CONVERGE_S)
    figures = tally_once(faulty.stack.run_dir, "measurement_service", lambda t: t.duplicates_delivered >= 20, **counts)
    record_figures(faulty.named("relay SIGKILL between publish and mark"), figures)
    assert (figures.lost, figures.applied_twice) == (0, 0)


@BOTH
def test_consumer_killed_between_commit_and_ack(faulty: Faulty) -> None:
    patient_ids = warm_up(faulty)
    before = outbox_event_ids("measurement_service")
    faulty.consumer_proxy.freeze_to_broker()  # acks are held: applied and committed, never acked
    attempted, committed = post_readings(faulty.client, patient_ids, 20)
    counts = {"attempted": attempted, "committed": committed, "since_ids": before}
    applied = tally_once(faulty.stack.run_dir, "measurement_service", lambda t: t.lost == 0, **counts)
    assert applied.applied == 20

    killed = kill9(faulty.stack, "patient-consumer")
    faulty.consumer_proxy.cut()  # the broker sees the consumer gone and requeues what it had
    restarted(faulty.stack, killed)
    figures = tally_once(
        faulty.stack.run_dir,
        "measurement_service",
        lambda t: t.duplicates_delivered >= 20,
        timeout_s=CONVERGE_S,
        **counts,
    )
    record_figures(faulty.named("consumer SIGKILL between commit and ack"), figures)
    assert (figures.lost, figures.applied_twice) == (0, 0)
    latest = faulty.client.get(f"/api/v1/patient/{patient_ids[0]}").json()["latest_vitals"]
    assert latest["heart_rate_bpm"]["value"] == 79


@BOTH
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
    record_figures(faulty.named("forged message among good ones"), figures)
    assert (figures.lost, figures.applied_twice, figures.applied) == (0, 0, 5)
    # Published by no producer the consumer trusts, and not an event: refused at once, never retried.
    logs = faulty.stack.run_dir.glob("measurement-consumer*.log")
    refusals = sum(log.read_text().count(f"event {poison_id} refused") for log in logs)
    assert refusals == 1, refusals
    for patient_id in patient_ids:  # the good events were applied: the replica knows them
        assert (
            faulty.client.post(f"/api/v1/patient/{patient_id}/measurements", json={"spo2_percent": 97}).status_code
            == 201
        )


# --- the relay and the consumer facing a refusing broker or a failing database --------------
# "Applied once" is read from the state: the patient service's replica rows and processed events.


def post_for_ids(client: httpx.Client, patient_id: str, heart_rates: list[int]) -> list[str]:
    """Post one reading per heart rate; the stored readings' ids."""
    ids = []
    for rate in heart_rates:
        response = client.post(f"/api/v1/patient/{patient_id}/measurements", json={"heart_rate_bpm": rate})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def run_sql(database: str, *statements: str) -> None:
    """As the database's owner (the migrations' role), who may add and drop triggers."""
    engine = create_engine(FAULT_DATABASES[f"{database}_MIGRATION_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def count_of(database: str, table: str, column: str, ids: list[str]) -> int:
    """How many rows of `table` have `column` in `ids`, in the patient or measurement database."""
    engine = create_engine(FAULT_DATABASES[f"{database}_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            sql = text(f"SELECT count(*) FROM {table} WHERE {column} = ANY(CAST(:ids AS uuid[]))")
            return conn.execute(sql, {"ids": ids}).scalar_one()
    finally:
        engine.dispose()


def replica_count(measurement_ids: list[str]) -> int:
    """How many of these readings the patient service holds (its primary key: at most once each)."""
    return count_of("PATIENT", "vital_readings", "measurement_id", measurement_ids)


def recorded_event_ids(measurement_ids: list[str]) -> dict[str, str]:
    """measurement id -> the event id of its `measurement.recorded` in the outbox."""
    engine = create_engine(FAULT_DATABASES["MEASUREMENT_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT aggregate_id, event_id FROM outbox WHERE event_type = 'measurement.recorded'"
                    " AND aggregate_id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": measurement_ids},
            ).all()
    finally:
        engine.dispose()
    return {str(aggregate): str(event) for aggregate, event in rows}


def applied_events(event_ids: list[str]) -> int:
    return count_of("PATIENT", "processed_events", "event_id", event_ids)


def assert_applied_once(client: httpx.Client, patient_id: str, measurement_ids: list[str]) -> None:
    """Each reading in the replica and its event processed, and the patient shows the last one."""
    eventually(lambda: replica_count(measurement_ids) == len(measurement_ids), timeout_s=CONVERGE_S)
    assert applied_events(list(recorded_event_ids(measurement_ids).values())) == len(measurement_ids)
    latest = client.get(f"/api/v1/patient/{patient_id}").json()["latest_vitals"]["heart_rate_bpm"]
    assert latest["measurement_id"] == measurement_ids[-1]


def queue_depth(channel: Any, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


@contextmanager
def observer(f: Faulty) -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(f.amqp_url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def test_relay_keeps_events_the_broker_nacks_and_sends_them_later(faulty: Faulty) -> None:
    """A queue that refuses every message (full, reject-publish) makes the broker nack each publish:
    the relay must not mark those rows published, and must send them again once it accepts."""
    (patient_id,) = warm_up(faulty)
    with observer(faulty) as channel:
        refusing = {"x-max-length": 0, "x-overflow": "reject-publish"}
        channel.queue_declare("refuses-everything", arguments=refusing)
        channel.queue_bind("refuses-everything", EXCHANGE, routing_key="measurement.*")
        ids = post_for_ids(faulty.client, patient_id, list(range(90, 100)))
        # The patient queue took them (a nack says one queue refused); the rows stay pending.
        eventually(lambda: replica_count(ids) == len(ids), timeout_s=CONVERGE_S)
        assert pending("measurement_service") == len(ids), "the relay marked events the broker nacked"
        channel.queue_delete("refuses-everything")
    eventually(lambda: pending("measurement_service") == 0, timeout_s=CONVERGE_S)
    assert_applied_once(faulty.client, patient_id, ids)


def test_relay_keeps_events_returned_unroutable(faulty: Faulty) -> None:
    """With no queue to take them (not even the alternate exchange's), events come back: the relay
    keeps them pending, and delivers them when the queues are back."""
    (patient_id,) = warm_up(faulty)
    queue = MEASUREMENT_EVENTS_FOR_PATIENTS
    with observer(faulty) as channel:
        for key in queue.bindings:
            channel.queue_unbind(queue.name, EXCHANGE, routing_key=key)
        channel.queue_delete(UNROUTED)
        ids = post_for_ids(faulty.client, patient_id, [101, 102, 103])
        log = faulty.stack.run_dir / "measurement-relay.log"
        eventually(lambda: log.read_text().count("returned unroutable") >= len(ids), timeout_s=CONVERGE_S)
        assert pending("measurement_service") == len(ids)
        assert replica_count(ids) == 0
        declare(channel, queue)  # the bindings and the alternate exchange's queue again
    eventually(lambda: pending("measurement_service") == 0, timeout_s=CONVERGE_S)
    assert_applied_once(faulty.client, patient_id, ids)


def test_relay_whose_mark_fails_after_the_confirms_sends_again(faulty: Faulty) -> None:
    """Published and confirmed, but marking them fails: they stay pending and go out again; the
    consumer applies each once."""
    (patient_id,) = warm_up(faulty)
    run_sql(
        "MEASUREMENT",
        "CREATE FUNCTION refuse_mark() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'injected: the mark fails'; END $$",
        "CREATE TRIGGER refuse_mark BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_mark()",
    )
    try:
        ids = post_for_ids(faulty.client, patient_id, list(range(110, 115)))
        eventually(lambda: replica_count(ids) == len(ids), timeout_s=CONVERGE_S)
        log = faulty.stack.run_dir / "measurement-relay.log"
        eventually(lambda: log.read_text().count("could not mark") >= 2, timeout_s=CONVERGE_S)  # sent twice at least
        assert pending("measurement_service") == len(ids)
    finally:
        run_sql("MEASUREMENT", "DROP TRIGGER refuse_mark ON outbox", "DROP FUNCTION refuse_mark()")
    eventually(lambda: pending("measurement_service") == 0, timeout_s=CONVERGE_S)
    assert_applied_once(faulty.client, patient_id, ids)


def test_an_event_whose_handler_fails_is_dead_lettered_alone(faulty: Faulty) -> None:
    """A valid event the patient service cannot apply (its insert raises), in a batch with good
    ones: the good ones are applied, only the bad one ends in the dead-letter queue."""
    (patient_id,) = warm_up(faulty)
    run_sql(
        "PATIENT",
        "CREATE FUNCTION refuse_213() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN IF NEW.heart_rate_bpm = 213 THEN RAISE EXCEPTION 'injected: cannot apply'; END IF;"
        " RETURN NEW; END $$",
        "CREATE TRIGGER refuse_213 BEFORE INSERT ON vital_readings FOR EACH ROW EXECUTE FUNCTION refuse_213()",
    )
    try:
        with observer(faulty) as channel:
            faulty.consumer_proxy.freeze_to_client()  # hold deliveries, so that all arrive in one batch
            good = post_for_ids(faulty.client, patient_id, [120, 121])
            bad = post_for_ids(faulty.client, patient_id, [213])
            good += post_for_ids(faulty.client, patient_id, [122, 123])
            eventually(lambda: pending("measurement_service") == 0)
            faulty.consumer_proxy.cut()  # the held deliveries are requeued and come again together
            dead_letters = MEASUREMENT_EVENTS_FOR_PATIENTS.dead_letter_queue
            eventually(lambda: queue_depth(channel, dead_letters) == 1, timeout_s=CONVERGE_S)
            _, properties, _ = channel.basic_get(dead_letters, auto_ack=True)
            assert properties.message_id == recorded_event_ids(bad)[bad[0]]
    finally:
        run_sql("PATIENT", "DROP TRIGGER refuse_213 ON vital_readings", "DROP FUNCTION refuse_213()")
    assert replica_count(bad) == 0
    assert_applied_once(faulty.client, patient_id, good)


def test_consumer_waits_out_its_database_and_dead_letters_nothing(faulty: Faulty) -> None:
    """The consumer's PostgreSQL goes away: nothing is rejected, and once it is back every event
    is applied once."""
    (patient_id,) = warm_up(faulty)
    faulty.consumer_db_proxy.down()
    try:
        ids = post_for_ids(faulty.client, patient_id, list(range(130, 140)))
        eventually(lambda: pending("measurement_service") == 0)  # published: the consumer has them
        time.sleep(3)  # a stretch with the database down, the consumer retrying
        assert replica_count(ids) == 0
    finally:
        faulty.consumer_db_proxy.up()
    assert_applied_once(faulty.client, patient_id, ids)
    with observer(faulty) as channel:
        assert queue_depth(channel, MEASUREMENT_EVENTS_FOR_PATIENTS.dead_letter_queue) == 0
