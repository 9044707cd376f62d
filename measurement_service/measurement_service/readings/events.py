"""The measurement service's events: what it publishes, and how it applies the patient events it consumes."""

import uuid
from functools import singledispatchmethod

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert

from measurement_service.models import EVENT_TABLES, HL7Message, KnownPatient, Measurement
from painkiller_common.contracts import (
    Event,
    MeasurementDeleted,
    MeasurementRef,
    PatientCreated,
    PatientDeleted,
    PatientUpdated,
)
from painkiller_common.db.idempotency import erase_answers
from painkiller_common.events.consumer import Batch

# A reading is recorded once (version 1) and deleted once (version 2); it is never changed.
RECORDED_VERSION, DELETED_VERSION = 1, 2


def deleted(measurement_id: uuid.UUID, patient_id: uuid.UUID) -> MeasurementDeleted:
    return MeasurementDeleted(
        aggregate_id=measurement_id,
        aggregate_version=DELETED_VERSION,
        payload=MeasurementRef(id=measurement_id, patient_id=patient_id),
    )


class PatientEvents(Batch):
    """The patient events of one batch: which patients exist, and the erasure of a deleted one's readings."""

    @singledispatchmethod
    def apply(self, event: Event) -> None:
        """Another event: nothing to apply."""

    @apply.register
    def known(self, event: PatientCreated | PatientUpdated) -> None:
        """The patient exists, unless a newer event said otherwise."""
        stmt = insert(KnownPatient).values(patient_id=event.aggregate_id, version=event.aggregate_version)
        self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[KnownPatient.patient_id],
                set_={"version": stmt.excluded.version},
                where=(KnownPatient.version < stmt.excluded.version) & ~KnownPatient.deleted,
            )
        )
        if isinstance(event, PatientUpdated):  # the MRN may have changed: the HL7 listener asks again
            self.session.execute(
                update(KnownPatient).where(KnownPatient.patient_id == event.aggregate_id).values(mrn=None)
            )

    @apply.register
    def deleted(self, event: PatientDeleted) -> None:
        """Right to erasure: the patient's readings go, each with its `measurement.deleted`."""
        patient_id = event.aggregate_id
        stmt = insert(KnownPatient).values(patient_id=patient_id, version=event.aggregate_version, deleted=True)
        self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[KnownPatient.patient_id],
                set_={"deleted": True, "version": stmt.excluded.version, "mrn": None},
            )
        )
        erase_answers(self.session, EVENT_TABLES.idempotency_keys, patient_id)
        self.session.execute(delete(HL7Message).where(HL7Message.patient_id == patient_id))  # raw messages too
        erased = self.session.execute(
            delete(Measurement).where(Measurement.patient_id == patient_id).returning(Measurement.id)
        ).scalars()
        self.session.record(*(deleted(measurement_id, patient_id) for measurement_id in erased))
