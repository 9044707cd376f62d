"""How the patient service applies the measurement events it consumes."""

import uuid
from functools import singledispatchmethod

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from painkiller_common.contracts import (
    VITALS,
    Event,
    MeasurementDeleted,
    MeasurementRecord,
    MeasurementRecorded,
)
from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.events.consumer import Batch
from patient_service.config import Settings
from patient_service.models import LOCK_PATIENT, Patient, VitalReading
from patient_service.risk.assessment import reassess_many
from patient_service.risk.latest_vitals import recompute


class MeasurementEvents(Batch):
    """The measurement events of one batch: deletions applied as they come, new readings stored
    together at the end, then one risk assessment per patient the batch touched."""

    def __init__(self, session: UnitOfWork, settings: Settings) -> None:
        super().__init__(session)
        self.settings = settings
        self.readings: list[MeasurementRecord] = []
        self.touched: set[uuid.UUID] = set()

    @singledispatchmethod
    def apply(self, event: Event) -> None:
        """Another event: nothing to apply."""

    @apply.register
    def recorded(self, event: MeasurementRecorded) -> None:
        self.readings.append(event.payload)  # stored with the batch's others, in one statement

    @apply.register
    def deleted(self, event: MeasurementDeleted) -> None:
        ref = event.payload
        patient = self.session.get(Patient, ref.patient_id, with_for_update=LOCK_PATIENT)
        if patient is None:
            return
        self.session.execute(
            insert(VitalReading)
            .values(measurement_id=ref.id, patient_id=ref.patient_id, deleted=True)
            .on_conflict_do_update(index_elements=[VitalReading.measurement_id], set_={"deleted": True})
        )
        patient.latest_vitals = recompute(self.session, patient.id)
        self.touched.add(patient.id)

    def close(self) -> None:
        new_readings = store_readings(self.session, self.readings)
        touched = sorted(new_readings.keys() | self.touched)
        if touched:
            self.session.flush()  # a deletion's recomputed latest_vitals, before they are read
            reassess_many(self.session, touched, new_readings, self.settings)


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
