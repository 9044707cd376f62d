"""When a patient's next observations are due (risk/observations.py, doc/risk.md): the RCP's minimum
frequency at each NEWS2 boundary, a ward's own, and whether the time has passed, on a frozen clock;
then the same on the patient and the at-risk list, through the API."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from measurement_events import minutes_ago, reading
from test_patient_risk_api import CRITICAL, NORMAL

from patient_service.config import Settings
from patient_service.risk.observations import RCP_MINUTES, LatestSet, Schedule, next_observation

SET_AT = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
REGISTERED = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
RCP = Schedule(dict(RCP_MINUTES), {})


def latest(total: int | None, band: str | None, *, complete: bool = True, ward: str | None = "4B",
           discharged: bool = False) -> LatestSet:  # fmt: skip
    return LatestSet(total, band, complete, SET_AT if total is not None else None, REGISTERED, discharged, ward)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("total", "band", "hours"),
    [
        (0, "low", 12),
        (1, "low", 4),
        (4, "low", 4),
        (3, "low_medium", 1),  # a 3 in one parameter
        (5, "medium", 1),
        (6, "medium", 1),
        (7, "high", 0.25),  # continuous, shown as every 15 minutes
        (17, "high", 0.25),
    ],
)
def test_the_rcp_minimum_frequency_at_each_boundary(total: int, band: str, hours: float) -> None:
    due_at = SET_AT + timedelta(hours=hours)
    assert next_observation(latest(total, band), RCP, now=due_at).at == due_at
    assert next_observation(latest(total, band), RCP, now=due_at).overdue is False
    assert next_observation(latest(total, band), RCP, now=due_at + timedelta(microseconds=1)).overdue is True


def test_a_ward_observes_more_often_at_the_levels_it_names() -> None:
    schedule = Schedule(dict(RCP_MINUTES), {"ICU": {"zero": 60, "low": 60}})
    assert next_observation(latest(0, "low", ward="ICU"), schedule, SET_AT).at == SET_AT + timedelta(hours=1)
    assert next_observation(latest(7, "high", ward="ICU"), schedule, SET_AT).at == SET_AT + timedelta(minutes=15)
    assert next_observation(latest(0, "low", ward="4B"), schedule, SET_AT).at == SET_AT + timedelta(hours=12)
    assert next_observation(latest(0, "low", ward=None), schedule, SET_AT).at == SET_AT + timedelta(hours=12)


def test_without_a_complete_set_a_full_one_is_due_since_registration() -> None:
    for unknown in (latest(None, None), latest(2, "low", complete=False)):
        due = next_observation(unknown, RCP, now=REGISTERED + timedelta(seconds=1))
        assert (due.at, due.overdue) == (REGISTERED, True)


def test_a_discharged_patient_has_nothing_due() -> None:
    due = next_observation(latest(9, "high", discharged=True), RCP, now=SET_AT + timedelta(days=1))
    assert (due.at, due.overdue) == (None, False)


def test_the_patient_shows_when_observations_are_due(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    assert (patient["next_observation_due_at"], patient["overdue"]) == (patient["created_at"], True)
    consumer.apply(reading(patient["id"], minutes_ago(30), NORMAL))  # NEWS2 0: 12-hourly
    shown = client.get(f"/api/v1/patient/{patient['id']}").json()
    due = datetime.fromisoformat(shown["risk"]["based_on"]) + timedelta(hours=12)
    assert (datetime.fromisoformat(shown["next_observation_due_at"]), shown["overdue"]) == (due, False)
    listed = client.get("/api/v1/patient", params={"mrn": patient["mrn"]} if patient["mrn"] else {}).json()["items"]
    mine = next(item for item in listed if item["id"] == patient["id"])
    assert (mine["next_observation_due_at"], mine["overdue"]) == (shown["next_observation_due_at"], False)


def test_a_set_older_than_its_frequency_is_overdue(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    consumer.apply(reading(patient["id"], minutes_ago(12 * 60 + 1), NORMAL))
    assert client.get(f"/api/v1/patient/{patient['id']}").json()["overdue"] is True


def test_the_at_risk_list_shows_the_quarter_hourly_due_time(client: TestClient, make_patient, consumer) -> None:
    patient = make_patient()
    consumer.apply(reading(patient["id"], minutes_ago(5), CRITICAL))  # NEWS2 17: continuous
    listed = client.get("/api/v1/patient/at-risk", params={"min_band": "high"}).json()["items"]
    mine = next(item for item in listed if item["id"] == patient["id"])
    due = datetime.fromisoformat(mine["based_on"]) + timedelta(minutes=15)
    assert (datetime.fromisoformat(mine["next_observation_due_at"]), mine["overdue"]) == (due, False)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings (made once per run), with one ward observing its patients hourly."""
    return settings.model_copy(update={"ward_observation_minutes": {"ICU": {"zero": 60}}})


def test_a_wards_frequency_applies_to_its_patients(client: TestClient, make_patient, consumer) -> None:
    in_icu = make_patient(location={"ward": "ICU", "room": "1", "bed": "2"})
    elsewhere = make_patient(location={"ward": "4B", "room": "1", "bed": "2"})
    for patient in (in_icu, elsewhere):
        consumer.apply(reading(patient["id"], minutes_ago(90), NORMAL))
    assert client.get(f"/api/v1/patient/{in_icu['id']}").json()["overdue"] is True  # hourly in ICU
    assert client.get(f"/api/v1/patient/{elsewhere['id']}").json()["overdue"] is False  # 12-hourly
