"""Every public route, through the real NGINX, to the real services and databases."""

import uuid
from importlib import metadata

import httpx
import jsonschema_rs
import pytest
import stack as stack_module
from harness import eventually

UNKNOWN = "00000000-0000-4000-8000-000000000000"
MEASURE_PREFIXES = ["/api/v1/measures", "/api/v1/measurements"]


def create_patient(api: httpx.Client, **fields: object) -> dict:
    response = api.post("/api/v1/patient", json={"first_name": "Grace", "last_name": "Hopper", "age": 85, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_patient_lifecycle(api: httpx.Client) -> None:
    created = api.post(
        "/api/v1/patient", json={"first_name": "Grace", "last_name": "Hopper", "birth_date": "1990-12-09"}
    )
    assert created.status_code == 201
    patient = created.json()
    assert created.headers["location"] == f"/api/v1/patient/{patient['id']}"
    assert api.get(created.headers["location"]).json() == patient

    patched = api.patch(f"/api/v1/patient/{patient['id']}", json={"conditions": ["copd"], "mrn": "H-1"})
    assert patched.status_code == 200
    assert patched.json()["conditions"] == ["copd"]

    assert api.get("/api/v1/patient", params={"name": "hop"}).json()["items"][0]["id"] == patient["id"]
    assert api.post("/api/v1/patient/list", json={"mrn": "H-1"}).json()["items"][0]["id"] == patient["id"]

    assert api.delete(f"/api/v1/patient/{patient['id']}").status_code == 204
    assert api.get(f"/api/v1/patient/{patient['id']}").status_code == 404
    other = create_patient(api)
    assert api.post(f"/api/v1/patient/delete/{other['id']}").status_code == 204
    assert api.get(f"/api/v1/patient/{other['id']}").status_code == 404


def test_reading_for_a_patient_created_a_moment_ago(api: httpx.Client) -> None:
    patient = create_patient(api)
    response = api.post(f"/api/v1/patient/{patient['id']}/measurements", json={"heart_rate_bpm": 88})
    assert response.status_code == 201, response.text
    assert response.json()["patient_id"] == patient["id"]
    listed = api.get(f"/api/v1/patient/{patient['id']}/measurements").json()
    assert [m["id"] for m in listed["items"]] == [response.json()["id"]]


def test_reading_for_an_unknown_patient_is_404(api: httpx.Client) -> None:
    response = api.post(f"/api/v1/patient/{UNKNOWN}/measurements", json={"heart_rate_bpm": 88})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert api.post("/api/v1/measures", json={"patient_id": UNKNOWN, "spo2_percent": 97}).status_code == 404
    assert api.get("/api/v1/measures").json()["items"] == []


@pytest.mark.parametrize("prefix", MEASURE_PREFIXES)
def test_every_measurement_route_under_both_prefixes(api: httpx.Client, prefix: str) -> None:
    patient = create_patient(api)
    first = api.post(prefix, json={"patient_id": patient["id"], "temperature_c": 38.4})
    second = api.post(prefix, json={"patient_id": patient["id"], "spo2_percent": 93})
    assert (first.status_code, second.status_code) == (201, 201)
    first_id, second_id = first.json()["id"], second.json()["id"]

    assert api.get(f"{prefix}/{first_id}").json()["temperature_c"] == 38.4
    assert [m["id"] for m in api.get(prefix, params={"patient_id": patient["id"]}).json()["items"]] == [
        second_id,
        first_id,
    ]
    assert len(api.post(f"{prefix}/list", json={"patient_id": patient["id"], "limit": 1}).json()["items"]) == 1

    assert api.delete(f"{prefix}/{first_id}").status_code == 204
    assert api.post(f"{prefix}/delete/{second_id}").status_code == 204
    assert api.get(f"{prefix}/{first_id}").status_code == 404
    assert api.get(f"{prefix}/{second_id}").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/patient/docs",
        "/api/v1/measures/docs",
        "/api/v1/patient/docs/static/swagger-ui-bundle.js",
        "/api/v1/measures/docs/static/swagger-ui-bundle.js",
        "/api/v1/patient/health/live",
        "/api/v1/patient/health/ready",
        "/api/v1/measures/health/live",
        "/api/v1/measures/health/ready",
        "/api/v1/measurements/health/ready",
    ],
)
def test_docs_and_health_are_reachable(api: httpx.Client, path: str) -> None:
    assert api.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/patient/openapi.json", "/api/v1/measures/openapi.json"])
def test_openapi_documents_are_reachable(api: httpx.Client, path: str) -> None:
    spec = api.get(path).json()
    assert spec["openapi"].startswith("3.")
    assert spec["paths"]


