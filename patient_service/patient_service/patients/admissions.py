"""Admissions, transfers and discharges from the patient administration system: what an HL7 v2
ADT message says of a patient, as the measurement service's MLLP listener read it (doc/hl7.md).

A01 (admit) and A04 (register) create the patient if no patient has the MRN, else update them,
and put them in the bed named (no longer discharged); A08 updates what it sends; A02 moves a
known patient to another bed; A03 discharges one: no bed, `discharged_at` set. Events and the
audit trail are the API's own: the same `patient.created`/`patient.updated`.
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from painkiller_common.contracts import Location, Sex
from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.errors import Invalid, NotFound
from painkiller_common.fields import Text
from patient_service.models import Patient
from patient_service.patients import service
from patient_service.patients.schemas import BirthDate, Mrn, Name, PatientCreate

Event = Literal["A01", "A02", "A03", "A04", "A08"]
ADMITTING = ("A01", "A04")


class Admission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: Event
    mrn: Mrn
    first_name: Name | None = None
    last_name: Name | None = None
    birth_date: BirthDate | None = None
    sex: Sex | None = None
    location: Location | None = None
    at: datetime | None = Field(default=None, description="When it happened (a discharge's time); default: now.")
    sender: Annotated[str, Text(255)] = Field(description="MSH-3@MSH-4: the audit row's actor.")


class Admitted(BaseModel):
    patient_id: uuid.UUID
    created: bool


def admit(session: UnitOfWork, data: Admission) -> tuple[Patient, bool]:
    """Apply the message; the patient, and whether it was created."""
    now = datetime.now(UTC)
    patient = session.scalar(select(Patient).where(Patient.mrn == data.mrn).with_for_update(of=Patient))
    if patient is None:
        if data.event not in ("A01", "A04", "A08"):
            raise NotFound(f"No patient has this MRN: an {data.event} needs the patient admitted first.")
        return _register(session, data, now), True
    service.change(session, patient, _changes(patient, data, now), now)
    return patient, False


def _register(session: UnitOfWork, data: Admission, now: datetime) -> Patient:
    missing = [name for name in ("first_name", "last_name", "birth_date") if getattr(data, name) is None]
    if missing:
        raise Invalid(*(([name], "required to register a patient") for name in missing))
    fields = data.model_dump(include={"mrn", "first_name", "last_name", "birth_date", "location"})
    patient = service.add(session, PatientCreate(**fields, sex=data.sex or "unknown"), now)
    session.flush()
    return patient


def _changes(patient: Patient, data: Admission, now: datetime) -> dict[str, Any]:
    """What the message changes: the demographics it sends, and the bed as its event says."""
    sent = data.model_dump(include={"first_name", "last_name", "birth_date", "sex"}, exclude_none=True)
    if "birth_date" in sent:
        sent["age"] = None  # a birth date replaces an age (service._apply_age_rules)
    location = data.location.model_dump() if data.location else None
    if data.event in ADMITTING or (data.event == "A08" and location):
        return {**sent, "location": location, "discharged_at": None}
    if data.event == "A02":
        if location is None:
            raise Invalid((["location"], "a transfer names the new bed (PV1-3)"))
        return {**sent, "location": location, "discharged_at": None}
    if data.event == "A03":
        return {**sent, "location": None, "discharged_at": data.at or now}
    return sent
