"""The fixtures both services' tests share, registered as a pytest plugin (common/pyproject.toml).

A service's conftest supplies `service` (its `Service`) and, if it needs them, `settings_fields`
(settings of its own) and `app_overrides` (FastAPI dependency overrides); everything else is here:
a freshly migrated test database reached as the service's own roles, its app with a clinician's
token, its consumer without a broker, and helpers to look at what was stored.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from painkiller_common.events.consumer import Consumer
from painkiller_common.http.app import create_app
from painkiller_common.service_spec import Service
from painkiller_common.settings import ServiceSettings, on_our_driver
from painkiller_testing.databases import DatabaseRoles, RoundTrips, count_rows, outbox_events, truncate_all
from painkiller_testing.devauth import mint

# Function-scoped, though each is made once per service: session-scoped fixtures are one for the
# whole run, and one run holds both services' tests, each with its own `service`.
_SETTINGS: dict[str, ServiceSettings] = {}


@pytest.fixture
def database(service: Service[Any]) -> DatabaseRoles:
    """The test database as each of its roles: admin, owner, runtime (`PATIENT_TEST_DATABASE_URL`...,
    else POSTGRES_ADMIN_URL's server, which `make test` sets)."""
    server = make_url(
        on_our_driver(os.environ.get("POSTGRES_ADMIN_URL") or "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    default = server.set(database=f"{service.name}s_test").render_as_string(hide_password=False)
    admin_url = on_our_driver(os.environ.get(f"{service.name.upper()}_TEST_DATABASE_URL", default))
    return DatabaseRoles.of(admin_url, service.name, service.runtime_role)


@pytest.fixture
def settings_fields() -> dict[str, Any]:
    """Settings a service's tests need beyond the database's and the token issuer's."""
    return {}


@pytest.fixture(scope="session")
def auth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth")


@pytest.fixture
def settings(
    service: Service[Any], database: DatabaseRoles, auth_dir: Path, settings_fields: dict[str, Any]
) -> ServiceSettings:
    """The service's settings for the test database, migrated afresh on first use in the run."""
    if service.name not in _SETTINGS:
        database.migrate_fresh(service.migrations)
        _SETTINGS[service.name] = service.settings(**database.settings_fields(auth_dir), **settings_fields)
    return _SETTINGS[service.name]


@pytest.fixture
def token(auth_dir: Path) -> Callable[..., str]:
    """`token(scope=..., patient=..., subject=...)`: a signed token; every scope by default."""
    return lambda **claims: mint(auth_dir, **claims)


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """Counts the hot routes' exchanges with PostgreSQL; ask for it before `client`, which starts the app."""
    return RoundTrips().install(monkeypatch.setattr)


@pytest.fixture
def app_overrides() -> dict[Callable[..., Any], Callable[..., Any]]:
    """FastAPI dependency overrides for the app under test."""
    return {}


@pytest.fixture
def client(
    service: Service[Any],
    settings: ServiceSettings,
    database: DatabaseRoles,
    app_overrides: dict[Callable[..., Any], Callable[..., Any]],
    token: Callable[..., str],
) -> Iterator[TestClient]:
    """The API, called with a clinician's token that has every scope; the database emptied after."""
    app = create_app(service, settings)
    app.dependency_overrides.update(app_overrides)
    with TestClient(app, headers={"Authorization": f"Bearer {token()}"}) as client:
        yield client
    truncate_all(database.admin_url)


def served(client: TestClient) -> FastAPI:
    """The app behind a test client, typed as the FastAPI app it is."""
    app = client.app
    assert isinstance(app, FastAPI)
    return app


@pytest.fixture
def stored(database: DatabaseRoles) -> Callable[[str], int]:
    """How many rows a table of the test database holds: bad input must leave it unchanged."""
    return lambda table: count_rows(database.admin_url, table)


@pytest.fixture
def consumer(service: Service[Any], settings: ServiceSettings, client: TestClient) -> Consumer:
    """The service's consumer, applying events straight to the test database (no broker)."""
    return Consumer(
        session_factory=served(client).state.session_factory,
        tables=service.tables,
        queue=service.queue,
        batch=lambda session: service.batch(session, settings),
        amqp_url=settings.amqp_url,
    )


@pytest.fixture
def outbox(service: Service[Any], client: TestClient) -> Callable[[], list[dict[str, Any]]]:
    """The events written so far, oldest first, as consumers would receive them."""
    return lambda: outbox_events(served(client).state.engine, service.tables.outbox)


@pytest.fixture
def drop_app_connections(database: DatabaseRoles, settings: ServiceSettings) -> Callable[[], int]:
    """Terminate the app's PostgreSQL connections, as a server restart would; how many it had."""

    def drop() -> int:
        engine = create_engine(database.admin_url)
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE usename = :role AND datname = current_database()"
                        ),
                        {"role": make_url(settings.database_url).username},
                    ).scalar_one()
                )
        finally:
            engine.dispose()

    return drop
