"""What the measurement service publishes, and how it applies the patient events it consumes."""

import uuid

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from measurement_service.models import EVENT_TABLES, KnownPatient, Measurement
from painkiller_common.consumer import Handler
from painkiller_common.contracts import Event, MeasurementDeleted, MeasurementRef, PatientDeleted, PatientUpdated
from painkiller_common.idempotency import erase_answers
from painkiller_common.outbox import emit

# A reading is recorded once (version 1) and deleted once (version 2); it is never changed.
RECORDED_VERSION, DELETED_VERSION = 1, 2


def publish(session: Session, events: list[Event]) -> None:
    emit(session, EVENT_TABLES.outbox, events)


def deleted(measurement_id: uuid.UUID, patient_id: uuid.UUID) -> MeasurementDeleted:
    return MeasurementDeleted(
        aggregate_id=measurement_id,
        aggregate_version=DELETED_VERSION,
        payload=MeasurementRef(id=measurement_id, patient_id=patient_id),
    )


def on_patient_known(session: Session, event: PatientUpdated) -> None:
    """`patient.created` or `patient.updated`: the patient exists, unless a newer event said otherwise."""
    stmt = insert(KnownPatient).values(patient_id=event.aggregate_id, version=event.aggregate_version)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[KnownPatient.patient_id],
            set_={"version": stmt.excluded.version},
            where=(KnownPatient.version < stmt.excluded.version) & ~KnownPatient.deleted,
        )
    )


def on_patient_deleted(session: Session, event: PatientDeleted) -> None:
    """Right to erasure: the patient's readings go, each with its `measurement.deleted`."""
    stmt = insert(KnownPatient).values(patient_id=event.aggregate_id, version=event.aggregate_version, deleted=True)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[KnownPatient.patient_id], set_={"deleted": True, "version": stmt.excluded.version}
        )
    )
    erase_answers(session, EVENT_TABLES.idempotency_keys, event.aggregate_id)
    erased = session.execute(
        delete(Measurement).where(Measurement.patient_id == event.aggregate_id).returning(Measurement.id)
    ).scalars()
    publish(session, [deleted(measurement_id, event.aggregate_id) for measurement_id in erased])


# Each handler takes the event class its key names (the consumer dispatches on that key), a
# narrower parameter than Handler's `Event`: hence the ignores.
HANDLERS: dict[str, Handler] = {
    "patient.created": on_patient_known,  # type: ignore[dict-item]
    "patient.updated": on_patient_known,  # type: ignore[dict-item]
    "patient.deleted": on_patient_deleted,  # type: ignore[dict-item]
}
