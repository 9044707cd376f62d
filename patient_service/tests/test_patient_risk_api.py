"""Risk as clinicians see it: on the patient, at /risk, in the ward view, and as events."""

import uuid
from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from measurement_events import T0, reading, removal

NORMAL = dict(
    respiratory_rate_bpm=16,
    spo2_percent=97,
    on_oxygen=False,
    systolic_mmhg=120,
    diastolic_mmhg=75,
    heart_rate_bpm=72,
    consciousness="alert",
    temperature_c=36.8,
)
# NEWS2 17: RR 3, SpO2 3, oxygen 2, systolic 2, pulse 2, consciousness 3, temperature 2.
CRITICAL = dict(
    respiratory_rate_bpm=26,
    spo2_percent=91,
    on_oxygen=True,
    systolic_mmhg=95,
    diastolic_mmhg=60,
    heart_rate_bpm=125,
    consciousness="voice",
    temperature_c=39.2,
)


def test_a_patient_without_readings_has_no_judgement(client: TestClient, make_patient) -> None:
    patient = make_patient()
    assert patient["risk"] is None
    assessment = client.get(f"/api/v1/patient/{patient['id']}/risk").json()
    assert (assessment["news2"]["total"], assessment["news2"]["band"], assessment["based_on"]) == (None, None, None)
    assert assessment["news2"]["complete"] is False
    assert len(assessment["news2"]["missing"]) == 7


def test_risk_follows_the_readings(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    consumer.apply(reading(patient["id"], 0, NORMAL))
    summary = client.get(f"/api/v1/patient/{patient['id']}").json()["risk"]
    assert (summary["news2_total"], summary["band"], summary["bp_category"]) == (0, "low", "elevated")
    consumer.apply(reading(patient["id"], 30, CRITICAL))
    assessment = client.get(f"/api/v1/patient/{patient['id']}/risk").json()
    assert (assessment["news2"]["total"], assessment["news2"]["band"]) == (17, "high")
    assert datetime.fromisoformat(assessment["based_on"]) == T0 + timedelta(minutes=30)
    assert assessment["blood_pressure"]["readings"] == 2
    assert assessment["patient_id"] == patient["id"]


def test_a_rising_band_is_published_a_falling_one_is_not(client: TestClient, make_patient, consumer, outbox) -> None:
    patient = make_patient()
    consumer.apply(reading(patient["id"], 0, NORMAL))
    worse = reading(patient["id"], 30, CRITICAL)
    consumer.apply(worse)
    consumer.apply(reading(patient["id"], 60, NORMAL))
    changes = [e for e in outbox() if e["type"] == "patient.risk_changed"]
    assert len(changes) == 1
    assert changes[0]["payload"] == {
        "patient_id": patient["id"],
        "previous_band": "low",
        "band": "high",
        "news2_total": 17,
        "based_on": "2026-11-01T08:30:00Z",
    }
    assert client.get(f"/api/v1/patient/{patient['id']}").json()["risk"]["band"] == "low"


def test_deleting_the_critical_reading_lowers_the_band(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    consumer.apply(reading(patient["id"], 0, NORMAL))
    critical = reading(patient["id"], 30, CRITICAL)
    consumer.apply(critical)
    consumer.apply(removal(critical))
    assert client.get(f"/api/v1/patient/{patient['id']}").json()["risk"]["news2_total"] == 0


def test_ward_view_lists_by_descending_news2(client: TestClient, make_patient, consumer) -> None:
    calm, medium, sick = (
        make_patient(first_name="Calm"),
        make_patient(first_name="Medium"),
        make_patient(first_name="Sick"),
    )
    consumer.apply(reading(calm["id"], 0, NORMAL))
    consumer.apply(
        reading(medium["id"], 0, {**NORMAL, "respiratory_rate_bpm": 22, "heart_rate_bpm": 115, "temperature_c": 38.5})
    )
    consumer.apply(reading(sick["id"], 0, CRITICAL))
    page = client.get("/api/v1/patient/at-risk", params={"min_band": "medium"}).json()
    assert [(p["first_name"], p["news2_total"], p["band"]) for p in page["items"]] == [
        ("Sick", 17, "high"),
        ("Medium", 5, "medium"),
    ]
    high_only = client.get("/api/v1/patient/at-risk", params={"min_band": "high"}).json()["items"]
    assert [p["id"] for p in high_only] == [sick["id"]]
    everyone = client.get("/api/v1/patient/at-risk", params={"min_band": "low", "limit": 2}).json()
    rest = client.get("/api/v1/patient/at-risk", params={"min_band": "low", "cursor": everyone["next_cursor"]}).json()
    assert [p["first_name"] for p in everyone["items"] + rest["items"]] == ["Sick", "Medium", "Calm"]
    assert client.get("/api/v1/patient/at-risk", params={"min_band": "severe"}).status_code == 422


def test_changing_the_spo2_scale_rescores(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    consumer.apply(reading(patient["id"], 0, {**NORMAL, "spo2_percent": 97, "on_oxygen": True}))
    assert client.get(f"/api/v1/patient/{patient['id']}/risk").json()["news2"]["sub_scores"]["spo2"] == 0
    patched = client.patch(f"/api/v1/patient/{patient['id']}", json={"spo2_scale": 2})
    assert patched.json()["spo2_scale"] == 2
    assessment = client.get(f"/api/v1/patient/{patient['id']}/risk").json()["news2"]
    assert (assessment["spo2_scale"], assessment["sub_scores"]["spo2"]) == (2, 3)


def test_spo2_scale_must_be_1_or_2(client: TestClient, stored) -> None:
    for scale in (0, 3, "2", True):
        body = {"first_name": "A", "last_name": "B", "age": 3, "spo2_scale": scale}
        assert client.post("/api/v1/patient", json=body).status_code == 422, scale
    assert stored("patients") == 0


def test_risk_of_an_unknown_patient_is_404(client: TestClient) -> None:
    assert client.get(f"/api/v1/patient/{uuid.uuid4()}/risk").status_code == 404


def test_a_parameter_measured_once_among_many_readings_still_counts(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    events = [reading(patient["id"], 0, {"temperature_c": 39.5})]
    events += [reading(patient["id"], 1 + n, {"heart_rate_bpm": 80}) for n in range(150)]
    consumer.apply_all(events)  # one batch, as the consumer takes them off the queue
    news2 = client.get(f"/api/v1/patient/{patient['id']}/risk").json()["news2"]
    assert news2["sub_scores"]["temperature"] == 2
    assert news2["sub_scores"]["pulse"] == 0


def test_a_batch_with_the_same_event_twice_applies_it_once(client: TestClient, make_patient, consumer, stored) -> None:
    patient = make_patient()
    event = reading(patient["id"], 0, {"heart_rate_bpm": 80})
    assert consumer.apply_all([event, event]) == [True, False]
    assert consumer.apply_all([event]) == [False]
    assert stored("vital_readings") == 1
