import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from measurement_service.main import create_app
from measurement_service.readings.api import get_directory
from painkiller_testing.databases import RoundTrips

UNKNOWN = "00000000-0000-4000-8000-000000000000"
PREFIXES = ["/api/v1/measures", "/api/v1/measurements"]


def test_reading_for_a_patient_is_stored_with_location(client: TestClient, patient_id: uuid.UUID) -> None:
    before = datetime.now(UTC)
    body = {"temperature_c": 37.2, "systolic_mmhg": 120, "diastolic_mmhg": 80, "source": "monitor-7"}
    response = client.post(f"/api/v1/patient/{patient_id}/measurements", json=body)
    assert response.status_code == 201
    stored = response.json()
    assert response.headers["location"] == f"/api/v1/measures/{stored['id']}"
    assert stored["patient_id"] == str(patient_id)
    assert (stored["temperature_c"], stored["systolic_mmhg"], stored["diastolic_mmhg"]) == (37.2, 120, 80)
    assert stored["heart_rate_bpm"] is None
    assert datetime.fromisoformat(stored["measured_at"]) >= before
    assert stored["measured_at"] == stored["recorded_at"]
    assert client.get(response.headers["location"]).json() == stored


@pytest.mark.parametrize("prefix", PREFIXES)
def test_reading_with_patient_in_body(client: TestClient, patient_id: uuid.UUID, prefix: str) -> None:
    measured_at = "2026-01-02T03:04:05+01:00"
    body = {"patient_id": str(patient_id), "spo2_percent": 97, "measured_at": measured_at}
    response = client.post(prefix, json=body)
    assert response.status_code == 201, response.text
    assert datetime.fromisoformat(response.json()["measured_at"]) == datetime.fromisoformat(measured_at)


def test_critical_but_possible_values_are_stored(client: TestClient, record) -> None:
    critical = {
        "heart_rate_bpm": 250,
        "spo2_percent": 62,
        "temperature_c": 42.5,
        "respiratory_rate_bpm": 4,
        "systolic_mmhg": 60,
        "diastolic_mmhg": 30,
        "consciousness": "unresponsive",
        "on_oxygen": True,
    }
    stored = record(**critical)
    assert {k: stored[k] for k in critical} == critical


def test_unknown_patient_is_404_and_nothing_stored(client: TestClient, stored) -> None:
    by_path = client.post(f"/api/v1/patient/{UNKNOWN}/measurements", json={"heart_rate_bpm": 70})
    by_body = client.post("/api/v1/measures", json={"patient_id": UNKNOWN, "heart_rate_bpm": 70})
    assert (by_path.status_code, by_body.status_code) == (404, 404)
    assert by_path.headers["content-type"] == "application/problem+json"
    assert stored("measurements") == 0


@pytest.mark.parametrize("prefix", PREFIXES)
def test_get_and_both_deletes(client: TestClient, record, prefix: str) -> None:
    first, second = record(), record()
    assert client.get(f"{prefix}/{first['id']}").json() == first
    assert client.delete(f"{prefix}/{first['id']}").status_code == 204
    assert client.post(f"{prefix}/delete/{second['id']}").status_code == 204
    for gone in (first, second):
        assert client.get(f"{prefix}/{gone['id']}").status_code == 404
    assert client.delete(f"{prefix}/{UNKNOWN}").status_code == 404
    assert client.post(f"{prefix}/delete/{UNKNOWN}").status_code == 404


def hours_ago(hours: int) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


