"""Patients as FHIR R4 `Patient` resources, and back (doc/fhir.md has the mapping table).

A FHIR Patient is made into a `PatientCreate`, so it meets exactly the rules of the JSON API;
the errors name the FHIR element at fault.
"""

import uuid
from typing import Any

from fhir.resources.R4B.patient import Patient as FhirPatient
from pydantic import ValidationError
from sqlalchemy import Select, exists, false, or_, select, tuple_
from sqlalchemy.orm import Session

from painkiller_common import fhir
from painkiller_common.errors import Invalid, NotFound
from painkiller_common.fhir.vitals import UCUM
from painkiller_common.http.pagination import encode_cursor
from patient_service.models import EVENT_TABLES, Patient
from patient_service.patients.schemas import PatientCreate

AGE_EXTENSION = "https://painkiller.example/fhir/StructureDefinition/patient-age"
MRN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
# Where each field of the JSON API comes from in a FHIR Patient, for the errors.
ELEMENTS = {
    "mrn": "Patient.identifier",
    "first_name": "Patient.name[0].given",
    "last_name": "Patient.name[0].family",
    "age": "Patient.extension",
    "birth_date": "Patient.birthDate",
    "sex": "Patient.gender",
}


def to_fhir(patient: Patient, mrn_system: str) -> FhirPatient:
    data: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.id),
        "meta": {"versionId": str(patient.version), "lastUpdated": patient.updated_at.isoformat()},
        "name": [{"use": "official", "family": patient.last_name, "given": [patient.first_name]}],
        "gender": patient.sex,
    }
    if patient.mrn:
        data["identifier"] = [{"use": "usual", "type": MRN_TYPE, "system": mrn_system, "value": patient.mrn}]
    if patient.birth_date:
        data["birthDate"] = patient.birth_date.isoformat()
    elif patient.age is not None:  # only the age is known: FHIR has no element for it
        age = {"value": patient.age, "unit": "a", "system": UCUM, "code": "a"}
        data["extension"] = [{"url": AGE_EXTENSION, "valueAge": age}]
    return FhirPatient.model_validate(data)


def to_create(resource: FhirPatient, mrn_system: str) -> PatientCreate:
    """The JSON API's new patient from a FHIR Patient; 422 naming the FHIR element at fault."""
    fields: dict[str, Any] = {"sex": resource.gender or "unknown"}
    if resource.name:
        name = next((n for n in resource.name if n.use == "official"), resource.name[0])
        fields["first_name"] = " ".join(given for given in name.given or [] if given) or None
        fields["last_name"] = name.family
    for identifier in resource.identifier or []:
        if identifier.system != mrn_system:
            raise Invalid((["Patient.identifier"], f"only the hospital's MRN ({mrn_system}) is stored"))
        fields["mrn"] = identifier.value
    if resource.birthDate is not None:
        fields["birth_date"] = resource.birthDate
    for extension in resource.extension or []:
        if extension.url == AGE_EXTENSION and extension.valueAge is not None:
            fields["age"] = extension.valueAge.value
    try:
        return PatientCreate.model_validate(fields)
    except ValidationError as exc:
        raise Invalid(*[([_element(err)], err["msg"]) for err in exc.errors()]) from None


def _element(error: Any) -> str:
    field = (error.get("ctx") or {}).get("field") or (error["loc"][0] if error["loc"] else "")
    return ELEMENTS.get(str(field), "Patient")


def key_of(patient_id: str) -> uuid.UUID:
    """The id in a FHIR reference or URL as a patient's key; 404 if it cannot be one."""
    try:
        return uuid.UUID(patient_id)
    except ValueError:
        raise NotFound(f"Patient {patient_id} does not exist.") from None


def find(session: Session, patient_id: uuid.UUID) -> Patient:
    """The patient; 410 if the audit trail records its deletion, 404 if it never existed."""
    patient = session.get(Patient, patient_id)
    if patient is not None:
        return patient
    if session.scalar(select(deleted(patient_id))):
        raise fhir.Gone(f"Patient {patient_id} was deleted.")
    raise NotFound(f"Patient {patient_id} does not exist.")


def deleted(patient_id: uuid.UUID) -> Any:
    """Whether a deletion of this patient was done: the audit trail is append-only and never pruned."""
    audit = EVENT_TABLES.audit_events
    return exists().where(
        audit.c.patient_id == patient_id,
        audit.c.resource_type == "Patient",
        audit.c.action == "delete",
        audit.c.status == 204,
    )


def search(
    session: Session, query: fhir.Search, mrn_system: str, only: uuid.UUID | None
) -> tuple[list[Patient], str | None]:
    """A page of patients in registration order, and the cursor of the next one."""
    stmt = select(Patient).order_by(Patient.created_at, Patient.id).limit(query.count + 1)
    stmt = _filtered(stmt, query, mrn_system)
    if only is not None:  # a patient/ token finds its own patient or nothing
        stmt = stmt.where(Patient.id == only)
    if position := query.position():
        stmt = stmt.where(tuple_(Patient.created_at, Patient.id) > position[:2])
    rows = list(session.scalars(stmt).all())
    more = len(rows) > query.count
    rows = rows[: query.count]
    return rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more else None


def _filtered(stmt: Select[Patient], query: fhir.Search, mrn_system: str) -> Select[Patient]:
    for value in query.values("identifier"):
        system, _, mrn = value.rpartition("|") if "|" in value else (mrn_system, "", value)
        stmt = stmt.where(Patient.mrn == mrn) if system in (mrn_system, "") else stmt.where(false())
    for value in query.values("name"):
        starts = _escape(value) + "%"  # ILIKE: the trigram indexes of the name search serve it
        stmt = stmt.where(or_(Patient.first_name.ilike(starts), Patient.last_name.ilike(starts)))
    ranges = [fhir.date_range("birthdate", value) for value in query.values("birthdate")]
    low, high = fhir.day_bounds(ranges)
    stmt = stmt.where(Patient.birth_date >= low) if low else stmt
    stmt = stmt.where(Patient.birth_date < high) if high else stmt
    return stmt


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
