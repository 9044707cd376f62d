"""What the patient service publishes, and how it applies the measurement events it consumes."""

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from painkiller_common.consumer import AfterBatch, Handler
from painkiller_common.contracts import (
    VITALS,
    Event,
    MeasurementDeleted,
    MeasurementRecorded,
)
from painkiller_common.outbox import emit
from patient_service.assessment import reassess
from patient_service.config import Settings
from patient_service.models import EVENT_TABLES, LOCK_PATIENT, Patient, VitalReading
from patient_service.vitals import merge_reading, recompute


def publish(session: Session, event: Event) -> None:
    emit(session, EVENT_TABLES.outbox, [event])


def to_reassess(session: Session) -> set[uuid.UUID]:
    """Patients whose readings this transaction changed: reassessed once, after the batch."""
    return session.info.setdefault("reassess", set())


def on_measurement_recorded(session: Session, event: MeasurementRecorded) -> None:
    reading = event.payload
    patient = session.get(Patient, reading.patient_id, with_for_update=LOCK_PATIENT)
    if patient is None:  # deleted since: nothing of theirs is kept
        return
    kept = session.execute(
        insert(VitalReading)
        .values(
            measurement_id=reading.id,
            patient_id=reading.patient_id,
            measured_at=reading.measured_at,
            **{field: getattr(reading, field) for field in VITALS},
        )
        .on_conflict_do_nothing()  # already seen, or deleted before it arrived (a tombstone)
        .returning(VitalReading.measurement_id)
    ).first()
    if kept is not None:
        patient.latest_vitals = merge_reading(patient.latest_vitals, reading)
        to_reassess(session).add(patient.id)


def on_measurement_deleted(session: Session, event: MeasurementDeleted) -> None:
    ref = event.payload
    patient = session.get(Patient, ref.patient_id, with_for_update=LOCK_PATIENT)
    if patient is None:
        return
    session.execute(
        insert(VitalReading)
        .values(measurement_id=ref.id, patient_id=ref.patient_id, deleted=True)
        .on_conflict_do_update(index_elements=[VitalReading.measurement_id], set_={"deleted": True})
    )
    patient.latest_vitals = recompute(session, patient.id)
    to_reassess(session).add(patient.id)


HANDLERS: dict[str, Handler] = {
    "measurement.recorded": on_measurement_recorded,  # type: ignore[dict-item]
    "measurement.deleted": on_measurement_deleted,  # type: ignore[dict-item]
}


def reassess_after(settings: Settings) -> AfterBatch:
    """After a batch of measurement events: one risk assessment per patient they touched."""

    def after_batch(session: Session) -> None:
        for patient_id in sorted(session.info.pop("reassess", set())):
            patient = session.get(Patient, patient_id, with_for_update=LOCK_PATIENT)
            if patient is not None:
                reassess(session, patient, settings)

    return after_batch
