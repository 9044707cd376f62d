"""What the patient service publishes, and how it applies the measurement events it consumes."""

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from painkiller_common.consumer import Handler
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


def on_measurement_recorded(session: Session, event: MeasurementRecorded, settings: Settings) -> None:
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
        reassess(session, patient, settings)


def on_measurement_deleted(session: Session, event: MeasurementDeleted, settings: Settings) -> None:
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
    reassess(session, patient, settings)


def handlers(settings: Settings) -> dict[str, Handler]:
    """The consumer's handlers; each reading changes latest vitals and the risk assessment."""
    return {
        "measurement.recorded": lambda session, event: on_measurement_recorded(session, event, settings),  # type: ignore[arg-type]
        "measurement.deleted": lambda session, event: on_measurement_deleted(session, event, settings),  # type: ignore[arg-type]
    }
