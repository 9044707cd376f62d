"""Where a patient lies: set by PATCH or by HL7 ADT messages (through the measurement service's
listener, doc/hl7.md), filterable by ward."""

from fastapi.testclient import TestClient

ADMISSIONS = "/api/v1/patient/admissions"
BED = {"ward": "4B", "room": "12", "bed": "2"}


def listener(token) -> dict[str, str]:
    """The measurement service's own token, as `make up` mints it."""
    scope = "system/PatientExistence.r system/PatientIdentifier.s system/PatientAdmission.cu"
    return {"Authorization": f"Bearer {token(scope=scope, subject='measurement-service')}"}


def admission(event: str, **fields: object) -> dict:
    return {"event": event, "mrn": "MRN-L1", "sender": "PAS@HOSP", **fields}


def test_a_location_is_set_by_patch_and_filters_the_list(client: TestClient, make_patient) -> None:
    on_4b, elsewhere = make_patient(location=BED), make_patient()
    assert on_4b["location"] == BED and elsewhere["location"] is None
    moved = client.patch(f"/api/v1/patient/{elsewhere['id']}", json={"location": {"ward": "4B"}})
    assert moved.json()["location"] == {"ward": "4B", "room": None, "bed": None}
    ward = client.get("/api/v1/patient", params={"ward": "4B"}).json()["items"]
    assert [patient["id"] for patient in ward] == [on_4b["id"], elsewhere["id"]]
    cleared = client.patch(f"/api/v1/patient/{on_4b['id']}", json={"location": None})
    assert cleared.json()["location"] is None
    assert [p["id"] for p in client.get("/api/v1/patient", params={"ward": "4B"}).json()["items"]] == [elsewhere["id"]]


def test_a_location_names_its_ward(client: TestClient, make_patient) -> None:
    refused = client.post(
        "/api/v1/patient", json={"first_name": "A", "last_name": "B", "age": 3, "location": {"bed": "2"}}
    )
    assert refused.status_code == 422
    assert [error["field"] for error in refused.json()["errors"]] == ["location.ward"]


def test_an_admission_registers_then_a_transfer_moves_and_a_discharge_clears(client: TestClient, token) -> None:
    headers = listener(token)
    registered = client.post(
        ADMISSIONS,
        headers=headers,
        json=admission("A01", first_name="Ada", last_name="Lovelace", birth_date="1960-12-10", location=BED),
    )
    assert registered.status_code == 201, registered.text
    patient_id = registered.json()["patient_id"]
    assert registered.json() == {"patient_id": patient_id, "created": True}  # no record leaves

    moved = client.post(ADMISSIONS, headers=headers, json=admission("A02", location={"ward": "5C", "bed": "3"}))
    assert moved.status_code == 200 and moved.json()["created"] is False
    assert client.get(f"/api/v1/patient/{patient_id}").json()["location"]["ward"] == "5C"

    at = "2026-12-01T10:00:00Z"
    assert client.post(ADMISSIONS, headers=headers, json=admission("A03", at=at)).status_code == 200
    patient = client.get(f"/api/v1/patient/{patient_id}").json()
    assert (patient["location"], patient["discharged_at"]) == (None, at)
    audit = client.get("/api/v1/patient/audit", params={"patient_id": patient_id}).json()["items"]
    assert {row["actor"] for row in audit if row["action"] == "admit"} == {"PAS@HOSP"}

    readmitted = client.post(ADMISSIONS, headers=headers, json=admission("A01", location=BED))
    assert readmitted.status_code == 200
    patient = client.get(f"/api/v1/patient/{patient_id}").json()
    assert (patient["location"], patient["discharged_at"]) == (BED, None)


def test_a_transfer_of_an_unknown_mrn_is_404_and_a_registration_needs_names_and_birth_date(
    client: TestClient, token, stored
) -> None:
    headers = listener(token)
    assert client.post(ADMISSIONS, headers=headers, json=admission("A02", location=BED)).status_code == 404
    incomplete = client.post(ADMISSIONS, headers=headers, json=admission("A01", first_name="Ada"))
    assert incomplete.status_code == 422
    assert [error["field"] for error in incomplete.json()["errors"]] == ["last_name", "birth_date"]
    assert stored("patients") == 0


def test_admissions_are_for_the_listeners_token_only(client: TestClient, token) -> None:
    clinician = {"Authorization": f"Bearer {token(scope='user/*.cruds')}"}
    body = admission("A01", first_name="Ada", last_name="Lovelace", birth_date="1960-12-10")
    assert client.post(ADMISSIONS, headers=clinician, json=body).status_code == 403
