"""FHIR R4 routes the patient service owns (doc/fhir.md): the CapabilityStatement, `Patient`, and
`Observation/$lastn`, served from the `latest_vitals` each patient holds (no scan of readings).

Same tokens, scopes and audit trail as the JSON API; errors are OperationOutcome resources.
"""

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fhir.resources.R4B.patient import Patient as FhirPatient

from painkiller_common import fhir
from painkiller_common.access import USER_OR_SYSTEM, Access, requires
from painkiller_common.app import JsonBody
from painkiller_common.db import SessionDep
from painkiller_common.fhir_capability import LASTN, capability_statement, search_parameters
from painkiller_common.fhir_vitals import Vital, observation, selected
from patient_service import fhir_patients, service
from patient_service.config import Settings

router = APIRouter(prefix=fhir.PREFIX, include_in_schema=False)

CanCreate = Annotated[Access, Depends(requires("Patient", "c", contexts=USER_OR_SYSTEM))]
CanRead = Annotated[Access, Depends(requires("Patient", "r"))]
CanSearch = Annotated[Access, Depends(requires("Patient", "s"))]
CanSearchObservations = Annotated[Access, Depends(requires("Observation", "s"))]
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
def read_patient(patient_id: str, request: Request, session: SessionDep, access: CanRead) -> Response:
    key = fhir_patients.key_of(patient_id)
    access.reach(key)  # before the lookup: another patient's record is not even "gone"
    patient = fhir_patients.find(session, key)
    access.record(session, 200, [(patient.id, patient.id)])
    resource = fhir_patients.to_fhir(patient, _settings(request).fhir_mrn_system)
    return fhir.resource_response(resource, headers={"ETag": f'W/"{patient.version}"'})


@router.get("/Patient", name="fhir_patient_search")
def search_patients(request: Request, session: SessionDep, access: CanSearch) -> Response:
    query = fhir.search(request, PATIENT_SEARCH)
    system = _settings(request).fhir_mrn_system
    patients, next_cursor = fhir_patients.search(session, query, system, access.only_patient)
    access.record(session, 200, [(patient.id, patient.id) for patient in patients])
    resources = [fhir_patients.to_fhir(patient, system) for patient in patients]
    return fhir.resource_response(fhir.searchset(_base(request), "Patient", query, resources, next_cursor))


@router.post("/Patient", name="fhir_patient_create", dependencies=JsonBody, status_code=status.HTTP_201_CREATED)
def create_patient(request: Request, body: fhir.RawBody, session: SessionDep, access: CanCreate) -> Response:
    system = _settings(request).fhir_mrn_system
    resource = fhir.parse_resource(FhirPatient, body)
    assert isinstance(resource, FhirPatient)  # parse_resource returns the model it is given
    patient = service.create_patient(session=session, data=fhir_patients.to_create(resource, system))
    access.record(session, 201, [(patient.id, patient.id)])
    location = f"{_base(request)}/Patient/{patient.id}/_history/{patient.version}"
    created = fhir_patients.to_fhir(patient, system)
    return fhir.resource_response(created, 201, {"Location": location, "ETag": f'W/"{patient.version}"'})


@router.get("/Observation/$lastn", name="fhir_observation_lastn")
def last_observations(request: Request, session: SessionDep, access: CanSearchObservations) -> Response:
    """The newest Observation of each vital of one patient, from `latest_vitals`."""
    query = fhir.search(request, frozenset(LASTN))
    patients = query.values("patient") + query.values("subject")
    if len(patients) != 1:
        raise fhir.BadRequest("$lastn needs one patient (patient or subject).")
    if any(value != "1" for value in query.values("max")):
        raise fhir.BadRequest("Only max=1 is served: the newest value of each vital.")
    key = fhir_patients.key_of(fhir.reference_id("patient", patients[0], "Patient"))
    access.reach(key)
    patient = fhir_patients.find(session, key)
    latest = patient.latest_vitals
    resources = [
        observation(vital, _values(vital, latest), measurement_id=_measurement(vital, latest),
                    patient_id=patient.id, at=_measured_at(vital, latest))
        for vital in selected(query.values("category"), query.values("code"))
        if _holds(vital, latest)
    ]  # fmt: skip
    access.record(session, 200, [(patient.id, patient.id)])
    return fhir.resource_response(fhir.searchset(_base(request), "Observation/$lastn", query, resources, None))


def _holds(vital: Vital, latest: dict[str, dict[str, object]]) -> bool:
    """Every value of the vital is known, from one reading (a panel's two pressures)."""
    entries = [latest.get(quantity.field) for quantity in vital.quantities]
    return all(entries) and len({str(entry["measurement_id"]) for entry in entries if entry}) == 1


def _values(vital: Vital, latest: dict[str, dict[str, object]]) -> dict[str, object]:
    return {quantity.field: latest[quantity.field]["value"] for quantity in vital.quantities}


def _measurement(vital: Vital, latest: dict[str, dict[str, object]]) -> uuid.UUID:
    return uuid.UUID(str(latest[vital.quantities[0].field]["measurement_id"]))


def _measured_at(vital: Vital, latest: dict[str, dict[str, object]]) -> datetime:
    return datetime.fromisoformat(str(latest[vital.quantities[0].field]["measured_at"]).replace("Z", "+00:00"))
