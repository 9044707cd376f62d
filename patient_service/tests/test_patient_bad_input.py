"""Bad input is a 4xx problem naming the field, and nothing is stored (doc/api.md)."""

import pytest
from fastapi.testclient import TestClient

VALID = {"first_name": "Ada", "last_name": "Lovelace", "age": 36}

BAD_BODIES = {
    "nul byte": ({**VALID, "first_name": "A\u0000da"}, "first_name"),
    "control character": ({**VALID, "last_name": "Love\nlace"}, "last_name"),
    "empty after trim": ({**VALID, "first_name": "   "}, "first_name"),
    "name too long": ({**VALID, "last_name": "x" * 101}, "last_name"),
    "age above 150": ({**VALID, "age": 151}, "age"),
    "age beyond int64": ({**VALID, "age": 2**63}, "age"),
    "negative age": ({**VALID, "age": -1}, "age"),
    "age as boolean": ({**VALID, "age": True}, "age"),
    "age as string": ({**VALID, "age": "36"}, "age"),
    "fractional age": ({**VALID, "age": 36.5}, "age"),
    "future birth date": ({"first_name": "A", "last_name": "B", "birth_date": "2999-01-01"}, "birth_date"),
    "birth date 200 years ago": ({"first_name": "A", "last_name": "B", "birth_date": "1800-01-01"}, "birth_date"),
    "unknown sex": ({**VALID, "sex": "robot"}, "sex"),
    "unknown field": ({**VALID, "is_admin": True}, "is_admin"),
    "server-owned id": ({**VALID, "id": "00000000-0000-4000-8000-000000000000"}, "id"),
    "too many conditions": ({**VALID, "conditions": ["c"] * 51}, "conditions"),
    "condition too long": ({**VALID, "conditions": ["c" * 201]}, "conditions.0"),
    "mrn too long": ({**VALID, "mrn": "m" * 65}, "mrn"),
    "not an object": ([VALID], "body"),
}


@pytest.mark.parametrize("body,field", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_patient_is_422_naming_the_field(client: TestClient, body: object, field: str, stored) -> None:
    response = client.post("/api/v1/patient", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert field in [e["field"] for e in problem["errors"]]
    assert stored("patients") == 0


RAW_BODIES = {
    "malformed json": b'{"first_name": "Ada",',
    "NaN": b'{"first_name": "Ada", "last_name": "L", "age": NaN}',
    "Infinity": b'{"first_name": "Ada", "last_name": "L", "age": Infinity}',
    "huge exponent": b'{"first_name": "Ada", "last_name": "L", "age": 1e400}',
    "empty body": b"",
}


@pytest.mark.parametrize("raw", RAW_BODIES.values(), ids=RAW_BODIES.keys())
def test_unparseable_body_is_422_and_serialisable(client: TestClient, raw: bytes, stored) -> None:
    response = client.post("/api/v1/patient", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"]
    assert stored("patients") == 0


def test_wrong_content_type_is_415(client: TestClient, stored) -> None:
    response = client.post(
        "/api/v1/patient", content=b"first_name=Ada", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert stored("patients") == 0


def test_patch_with_bad_value_changes_nothing(client: TestClient, make_patient) -> None:
    patient = make_patient()
    response = client.patch(f"/api/v1/patient/{patient['id']}", json={"last_name": "ok", "age": 999})
    assert response.status_code == 422
    assert client.get(f"/api/v1/patient/{patient['id']}").json()["last_name"] == "Lovelace"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_id_that_is_not_a_uuid_is_404(client: TestClient, method: str) -> None:
    """No patient can have such an id: the route takes UUIDs only, so that `/list` or `/audit`
    with a method they lack is a 405, not a patient id that fails validation."""
    kwargs = {"json": {"age": 3}} if method == "patch" else {}
    response = getattr(client, method)("/api/v1/patient/12345", **kwargs)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_nul_in_query_is_422(client: TestClient) -> None:
    assert client.get("/api/v1/patient", params={"name": "a\u0000"}).status_code == 422


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    missing = client.get("/api/v1/patient/x/y/z")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong_method = client.put("/api/v1/patient", json=VALID)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("put", "/api/v1/patient", "GET, POST"),  # two routes, GET and POST: both named
        ("patch", "/api/v1/patient/list", "POST"),  # not taken for a patient id
        ("patch", "/api/v1/patient/at-risk", "GET"),
        ("post", "/api/v1/patient/00000000-0000-4000-8000-000000000000", "DELETE, GET, PATCH"),
    ],
)
def test_a_method_a_path_lacks_is_405_naming_every_method_it_has(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method.upper(), path, json={})
    assert response.status_code == 405
    assert response.headers["allow"] == allow
