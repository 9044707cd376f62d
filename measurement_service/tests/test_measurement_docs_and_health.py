from fastapi.testclient import TestClient


def test_swagger_ui_is_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/api/v1/measures/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert client.get("/api/v1/measures/docs/static/swagger-ui.css").status_code == 200


def test_openapi_documents_the_routes_and_their_errors(client: TestClient) -> None:
    spec = client.get("/api/v1/measures/openapi.json").json()
    scoped = spec["paths"]["/api/v1/patient/{patient_id}/measurements"]["post"]["responses"]
    assert {"201", "404", "415", "422", "503"} <= scoped.keys()
    assert list(scoped["503"]["content"]) == ["application/problem+json"]
    assert "/api/v1/measures/{measurement_id}" in spec["paths"]


def test_health_under_both_prefixes(client: TestClient) -> None:
    for prefix in ("/api/v1/measures", "/api/v1/measurements"):
        assert client.get(f"{prefix}/health/live").status_code == 200
        checks = client.get(f"{prefix}/health/ready").json()["checks"]
        assert (checks["database"], checks["broker"]) == ("ok", "unknown")  # no relay has reported here
        assert checks["outbox"]["pending"] == 0
