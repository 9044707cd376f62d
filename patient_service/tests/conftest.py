import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import patient_service
from painkiller_common.consumer import Consumer
from painkiller_common.devauth import mint
from painkiller_common.testing import DatabaseRoles, RoundTrips, count_rows, outbox_events, truncate_all
from painkiller_common.topology import MEASUREMENT_EVENTS_FOR_PATIENTS as QUEUE
from patient_service.config import Settings
from patient_service.events import HANDLERS, reassess_after
from patient_service.main import create_app
from patient_service.models import EVENT_TABLES, RUNTIME_ROLE

TEST_DB = os.environ.get("PATIENT_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/patients_test")
DATABASE = DatabaseRoles.of(TEST_DB, "patient", RUNTIME_ROLE)
MIGRATIONS = Path(patient_service.__file__).parent / "migrations"


@pytest.fixture(scope="session")
def database() -> DatabaseRoles:
    """The test database as each of its roles: admin, owner, runtime."""
    return DATABASE


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """Counts the app's asyncpg statements; ask for it before `client`, which starts the app."""
    return RoundTrips().install(monkeypatch.setattr)


@pytest.fixture(scope="session")
def auth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth")


@pytest.fixture(scope="session")
def settings(auth_dir: Path) -> Settings:
    DATABASE.migrate_fresh(MIGRATIONS)
    return Settings(**DATABASE.settings_fields(auth_dir), event_producer="painkiller_measurement")


@pytest.fixture
def token(auth_dir: Path) -> Callable[..., str]:
    """`token(scope=..., patient=..., subject=...)`: a signed token; every scope by default."""
    return lambda **claims: mint(auth_dir, **claims)


@pytest.fixture
def client(settings: Settings, token: Callable[..., str]) -> Iterator[TestClient]:
    """The API, called with a clinician's token that has every scope."""
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token()}"}) as client:
        yield client
    truncate_all(TEST_DB)


@pytest.fixture
def make_patient(client: TestClient) -> Callable[..., dict]:
    """Create a patient through the API; keyword arguments override the defaults."""

    def make(**fields: object) -> dict:
        body = {"first_name": "Ada", "last_name": "Lovelace", "age": 36, **fields}
        response = client.post("/api/v1/patient", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return make


@pytest.fixture
def stored() -> Callable[[str], int]:
    """How many rows a table of the test database holds: bad input must leave it unchanged."""
    return lambda table: count_rows(TEST_DB, table)


@pytest.fixture
def consumer(settings: Settings, client: TestClient) -> Consumer:
    """The service's consumer, applying events straight to the test database (no broker)."""
    return Consumer(
        session_factory=client.app.state.session_factory,
        tables=EVENT_TABLES,
        queue=QUEUE,
        handlers=HANDLERS,
        after_batch=reassess_after(settings),
        amqp_url=settings.amqp_url,
    )


@pytest.fixture
def outbox(client: TestClient) -> Callable[[], list[dict]]:
    """The events written so far, oldest first, as consumers would receive them."""

    return lambda: outbox_events(client.app.state.engine, EVENT_TABLES.outbox)
