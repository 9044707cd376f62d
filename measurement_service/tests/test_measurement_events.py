"""The measurement service's events: what it writes to its outbox, and the patient events it applies."""

import uuid

from fastapi.testclient import TestClient

from painkiller_common.contracts import PatientCreated, PatientDeleted, PatientRef, PatientUpdated


def created(patient_id: uuid.UUID, version: int = 1) -> PatientCreated:
    return PatientCreated(aggregate_id=patient_id, aggregate_version=version, payload=PatientRef(id=patient_id))


def updated(patient_id: uuid.UUID, version: int) -> PatientUpdated:
    return PatientUpdated(aggregate_id=patient_id, aggregate_version=version, payload=PatientRef(id=patient_id))


def deleted(patient_id: uuid.UUID, version: int) -> PatientDeleted:
    return PatientDeleted(aggregate_id=patient_id, aggregate_version=version, payload=PatientRef(id=patient_id))


def post_reading(client: TestClient, patient_id: uuid.UUID, **headers: str):
    return client.post(f"/api/v1/patient/{patient_id}/measurements", json={"heart_rate_bpm": 77}, headers=headers)


def test_recording_and_deleting_write_their_events(client: TestClient, record, outbox) -> None:
    stored = record(heart_rate_bpm=99)
    client.delete(f"/api/v1/measures/{stored['id']}")
    recorded, removed = outbox()
    assert (recorded["type"], recorded["aggregate_version"]) == ("measurement.recorded", 1)
    assert recorded["payload"] == stored
    assert (removed["type"], removed["aggregate_version"]) == ("measurement.deleted", 2)
    assert removed["payload"] == {"id": stored["id"], "patient_id": stored["patient_id"]}


def test_a_patient_known_from_events_needs_no_lookup(client: TestClient, consumer) -> None:
    patient_id = uuid.uuid4()  # unknown to the stand-in patient service
    assert post_reading(client, patient_id).status_code == 404
    consumer.apply(created(patient_id))
    assert post_reading(client, patient_id).status_code == 201


def test_patient_deleted_erases_their_readings_with_events(
    client: TestClient, consumer, record, patient_id, outbox, stored
) -> None:
    other_patient = uuid.uuid4()
    consumer.apply(created(other_patient))
    mine = [record()["id"] for _ in range(3)]
    record(patient=other_patient)
    consumer.apply(deleted(patient_id, 2))
    assert stored("measurements") == 1
    erasures = [e for e in outbox() if e["type"] == "measurement.deleted"]
    assert sorted(e["payload"]["id"] for e in erasures) == sorted(mine)
    assert client.get(f"/api/v1/patient/{patient_id}/measurements").status_code == 404


def test_readings_for_a_deleted_patient_are_404_even_if_asked_again(
    client: TestClient, consumer, patient_id, stored
) -> None:
    consumer.apply(deleted(patient_id, 3))
    # The stand-in patient service still says the patient exists: the tombstone wins.
    assert post_reading(client, patient_id).status_code == 404
    assert stored("measurements") == 0


def test_late_and_stale_patient_events_change_nothing(client: TestClient, consumer, patient_id, stored) -> None:
    consumer.apply(updated(patient_id, 3))
    consumer.apply(updated(patient_id, 2))  # older than what is stored
    consumer.apply(deleted(patient_id, 4))
    consumer.apply(created(patient_id, 1))  # a very late create
    consumer.apply(updated(patient_id, 3))  # redelivered under a new event id
    assert post_reading(client, patient_id).status_code == 404
    with client.app.state.engine.connect() as conn:
        version, is_deleted = conn.exec_driver_sql(
            "SELECT version, deleted FROM known_patients WHERE patient_id = %s", (str(patient_id),)
        ).one()
    assert (version, is_deleted) == (4, True)


def test_a_redelivered_delete_is_applied_once(client: TestClient, consumer, record, patient_id, outbox) -> None:
    record()
    event = deleted(patient_id, 2)
    assert consumer.apply(event) is True
    assert consumer.apply(event) is False
    assert len([e for e in outbox() if e["type"] == "measurement.deleted"]) == 1


def test_same_idempotency_key_records_once(client: TestClient, patient_id, stored, outbox) -> None:
    first = post_reading(client, patient_id, **{"Idempotency-Key": "dev-7-0001"})
    retry = post_reading(client, patient_id, **{"Idempotency-Key": "dev-7-0001"})
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert stored("measurements") == 1
    assert len(outbox()) == 1


def test_same_idempotency_key_with_another_reading_is_409(client: TestClient, patient_id, stored) -> None:
    headers = {"Idempotency-Key": "dev-7-0002"}
    client.post(f"/api/v1/patient/{patient_id}/measurements", json={"heart_rate_bpm": 70}, headers=headers)
    other = client.post(f"/api/v1/patient/{patient_id}/measurements", json={"heart_rate_bpm": 71}, headers=headers)
    assert other.status_code == 409
    assert stored("measurements") == 1


def test_a_retry_after_its_reading_was_deleted_is_404_and_stores_nothing(
    client: TestClient, patient_id, stored
) -> None:
    """A retry must not be told "201, here it is" about a reading that is gone, nor store it again."""
    kept = post_reading(client, patient_id, **{"Idempotency-Key": "dev-7-0004"})
    gone = post_reading(client, patient_id, **{"Idempotency-Key": "dev-7-0005"})
    assert client.delete(f"/api/v1/measures/{gone.json()['id']}").status_code == 204
    retry = post_reading(client, patient_id, **{"Idempotency-Key": "dev-7-0005"})
    assert retry.status_code == 404
    assert retry.headers["content-type"] == "application/problem+json"
    assert post_reading(client, patient_id, **{"Idempotency-Key": "dev-7-0004"}).json() == kept.json()
    assert stored("measurements") == 1


def test_idempotency_key_is_shared_by_the_measures_alias(client: TestClient, patient_id, stored) -> None:
    body = {"patient_id": str(patient_id), "spo2_percent": 97}
    headers = {"Idempotency-Key": "dev-7-0003"}
    first = client.post("/api/v1/measures", json=body, headers=headers)
    retry = client.post("/api/v1/measurements", json=body, headers=headers)
    assert retry.json() == first.json()
    assert stored("measurements") == 1
