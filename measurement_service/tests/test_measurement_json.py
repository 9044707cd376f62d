"""The JSON PostgreSQL builds for the hot paths (a reading's `measurement.recorded` event, a page of
readings) against the JSON the pydantic contract gives for the same reading, on the values where
the two could part: whole-number floats, microsecond timestamps, nulls, unicode and escapes.

Compared as text after one parse and dump, so `38` and `38.0` differ, as they do to a client that
types its numbers by their spelling."""

import json
import uuid
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from painkiller_common.contracts import MeasurementRecord, MeasurementRecorded

EDGES = [
    pytest.param({"temperature_c": 38.0, "weight_kg": 70.0, "height_cm": 180.0, "glucose_mg_dl": 100.0}, id="whole"),
    pytest.param(
        {"temperature_c": 36.6, "weight_kg": 0.2, "height_cm": 299.99, "glucose_mg_dl": 2999.5},
        id="fractions",
    ),
    pytest.param({"temperature_c": 10, "weight_kg": 700}, id="integers-sent-for-floats"),
    pytest.param({"measured_at": "2026-11-26T08:30:00.000001Z", "heart_rate_bpm": 0}, id="one-microsecond"),
    pytest.param({"measured_at": "2026-11-26T08:30:00.5+05:30", "spo2_percent": 100}, id="half-second-offset"),
    pytest.param({"measured_at": "2026-11-26T08:30:00Z", "on_oxygen": False}, id="whole-second"),
    pytest.param({"source": 'Moniteur « é » "7" \\ 🫀', "consciousness": "voice"}, id="unicode-and-escapes"),
    pytest.param({"heart_rate_bpm": 60}, id="nulls"),
]


def canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def contract_json(reading: dict[str, Any]) -> str:
    """The reading as the contract's model writes it."""
    return canonical(json.loads(MeasurementRecord.model_validate(reading).model_dump_json()))


@pytest.mark.parametrize("fields", EDGES)
def test_the_event_postgres_builds_is_the_contracts_json(
    client: TestClient, record, patient_id: uuid.UUID, outbox, fields: dict[str, Any]
) -> None:
    reading = record(**fields)
    (event,) = outbox()
    expected = MeasurementRecorded(
        event_id=event["event_id"],
        occurred_at=datetime.fromisoformat(event["occurred_at"]),
        aggregate_id=reading["id"],
        aggregate_version=event["aggregate_version"],
        payload=MeasurementRecord.model_validate(reading),
    )
    assert canonical(event) == canonical(json.loads(expected.model_dump_json()))
    assert canonical(event["payload"]) == contract_json(reading)


@pytest.mark.parametrize("fields", EDGES)
def test_a_page_shows_a_reading_as_reading_it_alone_does(client: TestClient, record, fields: dict[str, Any]) -> None:
    reading = record(**fields)
    alone = client.get(f"/api/v1/measures/{reading['id']}")
    page = client.get("/api/v1/measures")
    (listed,) = json.loads(page.text)["items"]
    assert canonical(json.loads(alone.text)) == contract_json(reading)
    assert canonical(listed) == contract_json(reading)
