"""Who may do what with patients, and the audit trail of it (doc/security.md)."""

import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from painkiller_testing.databases import DatabaseRoles
from painkiller_testing.fixtures import served

ADA = {"first_name": "Ada", "last_name": "Lovelace", "age": 36}


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_of(client: TestClient, patient_id: str) -> list[dict]:
    response = client.get("/api/v1/patient/audit", params={"patient_id": patient_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_patient_token_reaches_its_own_patient_only(client: TestClient, make_patient, token) -> None:
    mine, other = make_patient(), make_patient()
    own = as_(token(scope="patient/Patient.rs patient/Observation.crs", patient=mine["id"], subject="home-app"))
    assert client.get(f"/api/v1/patient/{mine['id']}", headers=own).status_code == 200
    assert client.get(f"/api/v1/patient/{mine['id']}/risk", headers=own).status_code == 200
    hidden = client.get(f"/api/v1/patient/{other['id']}", headers=own)
    assert hidden.status_code == 404  # as if it did not exist
    assert hidden.json()["detail"] == f"Patient {other['id']} does not exist."
    assert client.get("/api/v1/patient", headers=own).status_code == 403  # lists are for clinicians
    assert client.get("/api/v1/patient/at-risk", headers=own).status_code == 403


@pytest.mark.parametrize("change", [{"spo2_scale": 2}, {"mrn": "MRN-9"}, {"spo2_scale": 2, "last_name": "X"}])
def test_a_patient_token_cannot_change_the_clinicians_fields(
    client: TestClient, make_patient, token, change: dict
) -> None:
    """Moving oneself to SpO2 scale 2 would lower one's NEWS2 and silence the alerts."""
    mine = make_patient()
    own = as_(token(scope="patient/Patient.rus", patient=mine["id"], subject="home-app"))
    refused = client.patch(f"/api/v1/patient/{mine['id']}", json=change, headers=own)
    assert refused.status_code == 403, refused.text
    assert client.get(f"/api/v1/patient/{mine['id']}").json() == mine  # nothing changed
    assert client.patch(f"/api/v1/patient/{mine['id']}", json={"last_name": "Byron"}, headers=own).status_code == 200
    assert client.patch(f"/api/v1/patient/{mine['id']}", json=change).status_code == 200  # a clinician may
    refusals = [(r["actor"], r["action"]) for r in audit_of(client, mine["id"]) if r["status"] == 403]
    assert refusals == [("home-app", "update")]


def test_a_patient_token_without_its_patient_claim_is_403(client: TestClient, make_patient, token) -> None:
    patient = make_patient()
    response = client.get(f"/api/v1/patient/{patient['id']}", headers=as_(token(scope="patient/Patient.r")))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ("user/Patient.r", True),
        ("user/Patient.read", True),  # SMART v1
        ("system/*.cruds", True),
        ("user/Patient.s", False),
        ("user/Observation.r", False),
        ("openid profile", False),
    ],
)
def test_reading_a_patient_needs_patient_read(client: TestClient, make_patient, token, scope, allowed) -> None:
    patient = make_patient()
    response = client.get(f"/api/v1/patient/{patient['id']}", headers=as_(token(scope=scope)))
    assert response.status_code == (200 if allowed else 403)
    if not allowed:
        assert response.headers["content-type"] == "application/problem+json"
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_lacking_the_scope_changes_nothing(client: TestClient, make_patient, token, stored) -> None:
    patient = make_patient()
    reader = as_(token(scope="user/Patient.rs"))
    assert client.post("/api/v1/patient", json=ADA, headers=reader).status_code == 403
    assert client.patch(f"/api/v1/patient/{patient['id']}", json={"age": 40}, headers=reader).status_code == 403
    assert client.delete(f"/api/v1/patient/{patient['id']}", headers=reader).status_code == 403
    csv = b"patient_id,first_name,last_name,age,condition\nH-9,Eve,Doe,30,\n"
    only_create = as_(token(scope="user/Patient.c"))
    headers = {**only_create, "content-type": "text/csv"}
    assert client.post("/api/v1/patient/import", content=csv, headers=headers).status_code == 403
    assert stored("patients") == 1
    assert client.get(f"/api/v1/patient/{patient['id']}").json()["age"] == 36


def test_every_access_is_audited_with_who_and_what(client: TestClient, make_patient, token) -> None:
    patient = make_patient()
    client.get(f"/api/v1/patient/{patient['id']}", headers={"X-Request-ID": "req-42"})
    client.patch(f"/api/v1/patient/{patient['id']}", json={"age": 37})
    client.get("/api/v1/patient", params={"name": "Lovelace"})
    client.get(f"/api/v1/patient/{patient['id']}", headers=as_(token(scope="user/Observation.r", subject="nosy")))
    rows = audit_of(client, patient["id"])
    assert [(r["action"], r["status"], r["actor"]) for r in rows] == [
        ("read", 403, "nosy"),
        ("search", 200, "dev-user"),
        ("update", 200, "dev-user"),
        ("read", 200, "dev-user"),
        ("create", 201, "dev-user"),
    ]
    assert rows[3]["request_id"] == "req-42"
    assert {r["resource_type"] for r in rows} == {"Patient"}
    assert "Lovelace" not in str(rows)  # ids only, never names


