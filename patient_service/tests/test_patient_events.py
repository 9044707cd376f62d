"""The patient service's events: what it writes to its outbox, and how it applies what it consumes."""

import itertools
import uuid
from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from measurement_events import T0, reading, removal


def vitals_of(client: TestClient, patient_id: str) -> dict[str, object]:
    latest = client.get(f"/api/v1/patient/{patient_id}").json()["latest_vitals"]
    return {field: entry["value"] for field, entry in latest.items()}


def test_each_change_writes_its_event_with_a_rising_version(client: TestClient, make_patient, outbox) -> None:
    patient = make_patient(mrn="E-1")
    updated = client.patch(f"/api/v1/patient/{patient['id']}", json={"last_name": "Byron"}).json()
    client.delete(f"/api/v1/patient/{patient['id']}")
    events = outbox()
    assert [e["type"] for e in events] == ["patient.created", "patient.updated", "patient.deleted"]
    assert [e["aggregate_version"] for e in events] == [1, 2, 3]
    assert {e["aggregate_id"] for e in events} == {patient["id"]}
    assert len({e["event_id"] for e in events}) == 3
    assert updated["last_name"] == "Byron"
    # Minimum necessary: ids and versions travel, names and MRNs never do.
    assert [e["payload"] for e in events] == [{"id": patient["id"]}] * 3
    assert not any("Byron" in str(e) or "E-1" in str(e) for e in events)


def test_a_refused_change_writes_no_event(client: TestClient, make_patient, outbox) -> None:
    make_patient(mrn="DUP")
    assert (
        client.post("/api/v1/patient", json={"first_name": "A", "last_name": "B", "age": 1, "mrn": "DUP"}).status_code
        == 409
    )
    assert client.post("/api/v1/patient", json={"first_name": "A", "last_name": "B", "age": 999}).status_code == 422
    assert [e["type"] for e in outbox()] == ["patient.created"]


def test_readings_give_latest_vitals(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    assert client.get(f"/api/v1/patient/{patient['id']}").json()["latest_vitals"] == {}
    first = reading(patient["id"], 0, dict(heart_rate_bpm=80, temperature_c=37.0))
    second = reading(patient["id"], 10, dict(heart_rate_bpm=95, spo2_percent=94))
    consumer.apply(first)
    consumer.apply(second)
    latest = client.get(f"/api/v1/patient/{patient['id']}").json()["latest_vitals"]
    assert latest["heart_rate_bpm"]["value"] == 95
    assert latest["heart_rate_bpm"]["measurement_id"] == str(second.payload.id)
    assert datetime.fromisoformat(latest["heart_rate_bpm"]["measured_at"]) == T0 + timedelta(minutes=10)
    assert latest["temperature_c"]["value"] == 37.0  # still the latest temperature
    assert vitals_of(client, patient["id"]) == {"heart_rate_bpm": 95, "temperature_c": 37.0, "spo2_percent": 94}


def test_a_redelivered_event_is_applied_once(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    event = reading(patient["id"], 0, dict(heart_rate_bpm=80))
    assert consumer.apply(event) is True
    assert consumer.apply(event) is False


def test_latest_vitals_do_not_depend_on_arrival_order(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    events = [
        reading(patient["id"], 0, dict(heart_rate_bpm=70, temperature_c=36.5)),
        reading(patient["id"], 5, dict(heart_rate_bpm=110)),
        reading(patient["id"], 3, dict(temperature_c=38.9, spo2_percent=91)),
    ]
    outcomes = []
    for order in itertools.permutations(events):
        with client.app.state.engine.begin() as conn:  # start over for each order
            conn.exec_driver_sql("DELETE FROM vital_readings; DELETE FROM processed_events;")
            conn.exec_driver_sql("UPDATE patients SET latest_vitals = '{}'")
        for event in order:
            consumer.apply(event)
        outcomes.append(vitals_of(client, patient["id"]))
    assert outcomes == [{"heart_rate_bpm": 110, "temperature_c": 38.9, "spo2_percent": 91}] * 6


def test_a_deleted_reading_no_longer_counts(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    older = reading(patient["id"], 0, dict(heart_rate_bpm=70))
    newer = reading(patient["id"], 5, dict(heart_rate_bpm=130))
    consumer.apply(older)
    consumer.apply(newer)
    consumer.apply(removal(newer))
    assert vitals_of(client, patient["id"]) == {"heart_rate_bpm": 70}
    consumer.apply(removal(older))
    assert vitals_of(client, patient["id"]) == {}


def test_a_delete_that_arrives_first_keeps_the_reading_out(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    late = reading(patient["id"], 0, dict(heart_rate_bpm=150))
    consumer.apply(removal(late))
    consumer.apply(late)
    assert vitals_of(client, patient["id"]) == {}


def test_readings_of_an_unknown_patient_are_ignored(client: TestClient, consumer, stored) -> None:
    assert consumer.apply(reading(str(uuid.uuid4()), 0, dict(heart_rate_bpm=80))) is True
    assert stored("vital_readings") == 0


def test_deleting_a_patient_erases_their_readings_copy(client: TestClient, make_patient, consumer, stored) -> None:
    patient = make_patient()
    consumer.apply(reading(patient["id"], 0, dict(heart_rate_bpm=80)))
    assert stored("vital_readings") == 1
    client.delete(f"/api/v1/patient/{patient['id']}")
    assert stored("vital_readings") == 0


def test_same_idempotency_key_and_body_creates_once(client: TestClient, stored, outbox) -> None:
    body = {"first_name": "Ada", "last_name": "Lovelace", "age": 36}
    headers = {"Idempotency-Key": "req-123"}
    first = client.post("/api/v1/patient", json=body, headers=headers)
    retry = client.post("/api/v1/patient", json=body, headers=headers)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert stored("patients") == 1
    assert len(outbox()) == 1


def test_same_idempotency_key_with_another_body_is_409(client: TestClient, stored) -> None:
    headers = {"Idempotency-Key": "req-456"}
    client.post("/api/v1/patient", json={"first_name": "Ada", "last_name": "L", "age": 36}, headers=headers)
    other = client.post("/api/v1/patient", json={"first_name": "Eve", "last_name": "L", "age": 36}, headers=headers)
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert stored("patients") == 1


def test_a_failed_request_does_not_use_up_its_key(client: TestClient, make_patient, stored) -> None:
    make_patient(mrn="TAKEN")
    headers = {"Idempotency-Key": "req-789"}
    body = {"first_name": "A", "last_name": "B", "age": 3, "mrn": "TAKEN"}
    assert client.post("/api/v1/patient", json=body, headers=headers).status_code == 409
    body["mrn"] = "FREE"
    assert client.post("/api/v1/patient", json=body, headers=headers).status_code == 201


def test_a_malformed_idempotency_key_is_422(client: TestClient, stored) -> None:
    body = {"first_name": "A", "last_name": "B", "age": 3}
    response = client.post("/api/v1/patient", json=body, headers={"Idempotency-Key": "x" * 201})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert stored("patients") == 0
