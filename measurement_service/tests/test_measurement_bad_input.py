"""Impossible readings and malformed requests are 4xx naming the field; nothing is stored."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

IN_AN_HOUR = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

BAD_READINGS = {
    "fahrenheit sent as celsius": ({"temperature_c": 98.6}, "temperature_c"),
    "spo2 above 100": ({"spo2_percent": 120}, "spo2_percent"),
    "heart rate above 300": ({"heart_rate_bpm": 301}, "heart_rate_bpm"),
    "negative heart rate": ({"heart_rate_bpm": -1}, "heart_rate_bpm"),
    "respiratory rate above 70": ({"respiratory_rate_bpm": 71}, "respiratory_rate_bpm"),
    "systolic above 400": ({"systolic_mmhg": 401, "diastolic_mmhg": 80}, "systolic_mmhg"),
    "systolic without diastolic": ({"systolic_mmhg": 120}, "diastolic_mmhg"),
    "diastolic without systolic": ({"diastolic_mmhg": 80}, "systolic_mmhg"),
    "diastolic not below systolic": ({"systolic_mmhg": 80, "diastolic_mmhg": 80}, "diastolic_mmhg"),
    "no vital at all": ({"source": "manual"}, "body"),
    "empty object": ({}, "body"),
    "naive measured_at": ({"heart_rate_bpm": 70, "measured_at": "2026-01-01T10:00:00"}, "measured_at"),
    "measured_at an hour ahead": ({"heart_rate_bpm": 70, "measured_at": IN_AN_HOUR}, "measured_at"),
    "measured_at in 1800": ({"heart_rate_bpm": 70, "measured_at": "1800-01-01T00:00:00Z"}, "measured_at"),
    "measured_at as a Unix time": ({"heart_rate_bpm": 70, "measured_at": 1764000000}, "measured_at"),
    "int beyond int64": ({"heart_rate_bpm": 2**63}, "heart_rate_bpm"),
    "boolean heart rate": ({"heart_rate_bpm": True}, "heart_rate_bpm"),
    "string temperature": ({"temperature_c": "37"}, "temperature_c"),
    "fractional spo2": ({"spo2_percent": 97.5}, "spo2_percent"),
    "unknown consciousness": ({"consciousness": "sleepy"}, "consciousness"),
    "nul in source": ({"heart_rate_bpm": 70, "source": "dev\u0000ice"}, "source"),
    "source too long": ({"heart_rate_bpm": 70, "source": "s" * 101}, "source"),
    "unknown field": ({"heart_rate_bpm": 70, "pulse": 70}, "pulse"),
    "server-owned recorded_at": ({"heart_rate_bpm": 70, "recorded_at": "2026-01-01T00:00:00Z"}, "recorded_at"),
    "not an object": ([{"heart_rate_bpm": 70}], "body"),
}


@pytest.mark.parametrize("body,field", BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_bad_reading_is_422_naming_the_field(client: TestClient, patient_id, body: object, field: str, stored) -> None:
    response = client.post(f"/api/v1/patient/{patient_id}/measurements", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert stored("measurements") == 0


RAW = {
    "NaN": b'{"temperature_c": NaN}',
    "Infinity": b'{"temperature_c": Infinity}',
    "-Infinity": b'{"weight_kg": -Infinity}',
    "overflowing float": b'{"temperature_c": 1e999}',
    "malformed json": b'{"temperature_c": 37.0',
}


@pytest.mark.parametrize("raw", RAW.values(), ids=RAW.keys())
def test_non_finite_or_malformed_json_is_422(client: TestClient, patient_id, raw: bytes, stored) -> None:
    response = client.post(
        f"/api/v1/patient/{patient_id}/measurements", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["status"] == 422
    assert stored("measurements") == 0


def test_body_patient_id_must_be_a_uuid(client: TestClient) -> None:
    response = client.post("/api/v1/measures", json={"patient_id": "42", "heart_rate_bpm": 70})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "patient_id"


def test_wrong_content_type_is_415(client: TestClient, patient_id, stored) -> None:
    response = client.post(
        f"/api/v1/patient/{patient_id}/measurements", content=b"hr=70", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert stored("measurements") == 0


@pytest.mark.parametrize(
    "path", ["/api/v1/measures/abc", "/api/v1/measurements/abc", "/api/v1/patient/abc/measurements"]
)
def test_ids_that_are_not_uuids_are_404(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-01-01T00:00:00"},
        {"until": "0.5"},  # a number is not a date-time, though pydantic would read it as a Unix time
        {"since": "1700000000"},
        {"limit": 0},
        {"cursor": "eyJ4IjoxfQ=="},
        {"patient_id": "x"},
    ],
)
def test_bad_list_parameters_are_422(client: TestClient, params: dict) -> None:
    response = client.get("/api/v1/measures", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