OPERATIONS = {
    "/api/v1/patient/openapi.json": {
        "patient_create", "patient_import", "patient_list", "patient_list_by_body", "patient_list_at_risk",
        "patient_audit", "patient_risk", "patient_chart", "patient_read", "patient_update", "patient_delete",
        "patient_health_live", "patient_health_ready",
        "patient_subscription_create", "patient_subscription_list", "patient_subscription_read",
        "patient_subscription_delete", "patient_subscription_rotate_secret", "patient_subscription_deliveries",
        "patient_subscription_delivery_retry",
    },
    "/api/v1/measures/openapi.json": {
        "measurement_create", "measurement_create_for_patient", "measurement_batch", "measurement_batch_for_patient",
        "measurement_list", "measurement_list_by_body", "measurement_list_for_patient", "measurement_audit",
        "measurement_read", "measurement_delete", "measurement_health_live",
        "measurement_health_ready", "measurement_hl7_held",
    },
}  # fmt: skip


@pytest.mark.parametrize("path", OPERATIONS)
def test_operation_ids_are_short_names_a_generated_client_can_use(api: httpx.Client, path: str) -> None:
    spec = api.get(path).json()
    ids = [operation["operationId"] for methods in spec["paths"].values() for operation in methods.values()]
    assert sorted(ids) == sorted(OPERATIONS[path])  # each once: unique in its document


@pytest.mark.parametrize("path", OPERATIONS)
def test_documents_declare_the_headers_the_services_send(api: httpx.Client, path: str) -> None:
    for methods in api.get(path).json()["paths"].values():
        for operation in methods.values():
            responses = operation["responses"]
            assert "Retry-After" in responses["503"]["headers"], operation["operationId"]
            if "201" in responses:
                assert "Location" in responses["201"]["headers"], operation["operationId"]
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if "Idempotency-Key" in headers:
                success = next(status for status in responses if status.startswith("2"))
                assert "Idempotent-Replayed" in responses[success]["headers"], operation["operationId"]


@pytest.mark.parametrize(
    ("path", "package"),
    [("/api/v1/patient/openapi.json", "painkiller-patient-service"),
     ("/api/v1/measures/openapi.json", "painkiller-measurement-service")],
)  # fmt: skip
def test_each_document_states_its_package_version(api: httpx.Client, path: str, package: str) -> None:
    assert api.get(path).json()["info"]["version"] == metadata.version(package)


def test_responses_carry_request_id_and_safety_headers(api: httpx.Client, stack) -> None:
    response = api.get(f"/api/v1/patient/{UNKNOWN}", headers={"X-Request-ID": "trace-e2e-42"})
    assert response.headers["x-request-id"] == "trace-e2e-42"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    # NGINX passed the id on: the service logged it (once the response was sent).
    eventually(lambda: '"request_id": "trace-e2e-42"' in (stack.run_dir / "patient-api.log").read_text())
    minted = api.get("/api/v1/patient/health/live").headers["x-request-id"]
    assert len(minted) == 32


PROTECTIVE = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": "frame-ancestors 'none'",
}


@pytest.mark.parametrize("through", ["nginx", "own port"])
def test_patient_data_carries_the_protective_headers_once_with_or_without_nginx(
    api: httpx.Client, stack, through: str
) -> None:
    """In Kubernetes the Ingress reaches a service without NGINX: the service itself must say that
    its answers are not to be cached, sniffed or framed, and NGINX must not say it twice."""
    patient = api.post("/api/v1/patient", json={"first_name": "Hedy", "last_name": "Lamarr", "age": 40}).json()
    api.post(f"/api/v1/patient/{patient['id']}/measurements", json={"heart_rate_bpm": 70})
    paths = [f"/api/v1/patient/{patient['id']}", f"/api/v1/patient/{patient['id']}/measurements", "/fhir/Patient"]
    for path in paths:
        port = stack.measurement_port if path.endswith("/measurements") else stack.patient_port
        base = stack.url if through == "nginx" else f"http://127.0.0.1:{port}"
        response = httpx.get(base + path, headers=api.headers, timeout=10)
        assert response.status_code == 200, (path, response.text)
        assert {name: response.headers.get_list(name) for name in PROTECTIVE} == {
            name: [value] for name, value in PROTECTIVE.items()
        }, path


