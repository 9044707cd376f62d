"""FHIR R4 routes the patient service owns (doc/fhir.md): the CapabilityStatement, `Patient`, and
`Observation/$lastn`, served from the `latest_vitals` each patient holds (no scan of readings).

Same tokens, scopes and audit trail as the JSON API; errors are OperationOutcome resources.
"""

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient

from painkiller_common import fhir
from painkiller_common.db import SessionDep
from painkiller_common.fhir.capability import LASTN, capability_statement, search_parameters
from painkiller_common.fhir.vitals import Vital, observation, selected
from painkiller_common.http.bodies import JsonBody
from patient_service.config import Settings
from patient_service.fhir import patients as fhir_patients
from patient_service.models import Patient
from patient_service.patients import service
from patient_service.permissions import CreatePatient, ReadPatient, SearchObservations, SearchPatients

router = APIRouter(prefix=fhir.PREFIX, include_in_schema=False)

PATIENT_SEARCH = search_parameters("Patient")


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _base(request: Request) -> str:
    return fhir.base_url(request, _settings(request).fhir_base_url)


@router.get("/metadata", name="fhir_metadata")
async def metadata() -> Response:
    """What this FHIR server supports; public, as SMART clients read it before they log in."""
    return fhir.resource_response(capability_statement())


@router.get("/Patient/{patient_id}", name="fhir_patient_read")
def read_patient(patient_id: str, request: Request, session: SessionDep, access: ReadPatient) -> Response:
    key = fhir_patients.key_of(patient_id)
    access.reach(key)  # before the lookup: another patient's record is not even "gone"
    patient = fhir_patients.find(session, key)
    access.record(session, 200, [(patient.id, patient.id)])
    resource = fhir_patients.to_fhir(patient, _settings(request).fhir_mrn_system)
    return fhir.resource_response(resource, headers={"ETag": f'W/"{patient.version}"'})


@router.get("/Patient", name="fhir_patient_search")
def search_patients(request: Request, session: SessionDep, access: SearchPatients) -> Response:
    query = fhir.search(request, PATIENT_SEARCH)
    system = _settings(request).fhir_mrn_system
    patients, next_cursor = fhir_patients.search(session, query, system, access.only_patient)
    access.record(session, 200, [(patient.id, patient.id) for patient in patients])
    resources = [fhir_patients.to_fhir(patient, system) for patient in patients]
    return fhir.resource_response(fhir.searchset(_base(request), "Patient", query, resources, next_cursor))


@router.post("/Patient", name="fhir_patient_create", dependencies=JsonBody, status_code=status.HTTP_201_CREATED)
def create_patient(request: Request, body: fhir.RawBody, session: SessionDep, access: CreatePatient) -> Response:
    system = _settings(request).fhir_mrn_system
    resource = fhir.parse_resource(FhirPatient, body)
    assert isinstance(resource, FhirPatient)  # parse_resource returns the model it is given
    patient = service.create_patient(session=session, data=fhir_patients.to_create(resource, system))
    access.record(session, 201, [(patient.id, patient.id)])
    location = f"{_base(request)}/Patient/{patient.id}/_history/{patient.version}"
    created = fhir_patients.to_fhir(patient, system)
    return fhir.resource_response(created, 201, {"Location": location, "ETag": f'W/"{patient.version}"'})


@router.get("/Observation/$lastn", name="fhir_observation_lastn")
def last_observations(request: Request, session: SessionDep, access: SearchObservations) -> Response:
    """The newest Observation of each vital of one patient, from `latest_vitals`."""
    query = fhir.search(request, LASTN)
    patients = query.values("patient") + query.values("subject")
    if len(patients) != 1:
        raise fhir.BadRequest("$lastn needs one patient (patient or subject).")
    if any(value != "1" for value in query.values("max")):
        raise fhir.BadRequest("Only max=1 is served: the newest value of each vital.")
    key = fhir_patients.key_of(fhir.reference_id("patient", patients[0], "Patient"))
    access.reach(key)
    patient = fhir_patients.find(session, key)
    wanted = selected(query.values("category"), query.values("code"))
    resources = [found for vital in wanted if (found := _latest(vital, patient)) is not None]
    access.record(session, 200, [(patient.id, patient.id)])
    return fhir.resource_response(fhir.searchset(_base(request), "Observation/$lastn", query, resources, None))


def _latest(vital: Vital, patient: Patient) -> Observation | None:
    """The vital's newest Observation from `latest_vitals`; None unless all its values are there
    and come from one reading (a panel's two pressures)."""
    entries = [patient.latest_vitals.get(quantity.field) for quantity in vital.quantities]
    if not all(entries) or len({str(entry["measurement_id"]) for entry in entries if entry}) != 1:
        return None
    first = patient.latest_vitals[vital.quantities[0].field]
    values = {
        quantity.field: entry["value"] for quantity, entry in zip(vital.quantities, entries, strict=True) if entry
    }
    at = datetime.fromisoformat(str(first["measured_at"]).replace("Z", "+00:00"))
    return observation(vital, values, measurement_id=uuid.UUID(str(first["measurement_id"])), patient_id=patient.id,
                       at=at)  # fmt: skip