@pytest.mark.parametrize("prefix", PREFIXES)
def test_list_newest_first_in_pages(client: TestClient, record, prefix: str) -> None:
    ids = [record(heart_rate_bpm=60 + h, measured_at=hours_ago(h))["id"] for h in (3, 1, 2, 5, 4)]
    newest_first = [ids[1], ids[2], ids[0], ids[4], ids[3]]
    seen, cursor = [], None
    while True:
        page = client.get(prefix, params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [m["id"] for m in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == newest_first
    by_body = client.post(f"{prefix}/list", json={"limit": 5}).json()
    assert [m["id"] for m in by_body["items"]] == newest_first


def test_readings_at_the_same_instant_are_paged_without_loss(client: TestClient, record) -> None:
    same = hours_ago(1)
    ids = {record(measured_at=same)["id"] for _ in range(5)}
    first = client.get("/api/v1/measures", params={"limit": 2}).json()
    second = client.get("/api/v1/measures", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get("/api/v1/measures", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    got = [m["id"] for page in (first, second, third) for m in page["items"]]
    assert sorted(got) == sorted(ids) and len(got) == 5


def test_filters_by_patient_and_time_window(client: TestClient, record, patients) -> None:
    other = uuid.uuid4()
    patients.ids.add(other)
    old, recent = record(measured_at=hours_ago(10)), record(measured_at=hours_ago(1))
    record(patient=other, measured_at=hours_ago(1))
    query = {"patient_id": recent["patient_id"], "since": hours_ago(5)}
    assert [m["id"] for m in client.get("/api/v1/measures", params=query).json()["items"]] == [recent["id"]]
    window = {"patient_id": old["patient_id"], "until": hours_ago(5)}
    assert [m["id"] for m in client.post("/api/v1/measures/list", json=window).json()["items"]] == [old["id"]]


def test_patient_scoped_listing(client: TestClient, record, patient_id: uuid.UUID, patients) -> None:
    other = uuid.uuid4()
    patients.ids.add(other)
    mine = record()
    record(patient=other)
    page = client.get(f"/api/v1/patient/{patient_id}/measurements").json()
    assert [m["id"] for m in page["items"]] == [mine["id"]]
    assert page["next_cursor"] is None
    assert client.get(f"/api/v1/patient/{UNKNOWN}/measurements").status_code == 404


def test_unreachable_patient_service_is_503_with_retry_after(client: TestClient, patient_id: uuid.UUID, stored) -> None:
    # The real lookup, pointed by the test settings at a port where nothing listens.
    client.app.dependency_overrides.pop(get_directory)
    response = client.post(f"/api/v1/patient/{patient_id}/measurements", json={"heart_rate_bpm": 70})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert stored("measurements") == 0


def test_timestamps_with_offsets_postgres_refuses_are_normalised_to_utc(client: TestClient, record) -> None:
    # ISO 8601 allows offsets up to ±23:59; PostgreSQL only ±15:59.
    stored = record(measured_at="2026-01-01T00:00:00-17:58")
    assert datetime.fromisoformat(stored["measured_at"]) == datetime(2026, 1, 1, 17, 58, tzinfo=UTC)
    page = client.get("/api/v1/measures", params={"since": "2025-12-31T23:00:00-17:58"})
    assert page.status_code == 200
    assert [m["id"] for m in page.json()["items"]] == [stored["id"]]


def test_a_reading_and_a_page_are_one_round_trip_each(
    round_trips: RoundTrips, client: TestClient, patient_id: uuid.UUID
) -> None:
    """The reading, its event, its audit row and its key's claim: one statement, its own commit;
    a page, its replica check and its audit rows: one statement too."""
    url = f"/api/v1/patient/{patient_id}/measurements"
    client.post(url, json={"heart_rate_bpm": 70}).raise_for_status()  # learns the patient, prepares
    plain = round_trips.during(lambda: client.post(url, json={"heart_rate_bpm": 71}).raise_for_status())
    keyed = round_trips.during(
        lambda: client.post(url, json={"heart_rate_bpm": 72}, headers={"Idempotency-Key": "k1"}).raise_for_status()
    )
    page = round_trips.during(lambda: client.get(url).raise_for_status())
    assert (plain, keyed) == (1, 1)
    assert page == 1


@pytest.fixture
def unreachable_db_client(settings, patients, token) -> Iterator[TestClient]:
    """The app pointed at a port where no PostgreSQL listens (it still starts)."""
    # The hot routes wait a second for a connection, not five, before their 503.
    unreachable = settings.model_copy(
        update={"database_url": settings.database_url.replace(":5432/", ":1/"), "db_pool_timeout_s": 1}
    )
    app = create_app(unreachable)
    app.dependency_overrides[get_directory] = lambda: patients
    with TestClient(app, headers={"Authorization": f"Bearer {token()}"}) as client:
        yield client


def test_the_hot_routes_answer_503_while_the_database_is_unreachable(
    unreachable_db_client: TestClient, patient_id: uuid.UUID
) -> None:
    url = f"/api/v1/patient/{patient_id}/measurements"
    answers = [
        unreachable_db_client.post(url, json={"heart_rate_bpm": 70}),
        unreachable_db_client.post(f"{url}/batch", json={"readings": [{"heart_rate_bpm": 70}]}),
        unreachable_db_client.get(url),
        unreachable_db_client.get("/api/v1/measures"),
    ]
    for response in answers:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "5"


def test_a_pooled_connection_the_server_closed_costs_no_500(
    client: TestClient, patient_id: uuid.UUID, drop_app_connections, stored
) -> None:
    """PostgreSQL restarted under the pool: no ping finds it; the statement does, and the request
    answers 503 (or succeeds on a fresh connection), never 500; the next one succeeds."""
    url = f"/api/v1/patient/{patient_id}/measurements"
    assert client.post(url, json={"heart_rate_bpm": 70}).status_code == 201  # a connection is pooled
    assert drop_app_connections() >= 1
    first = client.post(url, json={"heart_rate_bpm": 71})
    assert first.status_code in (201, 503), first.text
    assert client.post(url, json={"heart_rate_bpm": 72}).status_code == 201
    assert stored("measurements") == 2 + (first.status_code == 201)