def test_a_page_of_patients_audits_each_patient_returned(client: TestClient, make_patient) -> None:
    first, second = make_patient(), make_patient()
    client.get("/api/v1/patient", params={"limit": 1})
    assert [r["action"] for r in audit_of(client, first["id"])][0] == "search"
    assert [r["action"] for r in audit_of(client, second["id"])][0] == "create"  # not on that page


def test_a_conflict_and_a_deleted_record_are_audited(client: TestClient, make_patient) -> None:
    """A 409 says a record exists, a 410 that it did: both are accesses to the trail."""
    patient = make_patient(mrn="MRN-409")
    assert client.post("/api/v1/patient", json={**ADA, "mrn": "MRN-409"}).status_code == 409
    client.delete(f"/api/v1/patient/{patient['id']}")
    assert client.get(f"/fhir/Patient/{patient['id']}").status_code == 410
    with served(client).state.session_factory() as session:
        rows = session.execute(text("SELECT action, status, patient_id FROM audit_events WHERE status IN (409, 410)"))
        assert sorted((action, status, str(pid) if pid else None) for action, status, pid in rows) == [
            ("create", 409, None),
            ("read", 410, patient["id"]),
        ]


def test_requests_without_a_valid_token_are_401_and_counted_per_address_and_minute(
    client: TestClient, make_patient
) -> None:
    """An unauthenticated flood must not grow the audit trail a row per request: such refusals are
    counted per client address, status and minute instead (and kept 90 days)."""
    patient = make_patient()
    for _ in range(30):
        response = client.get(f"/api/v1/patient/{patient['id']}", headers={"Authorization": ""})
        assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="painkiller"'
    assert client.get("/api/v1/patient", headers={"Authorization": "Bearer junk"}).status_code == 401
    assert [r["actor"] for r in audit_of(client, patient["id"])] == ["dev-user"]  # its creation only
    with served(client).state.session_factory() as session:
        counted = session.execute(text("SELECT client_address, status, requests FROM refused_requests")).all()
    assert [tuple(row) for row in counted] == [("testclient", 401, 31)]


def test_the_audit_trail_cannot_be_changed_by_the_service_role(
    client: TestClient, make_patient, database: DatabaseRoles
) -> None:
    make_patient()
    engine = create_engine(database.runtime_url)
    try:
        for statement in ("UPDATE audit_events SET actor = 'someone else'", "DELETE FROM audit_events"):
            with pytest.raises(ProgrammingError, match="permission denied"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 1
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("CREATE TABLE sneaky (id int)"))
    finally:
        engine.dispose()


def test_the_service_role_is_no_superuser_and_cannot_reach_the_other_database(
    client: TestClient, database: DatabaseRoles
) -> None:
    engine = create_engine(database.runtime_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar() is False
            # Whichever of the measurement service's databases exist here (the suite's order decides).
            reachable = (
                "SELECT datname FROM pg_database"
                " WHERE datname LIKE 'measurements%' AND has_database_privilege(datname, 'CONNECT')"
            )
            assert conn.execute(text(reachable)).scalars().all() == []
    finally:
        engine.dispose()


def test_idempotency_keys_are_per_caller(client: TestClient, token) -> None:
    key = {"Idempotency-Key": "same-key"}
    first = client.post("/api/v1/patient", json=ADA, headers=key)
    replay = client.post("/api/v1/patient", json=ADA, headers=key)
    assert replay.headers.get("idempotent-replayed") == "true"
    other = client.post("/api/v1/patient", json=ADA, headers={**key, **as_(token(subject="someone-else"))})
    assert other.status_code == 201
    assert "idempotent-replayed" not in other.headers
    assert other.json()["id"] != first.json()["id"]


def test_a_stored_answer_is_not_replayed_once_its_patient_is_deleted(client: TestClient, stored) -> None:
    key = {"Idempotency-Key": "create-then-delete"}
    created = client.post("/api/v1/patient", json=ADA, headers=key).json()
    assert client.delete(f"/api/v1/patient/{created['id']}").status_code == 204
    retry = client.post("/api/v1/patient", json=ADA, headers=key)
    assert retry.status_code == 404
    assert stored("patients") == 0


@pytest.mark.parametrize("name", ["Ada\u202eecalevoL", "Ad\u200ba", "\ufeffAda", "Ada\u2066x"])
def test_names_with_hidden_or_direction_characters_are_refused(client: TestClient, stored, name: str) -> None:
    response = client.post("/api/v1/patient", json={**ADA, "first_name": name})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "first_name"
    assert stored("patients") == 0


def test_names_are_stored_in_one_normal_form(client: TestClient) -> None:
    created = client.post("/api/v1/patient", json={**ADA, "last_name": "Jose\u0301"}).json()
    assert created["last_name"] == "Jos\u00e9"
    found = client.get("/api/v1/patient", params={"name": "Jos\u00e9"}).json()["items"]
    assert [p["id"] for p in found] == [created["id"]]


def test_unknown_patient_in_audit_query_is_an_empty_page(client: TestClient) -> None:
    assert audit_of(client, str(uuid.uuid4())) == []


def test_audit_needs_its_own_scope(client: TestClient, make_patient, token: Callable[..., str]) -> None:
    patient = make_patient()
    clinician = as_(token(scope="user/Patient.cruds"))
    response = client.get("/api/v1/patient/audit", params={"patient_id": patient["id"]}, headers=clinician)
    assert response.status_code == 403
