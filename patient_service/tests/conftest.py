"""What the patient service's tests add to the shared fixtures (painkiller_testing.fixtures)."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from painkiller_common.service_spec import Service
from patient_service.config import WebhookSettings
from patient_service.spec import SPEC


@pytest.fixture(scope="session")
def service() -> Service[Any]:
    return SPEC


@pytest.fixture
def settings_fields() -> dict[str, Any]:
    # Receivers on loopback, as `make up` allows them (none is allowed by default).
    return {
        "event_producer": "painkiller_measurement",
        "webhooks": WebhookSettings(allowed_hosts="127.0.0.1 localhost"),
    }


@pytest.fixture
def make_patient(client: TestClient) -> Callable[..., dict]:
    """Create a patient through the API; keyword arguments override the defaults."""

    def make(**fields: object) -> dict:
        body = {"first_name": "Ada", "last_name": "Lovelace", "age": 36, **fields}
        response = client.post("/api/v1/patient", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return make
