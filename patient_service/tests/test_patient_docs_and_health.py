import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from patient_service.config import Settings
from patient_service.main import create_app


def test_swagger_ui_is_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/api/v1/patient/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "/api/v1/patient/docs/static/swagger-ui-bundle.js" in page.text
    bundle = client.get("/api/v1/patient/docs/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert len(bundle.content) > 100_000


def test_openapi_documents_errors_as_problem_json(client: TestClient) -> None:
    spec = client.get("/api/v1/patient/openapi.json").json()
    create = spec["paths"]["/api/v1/patient"]["post"]["responses"]
    assert {"201", "409", "415", "422"} <= create.keys()
    for status in ("409", "422"):
        assert list(create[status]["content"]) == ["application/problem+json"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_liveness_and_readiness(client: TestClient) -> None:
    assert client.get("/api/v1/patient/health/live").json() == {"status": "ok"}
    ready = client.get("/api/v1/patient/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "broker": "unknown",  # no relay runs in these tests, so none has reported the broker
        "outbox": {"pending": 0, "oldest_pending_s": 0.0},
    }


def test_readiness_reports_the_outbox_backlog(client: TestClient, make_patient) -> None:
    make_patient()  # no relay runs in these tests: its event stays pending
    outbox = client.get("/api/v1/patient/health/ready").json()["checks"]["outbox"]
    assert outbox["pending"] == 1
    assert outbox["oldest_pending_s"] >= 0


@pytest.mark.parametrize(
    "connected,seen,state",
    [(False, "now()", "unreachable"), (True, "now()", "ok"), (True, "now() - interval '1 minute'", "unknown")],
)
def test_readiness_reports_the_broker_as_the_relay_last_said(
    client: TestClient, database, connected: bool, seen: str, state: str
) -> None:
    """Readiness opens no broker connection: it reads what the relay reported (a stale report is
    `unknown`). A broker outage does not stop writes: they wait in the outbox."""
    engine = create_engine(database.admin_url)
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO broker_status (connected, changed_at, seen_at) VALUES (:connected, now(), {seen})"),
            {"connected": connected},
        )
    engine.dispose()
    ready = client.get("/api/v1/patient/health/ready")
    assert (ready.status_code, ready.json()["checks"]["broker"]) == (200, state)
    created = client.post("/api/v1/patient", json={"first_name": "A", "last_name": "B", "age": 3})
    assert created.status_code == 201


@pytest.fixture
def unreachable_db_client(settings: Settings, token) -> Iterator[TestClient]:
    """The app pointed at a port where no PostgreSQL listens."""
    unreachable = settings.model_copy(
        # The hot route waits a second for a connection, not five, before its 503.
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/patients_test", "db_pool_timeout_s": 1}
    )
    with TestClient(create_app(unreachable), headers={"Authorization": f"Bearer {token()}"}) as client:
        yield client


def test_readiness_is_503_while_the_database_is_unreachable(unreachable_db_client: TestClient) -> None:
    ready = unreachable_db_client.get("/api/v1/patient/health/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.headers["retry-after"] == "5"
    assert unreachable_db_client.get("/api/v1/patient/health/live").status_code == 200


def test_writes_while_the_database_is_unreachable_are_503_not_500(unreachable_db_client: TestClient) -> None:
    response = unreachable_db_client.post("/api/v1/patient", json={"first_name": "A", "last_name": "B", "age": 3})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"


def test_reading_a_patient_while_the_database_is_unreachable_is_503(unreachable_db_client: TestClient) -> None:
    response = unreachable_db_client.get(f"/api/v1/patient/{uuid.uuid4()}")  # a hot route, on the async pool
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
