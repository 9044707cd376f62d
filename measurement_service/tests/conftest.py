"""What the measurement service's tests add to the shared fixtures (painkiller_testing.fixtures):
a stand-in for the patient service, and patients and readings to test with."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from measurement_service.readings.api import get_directory
from measurement_service.spec import SPEC
from painkiller_common.errors import NotFound
from painkiller_common.service_spec import Service


class KnownPatients:
    """Stands in for the patient service, whose real answers the end-to-end suite checks."""

    def __init__(self) -> None:
        self.ids: set[uuid.UUID] = set()

    async def require(self, patient_id: uuid.UUID) -> None:
        if patient_id not in self.ids:
            raise NotFound(f"Patient {patient_id} does not exist.")


@pytest.fixture(scope="session")
def service() -> Service[Any]:
    return SPEC


@pytest.fixture
def settings_fields() -> dict[str, Any]:
    # Nothing listens on port 1: the real patient lookup fails fast where a test uses it.
    return {"event_producer": "painkiller_patient", "patient_service_url": "http://127.0.0.1:1"}


@pytest.fixture
def patients() -> KnownPatients:
    return KnownPatients()


@pytest.fixture
def app_overrides(patients: KnownPatients) -> dict[Callable[..., Any], Callable[..., Any]]:
    return {get_directory: lambda: patients}


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
