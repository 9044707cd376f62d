"""The measurement service, as the shared app, command line and test fixtures take it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI

from measurement_service.config import Settings
from measurement_service.fhir import api as fhir_api
from measurement_service.hl7 import api as hl7_api
from measurement_service.hl7 import listener as hl7_listener
from measurement_service.models import EVENT_TABLES, RUNTIME_ROLE
from measurement_service.readings.api import ALIAS_PREFIX, PREFIX, measures_router, patient_router
from measurement_service.readings.events import PatientEvents
from measurement_service.readings.patients import PatientDirectory
from painkiller_common.events.topology import PATIENT_EVENTS_FOR_MEASUREMENTS
from painkiller_common.service_spec import Service


@asynccontextmanager
async def patient_directory(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The client that asks the patient service whether a patient exists (patients.py)."""
    app.state.patient_directory = PatientDirectory(
        settings.patient_service_url, settings.patient_service_timeout_s, settings.patient_service_token_file
    )
    try:
        yield
    finally:
        await app.state.patient_directory.close()


def routers() -> list[APIRouter]:
    """A patient's readings, /api/v1/measures (also served under the alias), the held HL7 messages
    and FHIR's Observations."""
    return [patient_router, hl7_api.router, measures_router, fhir_api.router]


SPEC: Service[Settings] = Service(
    name="measurement",
    title="Painkiller measurement service",
    description=(
        "Vital-sign readings. Every `/api/v1/measures` route is also served under "
        "`/api/v1/measurements`. Errors are RFC 9457 `application/problem+json`."
    ),
    docs_prefix=PREFIX,
    health_prefixes=[PREFIX],
    settings=Settings,
    routers=routers,
    tables=EVENT_TABLES,
    queue=PATIENT_EVENTS_FOR_MEASUREMENTS,
    runtime_role=RUNTIME_ROLE,
    migrations=Path(__file__).parent / "migrations",
    batch=lambda session, settings: PatientEvents(session),
    state=patient_directory,
    extra_commands={"hl7": hl7_listener.run},  # the MLLP listener (doc/hl7.md)
    aliases={ALIAS_PREFIX: PREFIX},
)