def test_unknown_path_is_a_problem_from_nginx(api: httpx.Client) -> None:
    response = api.get("/wp-admin/setup.php")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_body_over_the_limit_is_413_problem(api: httpx.Client) -> None:
    body = b'{"first_name": "' + b"a" * 2_000_000 + b'"}'
    response = api.post("/api/v1/patient", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413


BAD_REQUESTS = {
    "nul byte": ("/api/v1/patient", {"first_name": "a\u0000", "last_name": "b", "age": 3}, 422),
    "fahrenheit": ("/api/v1/measures", {"patient_id": UNKNOWN, "temperature_c": 98.6}, 422),
    "spo2 120": ("/api/v1/measurements", {"patient_id": UNKNOWN, "spo2_percent": 120}, 422),
    "naive datetime": (
        "/api/v1/measures",
        {"patient_id": UNKNOWN, "heart_rate_bpm": 60, "measured_at": "2026-01-01T00:00"},
        422,
    ),
    "unknown field": ("/api/v1/patient", {"first_name": "a", "last_name": "b", "age": 3, "role": "admin"}, 422),
    "not a uuid": ("/api/v1/measures", {"patient_id": "123", "heart_rate_bpm": 60}, 422),
}


@pytest.mark.parametrize("path,body,status", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_is_a_problem_through_nginx(api: httpx.Client, path: str, body: dict, status: int) -> None:
    response = api.post(path, json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]
    assert api.get("/api/v1/patient").json()["items"] == []
    assert api.get("/api/v1/measures").json()["items"] == []


@pytest.mark.parametrize("raw", [b'{"temperature_c": NaN}', b"{not json", b'{"heart_rate_bpm": 1e999}'])
def test_malformed_and_non_finite_json_is_422(api: httpx.Client, raw: bytes) -> None:
    patient = create_patient(api)
    response = api.post(
        f"/api/v1/patient/{patient['id']}/measurements", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert api.get("/api/v1/measures").json()["items"] == []


def test_wrong_content_type_is_415(api: httpx.Client) -> None:
    response = api.post("/api/v1/patient", content=b"<patient/>", headers={"content-type": "application/xml"})
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"


def test_non_uuid_ids_are_404_problems(api: httpx.Client) -> None:
    """No resource has such an id: the routes take UUIDs only (so `/list` is never read as an id)."""
    for path in ("/api/v1/patient/42", "/api/v1/measures/42", "/api/v1/patient/42/measurements"):
        response = api.get(path)
        assert (response.status_code, response.headers["content-type"]) == (404, "application/problem+json"), path


@pytest.mark.parametrize("path", ["/api/v1/patient/openapi.json", "/api/v1/measures/openapi.json"])
def test_documents_use_json_schema_keywords_only(api: httpx.Client, path: str) -> None:
    """pydantic's own names for bounds (`ge`, `le`) once reached the documents, where no JSON
    Schema tool reads them: every number's range went unstated."""

    def keys(node: object) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for value in node.values() for k in keys(value)}
        return {k for value in node for k in keys(value)} if isinstance(node, list) else set()

    schemas = api.get(path).json()["components"]["schemas"]
    assert keys(schemas) & {"ge", "le", "gt", "lt", "strict"} == set()
    model, field, low, high = (
        ("Reading", "spo2_percent", 0, 100) if "measures" in path else ("PatientCreate", "age", 0, 150)
    )
    bounded = schemas[model]["properties"][field]["anyOf"][0]
    assert (bounded["type"], bounded["minimum"], bounded["maximum"]) == ("integer", low, high)


def test_a_stopped_service_gives_problems_not_hangs(api: httpx.Client, stack) -> None:
    """Patient service down: its routes are 502 from NGINX, new readings a 503 with Retry-After."""
    stack.supervisor.stop_program("patient-api")
    try:
        down = api.get(f"/api/v1/patient/{uuid.uuid4()}")
        assert down.status_code == 502
        assert down.headers["content-type"] == "application/problem+json"
        trace = api.request("TRACE", "/api/v1/patient")  # NGINX's 405 asks the service, which is down
        assert (trace.status_code, trace.headers["content-type"]) == (502, "application/problem+json")
        reading = api.post(f"/api/v1/patient/{uuid.uuid4()}/measurements", json={"heart_rate_bpm": 70})
        assert reading.status_code == 503
        assert reading.headers["content-type"] == "application/problem+json"
        assert int(reading.headers["retry-after"]) > 0
    finally:
        stack.supervisor.start_program("patient-api")
        stack_module.wait_ready(stack.url + "/api/v1/patient/health/ready")
    assert api.get("/api/v1/patient/health/ready").status_code == 200


def _bodies(spec: dict) -> set[str]:
    """The schemas every request and response body of the document refers to."""
    operations = [op for methods in spec["paths"].values() for op in methods.values()]
    contents = [op.get("requestBody", {}).get("content", {}) for op in operations]
    contents += [response.get("content", {}) for op in operations for response in op["responses"].values()]
    return {
        media["schema"]["$ref"].rsplit("/", 1)[1]
        for content in contents
        for media in content.values()
        if "$ref" in media["schema"]
    }


@pytest.mark.parametrize("path", ["/api/v1/patient/openapi.json", "/api/v1/measures/openapi.json"])
def test_every_body_has_an_example_and_every_example_is_valid(api: httpx.Client, path: str) -> None:
    spec = api.get(path).json()
    schemas = spec["components"]["schemas"]
    assert {name for name in _bodies(spec) if not schemas[name].get("examples")} == set()
    for name, schema in schemas.items():
        validator = jsonschema_rs.Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        )
        for example in schema.get("examples", []):
            assert validator.is_valid(example), (name, next(validator.iter_errors(example)).message)
