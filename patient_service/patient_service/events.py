"""What the patient service publishes, and how it applies the measurement events it consumes."""

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from painkiller_common.consumer import AfterBatch, Handler
from painkiller_common.contracts import (
    VITALS,
    Event,
    MeasurementDeleted,
    MeasurementRecord,
    MeasurementRecorded,
)
from painkiller_common.outbox import emit
from patient_service.assessment import reassess_many
from patient_service.config import Settings
from patient_service.models import EVENT_TABLES, LOCK_PATIENT, Patient, VitalReading
from patient_service.vitals import recompute


def publish(session: Session, event: Event) -> None:
    emit(session, EVENT_TABLES.outbox, [event])


def to_reassess(session: Session) -> set[uuid.UUID]:
    """Patients whose readings this transaction changed: reassessed once, after the batch."""
    return session.info.setdefault("reassess", set())


def on_measurement_recorded(session: Session, event: MeasurementRecorded) -> None:
    # Kept for the end of the batch, where all its readings are stored in one statement.
    session.info.setdefault("readings", []).append(event.payload)


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


def store_readings(session: Session, readings: list[MeasurementRecord]) -> dict[uuid.UUID, list[MeasurementRecord]]:
    """Store the batch's new readings of patients that still exist, by patient.

    A reading seen before, or deleted before it arrived (its tombstone), is not stored again.
    """
    patient_ids = {r.patient_id for r in readings}
    existing = set(session.scalars(select(Patient.id).where(Patient.id.in_(patient_ids))))
    kept = [r for r in readings if r.patient_id in existing]  # deleted patients keep nothing
    if not kept:
        return {}
    rows = [
        {"measurement_id": r.id, "patient_id": r.patient_id, "measured_at": r.measured_at}
        | {field: getattr(r, field) for field in VITALS}
        for r in kept
    ]
    stored = set(
        session.scalars(insert(VitalReading).on_conflict_do_nothing().returning(VitalReading.measurement_id), rows)
    )
    by_patient: dict[uuid.UUID, list[MeasurementRecord]] = {}
    for reading in kept:
        if reading.id in stored:
            by_patient.setdefault(reading.patient_id, []).append(reading)
    return by_patient


# Each handler takes the event class its key names (the consumer dispatches on that key), a
# narrower parameter than Handler's `Event`: hence the ignores.
HANDLERS: dict[str, Handler] = {
    "measurement.recorded": on_measurement_recorded,  # type: ignore[dict-item]
    "measurement.deleted": on_measurement_deleted,  # type: ignore[dict-item]
}


def reassess_after(settings: Settings) -> AfterBatch:
    """After a batch of measurement events: one risk assessment per patient they touched."""

    def after_batch(session: Session) -> None:
        new_readings = store_readings(session, session.info.pop("readings", []))
        touched = sorted(new_readings.keys() | session.info.pop("reassess", set()))
        if touched:
            session.flush()  # a measurement.deleted's recomputed latest_vitals, before they are read
            reassess_many(session, touched, new_readings, settings)

    return after_batch
