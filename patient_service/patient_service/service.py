"""Patient use cases as plain functions; the caller's session owns the transaction."""

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from painkiller_common.pagination import Page, clamp_limit, decode_cursor, page_of
from painkiller_common.problems import Conflict, InvalidInput, NotFound
from patient_service.models import Patient
from patient_service.schemas import PatientCreate, PatientFilter, PatientOut, PatientUpdate, today, years_between


def to_out(patient: Patient) -> PatientOut:
    age = years_between(patient.birth_date, today()) if patient.birth_date else patient.age
    return PatientOut.model_validate(
        {**{c: getattr(patient, c) for c in PatientOut.model_fields if c != "age"}, "age": age}
    )


def create_patient(*, session: Session, data: PatientCreate) -> Patient:
    if data.age is None and data.birth_date is None:
        raise InvalidInput((["body", "age"], "one of age or birth_date is required"))
    _check_age_matches(data.age, data.birth_date)
    now = datetime.now(UTC)
    patient = Patient(id=uuid.uuid4(), created_at=now, updated_at=now, **data.model_dump())
    if patient.birth_date is not None:
        patient.age = None
    session.add(patient)
    _flush_unique(session, patient.mrn)
    return patient


def get_patient(*, session: Session, patient_id: uuid.UUID) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"Patient {patient_id} does not exist.")
    return patient


def update_patient(*, session: Session, patient_id: uuid.UUID, data: PatientUpdate) -> Patient:
    patient = get_patient(session=session, patient_id=patient_id)
    _check_age_matches(data.age, data.birth_date)
    changes = data.model_dump(exclude_unset=True)
    _apply_age_rules(patient, changes)
    for field, value in changes.items():
        setattr(patient, field, value)
    patient.updated_at = datetime.now(UTC)
    _flush_unique(session, patient.mrn)
    return patient


def _check_age_matches(age: int | None, birth_date: date | None) -> None:
    if age is not None and birth_date is not None and years_between(birth_date, today()) != age:
        raise InvalidInput((["body", "age"], "does not match birth_date; send one of them"))


def _apply_age_rules(patient: Patient, changes: dict[str, object]) -> None:
    """Age and birth date describe one fact: setting one replaces the other."""
    if changes.get("birth_date") is not None:
        changes["age"] = None
    elif "age" in changes:
        changes["birth_date"] = None
    elif "birth_date" in changes:  # birth date cleared without an age: keep the age it gave
        changes["age"] = to_out(patient).age


def delete_patient(*, session: Session, patient_id: uuid.UUID) -> None:
    session.delete(get_patient(session=session, patient_id=patient_id))
    session.flush()


def list_patients(*, session: Session, query: PatientFilter) -> Page[PatientOut]:
    """Patients in creation order (a key that carries no patient data into URLs and logs)."""
    limit = clamp_limit(query.limit)
    stmt = select(Patient).order_by(Patient.created_at, Patient.id).limit(limit + 1)
    if query.name:
        pattern = "%" + query.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Patient.first_name.ilike(pattern), Patient.last_name.ilike(pattern)))
    if query.mrn:
        stmt = stmt.where(Patient.mrn == query.mrn)
    if query.cursor:
        after = decode_cursor(query.cursor, loc=["cursor"])
        stmt = stmt.where(tuple_(Patient.created_at, Patient.id) > after)
    rows = session.scalars(stmt).all()
    return page_of(rows, limit, key=lambda p: (p.created_at, p.id), out=to_out)


def _flush_unique(session: Session, mrn: str | None) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        if "mrn" in str(exc.orig):
            raise Conflict(f"A patient with MRN {mrn!r} already exists.") from None
        raise
