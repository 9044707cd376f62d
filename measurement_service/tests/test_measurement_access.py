"""Who may post and read which readings, and the audit trail of it (doc/security.md)."""

import uuid

import pytest
from fastapi.testclient import TestClient


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def other_patient(patients) -> uuid.UUID:
    new = uuid.uuid4()
    patients.ids.add(new)
    return new


@pytest.fixture
def home_device(token, patient_id: uuid.UUID) -> dict[str, str]:
    """A patient's own device: it may post and read that patient's readings only."""
    return as_(token(scope="patient/Observation.crs", patient=str(patient_id), subject="home-device"))


def test_a_patient_token_posts_and_reads_its_own_readings(
    client: TestClient, patient_id: uuid.UUID, home_device
) -> None:
    posted = client.post(f"/api/v1/patient/{patient_id}/measurements", json={"spo2_percent": 96}, headers=home_device)
    assert posted.status_code == 201
    mine = client.get(f"/api/v1/patient/{patient_id}/measurements", headers=home_device).json()["items"]
    assert [m["id"] for m in mine] == [posted.json()["id"]]
    assert client.get(f"/api/v1/measures/{posted.json()['id']}", headers=home_device).status_code == 200
    listed = client.get("/api/v1/measures", params={"patient_id": str(patient_id)}, headers=home_device)
    assert listed.status_code == 200


def test_a_patient_token_cannot_touch_another_patient(
    client: TestClient, patient_id: uuid.UUID, other_patient: uuid.UUID, home_device, record, stored
) -> None:
    theirs = record(patient=other_patient)
    url = f"/api/v1/patient/{other_patient}/measurements"
    assert client.post(url, json={"spo2_percent": 96}, headers=home_device).status_code == 404
    body = {"patient_id": str(other_patient), "spo2_percent": 96}
    assert client.post("/api/v1/measures", json=body, headers=home_device).status_code == 404
    assert client.get(url, headers=home_device).status_code == 404
    assert client.get(f"/api/v1/measures/{theirs['id']}", headers=home_device).status_code == 404
    assert client.delete(f"/api/v1/measures/{theirs['id']}", headers=home_device).status_code in (403, 404)
    listed = client.get("/api/v1/measures", params={"patient_id": str(other_patient)}, headers=home_device)
    assert listed.status_code == 404
    assert stored("measurements") == 1


def test_a_batch_naming_another_patient_is_refused_whole(
    client: TestClient, patient_id: uuid.UUID, other_patient: uuid.UUID, home_device, stored
) -> None:
    readings = [
        {"patient_id": str(patient_id), "heart_rate_bpm": 70},
        {"patient_id": str(other_patient), "heart_rate_bpm": 71},
    ]
    response = client.post("/api/v1/measures/batch", json={"readings": readings}, headers=home_device)
    assert response.status_code == 404
    assert stored("measurements") == 0


def test_all_readings_are_for_clinicians_and_systems(client: TestClient, home_device, record) -> None:
    record()
    assert client.get("/api/v1/measures", headers=home_device).status_code == 403
    assert client.post("/api/v1/measures/list", json={}, headers=home_device).status_code == 403


@pytest.mark.parametrize(
    ("method", "path_of", "scope"),
    [
        ("GET", lambda m: f"/api/v1/measures/{m['id']}", "user/Observation.s"),
        ("DELETE", lambda m: f"/api/v1/measures/{m['id']}", "user/Observation.rs"),
        ("POST", lambda m: f"/api/v1/patient/{m['patient_id']}/measurements", "user/Observation.rs"),
        ("GET", lambda m: f"/api/v1/patient/{m['patient_id']}/measurements", "user/Observation.r"),
        ("GET", lambda m: "/api/v1/measures", "user/Patient.s"),
    ],
)
def test_each_route_needs_its_scope(client: TestClient, record, token, stored, method, path_of, scope) -> None:
    measurement = record()
    response = client.request(method, path_of(measurement), json={"pulse": 1}, headers=as_(token(scope=scope)))
    assert response.status_code == 403
    assert stored("measurements") == 1


def test_reads_and_writes_of_readings_are_audited(client: TestClient, patient_id: uuid.UUID, record) -> None:
    first, second = record(), record(heart_rate_bpm=90)
    client.get(f"/api/v1/patient/{patient_id}/measurements")
    client.delete(f"/api/v1/measures/{first['id']}")
    rows = client.get("/api/v1/measures/audit", params={"patient_id": str(patient_id)}).json()["items"]
    assert [(r["action"], r["resource_id"]) for r in rows] == [
        ("delete", first["id"]),
        # A page records each reading it returned, in page order (newest measured first).
        ("search", first["id"]),
        ("search", second["id"]),
        ("create", second["id"]),
        ("create", first["id"]),
    ]
    assert {r["resource_type"] for r in rows} == {"Observation"}


def test_a_batch_is_audited_once_per_reading_stored(client: TestClient, patient_id: uuid.UUID, stored) -> None:
    at = "2026-11-20T08:00:00Z"
    batch = {"readings": [{"heart_rate_bpm": hr, "measured_at": at, "source": f"s{hr}"} for hr in (70, 71)]}
    first = client.post(f"/api/v1/patient/{patient_id}/measurements/batch", json=batch).json()
    rows = client.get("/api/v1/measures/audit", params={"patient_id": str(patient_id)}).json()["items"]
    assert sorted((r["action"], r["resource_id"]) for r in rows) == sorted(
        ("create", item["id"]) for item in first["results"]
    )
    # Sent again: every reading a duplicate, nothing stored; the request is still in the trail, once.
    before = stored("audit_events")
    assert client.post(f"/api/v1/patient/{patient_id}/measurements/batch", json=batch).json()["duplicates"] == 2
    assert stored("audit_events") == before + 1


def test_a_batch_for_a_patient_learnt_on_the_way_is_audited_once(
    client: TestClient, other_patient: uuid.UUID, stored
) -> None:
    """The replica has not heard of the patient yet: the statement runs again once the patient
    service vouched for them, and only that run's rows stay in the trail."""
    before = stored("audit_events")
    batch = {"readings": [{"heart_rate_bpm": 70}, {"heart_rate_bpm": 71}]}
    assert client.post(f"/api/v1/patient/{other_patient}/measurements/batch", json=batch).json()["stored"] == 2
    assert stored("audit_events") == before + 2
