"""Batch ingestion: stored together once, duplicates reported by index; one invalid reading
refuses the batch, naming every bad reading by index."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from measurement_service.readings.schemas import MAX_BATCH


def device_reading(n: int, **fields: object) -> dict:
    return {
        "heart_rate_bpm": 60 + n % 40,
        "measured_at": f"2026-11-20T08:{n // 60:02d}:{n % 60:02d}Z",
        "source": "monitor-9",
        **fields,
    }


def test_a_valid_batch_is_stored_with_one_event_each(client: TestClient, patient_id, stored, outbox) -> None:
    readings = [device_reading(n) for n in range(50)]
    response = client.post(f"/api/v1/patient/{patient_id}/measurements/batch", json={"readings": readings})
    assert response.status_code == 200
    body = response.json()
    assert (body["stored"], body["duplicates"]) == (50, 0)
    assert [r["index"] for r in body["results"]] == list(range(50))
    assert stored("measurements") == 50
    events = outbox()
    assert len(events) == 50
    assert {e["payload"]["id"] for e in events} == {r["id"] for r in body["results"]}


def test_invalid_readings_refuse_the_batch_each_named_by_index(client: TestClient, patient_id, stored) -> None:
    """The document types every item as a reading, so a batch holding another is bad input:
    422, nothing stored (the client resends the good ones; duplicates make that safe)."""
    readings = [device_reading(0), device_reading(1, temperature_c=98.6), device_reading(2, spo2_percent=True),
                device_reading(3, systolic_mmhg=120), device_reading(4)]  # fmt: skip
    response = client.post(f"/api/v1/patient/{patient_id}/measurements/batch", json={"readings": readings})
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["readings.1.temperature_c", "readings.2.spo2_percent", "readings.3.diastolic_mmhg"]
    assert stored("measurements") == 0


def test_resending_a_batch_stores_nothing_twice(client: TestClient, patient_id, stored, outbox) -> None:
    readings = [device_reading(n) for n in range(10)]
    url = f"/api/v1/patient/{patient_id}/measurements/batch"
    first = client.post(url, json={"readings": readings}).json()
    again = client.post(url, json={"readings": readings + [device_reading(10)]}).json()
    assert (first["stored"], again["stored"], again["duplicates"]) == (10, 1, 10)
    assert all(r["id"] is None for r in again["results"][:10])
    assert stored("measurements") == 11
    assert len(outbox()) == 11


def test_a_single_resent_device_reading_is_409(client: TestClient, patient_id, stored) -> None:
    url = f"/api/v1/patient/{patient_id}/measurements"
    assert client.post(url, json=device_reading(1)).status_code == 201
    again = client.post(url, json=device_reading(1))
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert stored("measurements") == 1


def test_manual_readings_without_source_are_not_deduplicated(client: TestClient, record, stored) -> None:
    same_time = "2026-11-20T08:00:00Z"
    record(heart_rate_bpm=70, measured_at=same_time)
    record(heart_rate_bpm=72, measured_at=same_time)
    assert stored("measurements") == 2


def test_measures_batch_names_the_patient_per_reading(client: TestClient, patient_id, patients, stored) -> None:
    other = uuid.uuid4()
    patients.ids.add(other)
    readings = [{**device_reading(0), "patient_id": str(patient_id)}, {**device_reading(1), "patient_id": str(other)},
                device_reading(2)]  # fmt: skip
    missing = client.post("/api/v1/measurements/batch", json={"readings": readings})
    assert [e["field"] for e in missing.json()["errors"]] == ["readings.2.patient_id"]
    body = client.post("/api/v1/measurements/batch", json={"readings": readings[:2]}).json()
    assert [r["status"] for r in body["results"]] == ["stored", "stored"]
    assert stored("measurements") == 2


def test_an_unknown_patient_fails_the_batch(client: TestClient, stored) -> None:
    url = f"/api/v1/patient/{uuid.uuid4()}/measurements/batch"
    assert client.post(url, json={"readings": [device_reading(0)]}).status_code == 404
    readings = [{**device_reading(0), "patient_id": str(uuid.uuid4())}]
    assert client.post("/api/v1/measures/batch", json={"readings": readings}).status_code == 404
    assert stored("measurements") == 0


def test_a_batch_with_nothing_valid_is_422_too(client: TestClient, patient_id, stored) -> None:
    response = client.post(
        f"/api/v1/patient/{patient_id}/measurements/batch", json={"readings": [{"spo2_percent": 120}, {}]}
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"readings.0.spo2_percent", "readings.1"}
    assert stored("measurements") == 0


@pytest.mark.parametrize(
    "body",
    [{"readings": []}, {"readings": [device_reading(0)] * (MAX_BATCH + 1)}, {"readings": "x"}, [device_reading(0)]],
)
def test_bad_batch_envelopes_are_422(client: TestClient, patient_id, body: object, stored) -> None:
    assert client.post(f"/api/v1/patient/{patient_id}/measurements/batch", json=body).status_code == 422
    assert stored("measurements") == 0


def test_a_full_batch_of_1000_is_accepted(client: TestClient, patient_id, stored) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    readings = [
        {"spo2_percent": 90 + n % 10, "measured_at": (start + timedelta(minutes=n)).isoformat(), "source": "pump-1"}
        for n in range(MAX_BATCH)
    ]
    body = client.post(f"/api/v1/patient/{patient_id}/measurements/batch", json={"readings": readings}).json()
    assert body["stored"] == MAX_BATCH
    assert stored("measurements") == MAX_BATCH


def test_batch_with_an_idempotency_key_replays(client: TestClient, patient_id, stored) -> None:
    url = f"/api/v1/patient/{patient_id}/measurements/batch"
    manual = {"readings": [{"heart_rate_bpm": 70}, {"heart_rate_bpm": 71}]}  # no source: no natural key
    first = client.post(url, json=manual, headers={"Idempotency-Key": "batch-1"})
    again = client.post(url, json=manual, headers={"Idempotency-Key": "batch-1"})
    assert again.json() == first.json()
    assert stored("measurements") == 2


def test_a_batch_retried_after_one_of_its_readings_was_deleted_is_404(client: TestClient, patient_id, stored) -> None:
    url = f"/api/v1/patient/{patient_id}/measurements/batch"
    manual = {"readings": [{"heart_rate_bpm": 70}, {"heart_rate_bpm": 71}]}
    first = client.post(url, json=manual, headers={"Idempotency-Key": "batch-2"}).json()
    assert client.delete(f"/api/v1/measures/{first['results'][1]['id']}").status_code == 204
    retry = client.post(url, json=manual, headers={"Idempotency-Key": "batch-2"})
    assert retry.status_code == 404
    assert stored("measurements") == 1  # the retry stored nothing again
