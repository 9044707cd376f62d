import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import measurement_service
from measurement_service.api import get_directory
from measurement_service.config import Settings
from measurement_service.events import HANDLERS
from measurement_service.main import create_app
from measurement_service.models import EVENT_TABLES, RUNTIME_ROLE
from painkiller_common.consumer import Consumer
from painkiller_common.devauth import mint
from painkiller_common.problems import NotFound
from painkiller_common.testing import DatabaseRoles, RoundTrips, count_rows, outbox_events, truncate_all
from painkiller_common.topology import PATIENT_EVENTS_FOR_MEASUREMENTS as QUEUE

TEST_DB = os.environ.get(
    "MEASUREMENT_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/measurements_test"
)
DATABASE = DatabaseRoles.of(TEST_DB, "measurement", RUNTIME_ROLE)
MIGRATIONS = Path(measurement_service.__file__).parent / "migrations"


class KnownPatients:
    """Stands in for the patient service, whose real answers the end-to-end suite checks."""

    def __init__(self) -> None:
        self.ids: set[uuid.UUID] = set()

    async def require(self, patient_id: uuid.UUID) -> None:
        if patient_id not in self.ids:
            raise NotFound(f"Patient {patient_id} does not exist.")


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
    # Nothing listens on port 1: the real patient lookup fails fast where a test uses it.
    return Settings(
        **DATABASE.settings_fields(auth_dir),
        event_producer="painkiller_patient",
        patient_service_url="http://127.0.0.1:1",
    )


@pytest.fixture
def token(auth_dir: Path) -> Callable[..., str]:
    """`token(scope=..., patient=..., subject=...)`: a signed token; every scope by default."""
    return lambda **claims: mint(auth_dir, **claims)


@pytest.fixture
def patients() -> KnownPatients:
    return KnownPatients()


@pytest.fixture
def client(settings: Settings, patients: KnownPatients, token: Callable[..., str]) -> Iterator[TestClient]:
    """The API, called with a clinician's token that has every scope."""
    app = create_app(settings)
    app.dependency_overrides[get_directory] = lambda: patients
    with TestClient(app, headers={"Authorization": f"Bearer {token()}"}) as client:
        yield client
    truncate_all(TEST_DB)


@pytest.fixture
def patient_id(patients: KnownPatients) -> uuid.UUID:
    new = uuid.uuid4()
    patients.ids.add(new)
    return new


@pytest.fixture
def record(client: TestClient, patient_id: uuid.UUID) -> Callable[..., dict]:
    """Post a reading for `patient_id` (or another patient) and return the stored measurement."""

    def post(patient: uuid.UUID | None = None, **fields: object) -> dict:
        body = {"heart_rate_bpm": 72, **fields}
        response = client.post(f"/api/v1/patient/{patient or patient_id}/measurements", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return post


@pytest.fixture
def drop_app_connections(settings: Settings) -> Callable[[], int]:
    """Terminate the app's PostgreSQL connections, as a server restart would; how many it had."""

    def drop() -> int:
        engine = create_engine(TEST_DB)
        try:
            with engine.connect() as conn:
                return conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE usename = :role AND datname = current_database()"
                    ),
                    {"role": make_url(settings.database_url).username},
                ).scalar_one()
        finally:
            engine.dispose()

    return drop


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
        amqp_url=settings.amqp_url,
    )


@pytest.fixture
def outbox(client: TestClient) -> Callable[[], list[dict]]:
    """The events written so far, oldest first, as consumers would receive them."""

    return lambda: outbox_events(client.app.state.engine, EVENT_TABLES.outbox)
