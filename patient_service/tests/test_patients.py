from datetime import date

import pytest
from fastapi.testclient import TestClient

from painkiller_testing.databases import RoundTrips
from patient_service.patients.schemas import today, years_between

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def test_create_returns_201_with_location_and_trimmed_fields(client: TestClient) -> None:
    response = client.post(
        "/api/v1/patient",
        json={"first_name": "  Ada ", "last_name": "Lovelace", "age": 36, "mrn": "MRN-1", "conditions": ["asthma"]},
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/api/v1/patient/{body['id']}"
    assert body["first_name"] == "Ada"
    assert body["sex"] == "unknown"
    assert body["conditions"] == ["asthma"]
    assert body["created_at"].endswith("Z") or "+" in body["created_at"]
    assert client.get(response.headers["location"]).json() == body


def test_reading_a_patient_is_one_round_trip_audit_included(
    round_trips: RoundTrips, client: TestClient, make_patient
) -> None:
    patient = make_patient()
    url = f"/api/v1/patient/{patient['id']}"
    client.get(url).raise_for_status()  # prepares the statement
    assert round_trips.during(lambda: client.get(url).raise_for_status()) == 1
    audited = client.get("/api/v1/patient/audit", params={"patient_id": patient["id"]}).json()["items"]
    assert [(row["action"], row["status"]) for row in audited][:2] == [("read", 200), ("read", 200)]


def test_a_page_of_patients_is_one_round_trip_audit_included(
    round_trips: RoundTrips, client: TestClient, make_patient
) -> None:
    shown, hidden = make_patient(), make_patient()
    client.get("/api/v1/patient", params={"limit": 1}).raise_for_status()  # prepares the statement
    page = round_trips.during(lambda: client.get("/api/v1/patient", params={"limit": 1}).raise_for_status())
    assert page == 1
    audited = client.get("/api/v1/patient/audit", params={"patient_id": shown["id"]}).json()["items"]
    assert [row["action"] for row in audited][:3] == ["search", "search", "create"]
    audited = client.get("/api/v1/patient/audit", params={"patient_id": hidden["id"]}).json()["items"]
    assert "search" not in [row["action"] for row in audited]  # not on that page


def test_get_unknown_patient_is_404_problem(client: TestClient) -> None:
    response = client.get(f"/api/v1/patient/{UNKNOWN}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 404
    assert UNKNOWN in problem["detail"]
    assert {"type", "title", "status", "detail"} <= problem.keys()


def test_birth_date_gives_the_age(client: TestClient, make_patient) -> None:
    born = date(1990, 5, 17)
    patient = make_patient(age=None, birth_date=born.isoformat())
    assert patient["age"] == years_between(born, today())
    assert patient["birth_date"] == "1990-05-17"


def test_age_or_birth_date_is_required_and_named(client: TestClient) -> None:
    response = client.post("/api/v1/patient", json={"first_name": "A", "last_name": "B"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["age"]


@pytest.mark.parametrize("age", [3, 36])  # 36 agrees with the date in 2026: one fact, sent once
def test_age_and_birth_date_together_are_422(client: TestClient, stored, age: int) -> None:
    response = client.post(
        "/api/v1/patient", json={"first_name": "A", "last_name": "B", "age": age, "birth_date": "1990-01-01"}
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["age"]
    assert stored("patients") == 0


@pytest.mark.parametrize("birth_date", [0, "+0.0", "86400"])  # pydantic alone reads these as Unix times
def test_a_birth_date_that_is_a_number_is_422_not_1970(client: TestClient, make_patient, stored, birth_date) -> None:
    patient = make_patient(age=None, birth_date="2000-01-01")
    created = client.post("/api/v1/patient", json={"first_name": "A", "last_name": "B", "birth_date": birth_date})
    patched = client.patch(f"/api/v1/patient/{patient['id']}", json={"birth_date": birth_date})
    for response in (created, patched):
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["birth_date"]
    assert stored("patients") == 1
    assert client.get(f"/api/v1/patient/{patient['id']}").json()["birth_date"] == "2000-01-01"


def test_patch_changes_only_the_fields_sent(client: TestClient, make_patient) -> None:
    patient = make_patient(mrn="M-7", conditions=["copd"])
    response = client.patch(f"/api/v1/patient/{patient['id']}", json={"last_name": "Byron", "sex": "female"})
    assert response.status_code == 200
    updated = response.json()
    assert updated["last_name"] == "Byron"
    assert updated["sex"] == "female"
    assert updated["first_name"] == patient["first_name"]
    assert updated["mrn"] == "M-7"
    assert updated["conditions"] == ["copd"]
    assert updated["updated_at"] > patient["updated_at"]
    assert client.get(f"/api/v1/patient/{patient['id']}").json() == updated


def test_patch_age_replaces_birth_date_and_back(client: TestClient, make_patient) -> None:
    patient = make_patient(age=None, birth_date="2000-01-01")
    by_age = client.patch(f"/api/v1/patient/{patient['id']}", json={"age": 70}).json()
    assert (by_age["age"], by_age["birth_date"]) == (70, None)
    by_date = client.patch(f"/api/v1/patient/{patient['id']}", json={"birth_date": "1950-06-30"}).json()
    assert by_date["birth_date"] == "1950-06-30"
    assert by_date["age"] == years_between(date(1950, 6, 30), today())


def test_patch_cannot_null_a_required_field(client: TestClient, make_patient) -> None:
    patient = make_patient()
    response = client.patch(f"/api/v1/patient/{patient['id']}", json={"first_name": None})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "first_name"
    assert client.get(f"/api/v1/patient/{patient['id']}").json()["first_name"] == "Ada"


def test_patch_unknown_patient_is_404(client: TestClient) -> None:
    assert client.patch(f"/api/v1/patient/{UNKNOWN}", json={"age": 3}).status_code == 404


def test_duplicate_mrn_is_409_on_create_and_patch(client: TestClient, make_patient, stored) -> None:
    make_patient(mrn="DUP-1")
    other = make_patient(mrn="OTHER")
    create = client.post("/api/v1/patient", json={"first_name": "B", "last_name": "C", "age": 1, "mrn": "DUP-1"})
    assert create.status_code == 409
    assert create.headers["content-type"] == "application/problem+json"
    assert client.patch(f"/api/v1/patient/{other['id']}", json={"mrn": "DUP-1"}).status_code == 409
    assert stored("patients") == 2


def test_delete_and_its_post_alias(client: TestClient, make_patient) -> None:
    first, second = make_patient(), make_patient()
    assert client.delete(f"/api/v1/patient/{first['id']}").status_code == 204
    assert client.post(f"/api/v1/patient/delete/{second['id']}").status_code == 204
    assert client.get(f"/api/v1/patient/{first['id']}").status_code == 404
    assert client.get(f"/api/v1/patient/{second['id']}").status_code == 404
    assert client.delete(f"/api/v1/patient/{first['id']}").status_code == 404
    assert client.post(f"/api/v1/patient/delete/{UNKNOWN}").status_code == 404
