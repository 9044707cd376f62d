"""The observation chart (doc/ward.md): each reading of the last hours with the NEWS2 sub-score
of each value and the NEWS2 standing once it was taken; and the sub-scores on the patient."""

from fastapi.testclient import TestClient
from measurement_events import minutes_ago, reading
from test_patient_risk_api import CRITICAL, NORMAL

from patient_service.patients import service


def test_each_reading_is_a_row_with_its_sub_scores_and_the_news2_standing(
    client: TestClient, make_patient, consumer
) -> None:
    patient = make_patient()
    consumer.apply(reading(patient["id"], minutes_ago(80 * 60), CRITICAL))  # before the 72 hours
    consumer.apply(reading(patient["id"], minutes_ago(120), CRITICAL))
    consumer.apply(reading(patient["id"], minutes_ago(60), {"heart_rate_bpm": 72}))
    consumer.apply(reading(patient["id"], minutes_ago(30), NORMAL))
    chart = client.get(f"/api/v1/patient/{patient['id']}/chart").json()
    assert chart["spo2_scale"] == 1
    first, pulse_only, normal = chart["rows"]
    assert first["sub_scores"] == {"respiration_rate": 3, "spo2": 3, "air_or_oxygen": 2, "systolic_bp": 2,
                                   "pulse": 2, "consciousness": 3, "temperature": 2}  # fmt: skip
    assert (first["news2_total"], first["band"], first["complete"]) == (17, "high", True)
    assert first["values"]["respiratory_rate_bpm"] == 26 and first["values"]["on_oxygen"] is True
    # A pulse alone scores only the pulse; the standing NEWS2 takes it with the older values.
    assert (pulse_only["sub_scores"], pulse_only["news2_total"]) == ({"pulse": 0}, 15)
    assert (normal["news2_total"], normal["band"]) == (0, "low")
    assert [row["measured_at"] for row in chart["rows"]] == sorted(row["measured_at"] for row in chart["rows"])
    shorter = client.get(f"/api/v1/patient/{patient['id']}/chart", params={"hours": 1}).json()
    assert [row["measured_at"] for row in shorter["rows"]] == [normal["measured_at"]]


def test_the_patient_shows_each_parameters_sub_score(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    consumer.apply(reading(patient["id"], minutes_ago(10), {**NORMAL, "heart_rate_bpm": 125}))
    risk = client.get(f"/api/v1/patient/{patient['id']}").json()["risk"]
    assert risk["sub_scores"]["pulse"] == 2 and risk["sub_scores"]["temperature"] == 0
    listed = client.get("/api/v1/patient").json()["items"]
    assert next(p for p in listed if p["id"] == patient["id"])["risk"]["sub_scores"] == risk["sub_scores"]


def test_a_chart_of_hours_out_of_range_is_a_422_and_of_no_patient_a_404(client: TestClient, make_patient) -> None:
    patient = make_patient()
    assert client.get(f"/api/v1/patient/{patient['id']}/chart", params={"hours": 0}).status_code == 422
    assert client.get(f"/api/v1/patient/{patient['id']}/chart", params={"hours": 169}).status_code == 422
    missing = client.get("/api/v1/patient/00000000-0000-4000-8000-000000000000/chart")
    assert missing.status_code == 404


def test_past_its_limit_the_chart_keeps_the_newest_readings(
    client: TestClient, make_patient, consumer, monkeypatch
) -> None:
    monkeypatch.setattr(service, "CHART_LIMIT", 2)
    patient = make_patient()
    for minutes in (50, 40, 30, 20):
        consumer.apply(reading(patient["id"], minutes_ago(minutes), {"heart_rate_bpm": 100 - minutes}))
    rows = client.get(f"/api/v1/patient/{patient['id']}/chart").json()["rows"]
    assert [row["values"]["heart_rate_bpm"] for row in rows] == [70, 80]
