"""Events across the services, through NGINX, with the real relays, consumers and RabbitMQ."""

import httpx
from harness import eventually


def create_patient(api: httpx.Client) -> dict:
    response = api.post("/api/v1/patient", json={"first_name": "Mary", "last_name": "Seacole", "age": 71})
    assert response.status_code == 201
    return response.json()


def test_readings_show_up_as_latest_vitals_on_the_patient(api: httpx.Client) -> None:
    patient = create_patient(api)
    url = f"/api/v1/patient/{patient['id']}/measurements"
    assert (
        api.post(
            url, json={"heart_rate_bpm": 72, "temperature_c": 36.8, "measured_at": "2026-11-20T08:00:00Z"}
        ).status_code
        == 201
    )
    latest = api.post(
        url, json={"heart_rate_bpm": 118, "spo2_percent": 92, "measured_at": "2026-11-20T09:00:00Z"}
    ).json()

    def vitals() -> dict:
        return api.get(f"/api/v1/patient/{patient['id']}").json()["latest_vitals"]

    seen = eventually(lambda: len(vitals()) == 3 and vitals())
    assert {k: v["value"] for k, v in seen.items()} == {
        "heart_rate_bpm": 118,
        "temperature_c": 36.8,
        "spo2_percent": 92,
    }
    assert seen["heart_rate_bpm"]["measurement_id"] == latest["id"]

    api.delete(f"/api/v1/measures/{latest['id']}")
    eventually(lambda: vitals().get("heart_rate_bpm", {}).get("value") == 72)
    assert "spo2_percent" not in vitals()


def test_deleting_a_patient_erases_their_measurements(api: httpx.Client) -> None:
    patient, other = create_patient(api), create_patient(api)
    for body in ({"heart_rate_bpm": 80}, {"spo2_percent": 97}):
        assert api.post(f"/api/v1/patient/{patient['id']}/measurements", json=body).status_code == 201
    kept = api.post(f"/api/v1/patient/{other['id']}/measurements", json={"heart_rate_bpm": 66}).json()

    assert api.delete(f"/api/v1/patient/{patient['id']}").status_code == 204
    eventually(lambda: api.get("/api/v1/measures", params={"patient_id": patient["id"]}).json()["items"] == [])
    assert api.post(f"/api/v1/patient/{patient['id']}/measurements", json={"heart_rate_bpm": 80}).status_code == 404
    assert api.get(f"/api/v1/patient/{patient['id']}/measurements").status_code == 404
    assert [m["id"] for m in api.get("/api/v1/measures").json()["items"]] == [kept["id"]]


def test_a_resent_reading_is_stored_once(api: httpx.Client) -> None:
    patient = create_patient(api)
    url = f"/api/v1/patient/{patient['id']}/measurements"
    headers = {"Idempotency-Key": "monitor-3-000042"}
    first = api.post(url, json={"spo2_percent": 95}, headers=headers)
    resent = api.post(url, json={"spo2_percent": 95}, headers=headers)
    assert (first.status_code, resent.status_code) == (201, 201)
    assert resent.json()["id"] == first.json()["id"]
    assert len(api.get(url).json()["items"]) == 1
    assert api.post(url, json={"spo2_percent": 96}, headers=headers).status_code == 409


def test_readiness_reports_broker_and_outbox(api: httpx.Client) -> None:
    for path in ("/api/v1/patient/health/ready", "/api/v1/measures/health/ready"):

        def checks(path: str = path) -> dict:
            return api.get(path).json()["checks"]

        eventually(lambda: checks()["broker"] == "ok" or None)  # as its relay reports, once connected
        assert set(checks()["outbox"]) == {"pending", "oldest_pending_s"}
