"""How the patient service applies the measurement events it consumes."""

import uuid
from functools import singledispatchmethod

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
from painkiller_common.db.statements import Statement, rows_json
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


_COLUMNS = ", ".join(["measurement_id", "patient_id", "measured_at", *VITALS])
# Readings of patients that still exist; a reading seen before, or deleted before it arrived (its
# tombstone), is not stored again. Which were stored comes back.
_STORE = Statement.compile(
    f"INSERT INTO vital_readings ({_COLUMNS})"
    f" SELECT {_COLUMNS} FROM json_populate_recordset(NULL::vital_readings, :readings::json) AS r"
    " WHERE EXISTS (SELECT FROM patients p WHERE p.id = r.patient_id)"
    " ON CONFLICT DO NOTHING RETURNING measurement_id"
)


def store_readings(session: Session, readings: list[MeasurementRecord]) -> dict[uuid.UUID, list[MeasurementRecord]]:
    """Store the batch's new readings of patients that still exist, one statement; the stored ones
    by patient."""
    if not readings:
        return {}
    rows = [
        {"measurement_id": r.id, "patient_id": r.patient_id, "measured_at": r.measured_at}
        | {field: getattr(r, field) for field in VITALS}
        for r in readings
    ]
    stored = {row["measurement_id"] for row in _STORE.all_sync(session, {"readings": rows_json(rows)})}
    by_patient: dict[uuid.UUID, list[MeasurementRecord]] = {}
    for reading in readings:
        if reading.id in stored:
            by_patient.setdefault(reading.patient_id, []).append(reading)
    return by_patient
