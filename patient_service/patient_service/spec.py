"""The patient service, as the shared app, command line and test fixtures take it."""

from pathlib import Path

from painkiller_common.events.topology import MEASUREMENT_EVENTS_FOR_PATIENTS
from painkiller_common.service_spec import Service
from patient_service.config import Settings
from patient_service.fhir import api as fhir_api
from patient_service.models import EVENT_TABLES, RUNTIME_ROLE
from patient_service.patients.api import PREFIX, router
from patient_service.risk.measurement_events import MeasurementEvents
from patient_service.webhooks import api as webhooks_api
from patient_service.webhooks import dispatcher

SPEC: Service[Settings] = Service(
    name="patient",
    title="Painkiller patient service",
    description="Patients of the ward. Errors are RFC 9457 `application/problem+json`.",
    docs_prefix=PREFIX,
    health_prefixes=[PREFIX],
    settings=Settings,
    routers=lambda: [webhooks_api.router, router, fhir_api.router],
    tables=EVENT_TABLES,
    queue=MEASUREMENT_EVENTS_FOR_PATIENTS,
    runtime_role=RUNTIME_ROLE,
    migrations=Path(__file__).parent / "migrations",
    batch=MeasurementEvents,
    extra_commands={"dispatcher": dispatcher.run},
)
