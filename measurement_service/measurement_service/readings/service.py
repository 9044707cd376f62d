"""Measurement use cases. The hot ones (record, list) are async (db/pg.py, doc/performance.md);
reading one by id and deleting it take the caller's SQLAlchemy session, which owns the transaction.
A write returns its `Answer`; the JSON API and FHIR each make their own response of it."""

import uuid
from datetime import UTC, datetime

from psycopg.errors import UniqueViolation

from measurement_service.models import EVENT_TABLES, Measurement
from measurement_service.readings import events, recording, statements
from measurement_service.readings.patients import PatientDirectory
from measurement_service.readings.schemas import (
    BatchIn,
    BatchItem,
    BatchOut,
    MeasurementBatchIn,
    MeasurementCreate,
    MeasurementOut,
    Reading,
)
from painkiller_common.contracts import VITALS
from painkiller_common.db import idempotency, pg
from painkiller_common.db.idempotency import Answer, Outcome, erase_answers
from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.db.pg import Connection, Pool
from painkiller_common.errors import Conflict, NotFound
from painkiller_common.security import audit
from painkiller_common.security.access import Access

READING_FIELDS = {"measured_at", *VITALS, "source"}


async def record_one(
    *,
    pool: Pool,
    directory: PatientDirectory,
    access: Access,
    patient_id: uuid.UUID,
    data: Reading,
    key: str | None,
    scope: str,
    location_prefix: str,
) -> Answer:
    """Store one reading, its event and audit row, and claim its Idempotency-Key: one statement."""
    access.reach(patient_id)
    record = recording.new_row(patient_id, data.model_dump(include=READING_FIELDS), datetime.now(UTC))
    body, location = MeasurementOut.model_construct(**record).model_dump_json(), f"{location_prefix}/{record['id']}"
    statement, extra = statements.RECORD_ONE, audit.shared_values(access.row(201))
    if key is not None:
        scope, fingerprint = access.idempotency_scope(scope), idempotency.fingerprint_of(data)
        claim = {"scope": scope, "key": key, "fingerprint": fingerprint, "status": 201, "answer": body}
        statement, extra = (
            statements.RECORD_ONE_ONCE,
            {**extra, **claim, "location": location, "records": [record["id"]]},
        )
    async with pg.connection(pool) as conn:
        try:
            done = await recording.store(conn, directory, [record], statement=statement, extra=extra)
        except UniqueViolation as exc:
            if key is None or exc.diag.table_name != "idempotency_keys":
                raise
            # The same key at the same moment: the other request committed first; answer as it did.
            stored = await idempotency.stored_answer(conn, scope, key)
            return await idempotency.replay_async(conn, access, stored, fingerprint)
        if done.prior is not None:
            return await idempotency.replay_async(conn, access, done.prior, fingerprint)
    if record["id"] not in done.stored:
        raise Conflict("A reading for this patient at this measured_at from this source is already stored.")
    return Answer(body, 201, location)


async def record_batch(
    *,
    pool: Pool,
    directory: PatientDirectory,
    access: Access,
    patient_id: uuid.UUID | None,
    batch: BatchIn | MeasurementBatchIn,
    key: str | None,
    scope: str,
) -> Answer:
    """Store the readings in one statement, with their events and audit rows; those already
    stored are reported as duplicates (pydantic has refused the whole batch if any reading is
    invalid)."""
    _reach_batch(access, patient_id, batch)
    now = datetime.now(UTC)
    records = [
        recording.new_row(_owner(reading, patient_id), reading.model_dump(include=READING_FIELDS), now)
        for reading in batch.readings
    ]

    async def write(conn: Connection) -> Outcome:
        audited = audit.shared_values(access.row(200))  # its rows are written by the statement
        done = await recording.store(
            conn, directory, records, statement=statements.RECORD_MANY, many=True, extra=audited
        )
        results = [
            BatchItem(index=index, status="stored", id=record["id"])
            if record["id"] in done.stored
            else BatchItem(index=index, status="duplicate")
            for index, record in enumerate(records)
        ]
        out = BatchOut(stored=len(done.stored), duplicates=len(records) - len(done.stored), results=results)
        touched = [(r["id"], r["patient_id"]) for r in records if r["id"] in done.stored]
        return Outcome(out, status_code=200, touched=touched, audited=True)

    return await idempotency.run_once_async(pool=pool, access=access, key=key, scope=scope, request=batch, write=write)


def _owner(reading: Reading, patient_id: uuid.UUID | None) -> uuid.UUID:
    """The path's patient, or the one a reading of `/api/v1/measures/batch` names."""
    owner = reading.patient_id if isinstance(reading, MeasurementCreate) else patient_id
    assert owner is not None  # a reading without the path's patient names its own
    return owner


def _reach_batch(access: Access, patient_id: uuid.UUID | None, batch: BatchIn | MeasurementBatchIn) -> None:
    """A patient/ token's batch is refused whole if it is for, or any reading names, another patient."""
    if patient_id is not None:
        access.reach(patient_id)
    for reading in batch.readings if access.only_patient is not None else []:
        if isinstance(reading, MeasurementCreate) and reading.patient_id != access.only_patient:
            raise NotFound(f"Patient {reading.patient_id} does not exist.")


def get_measurement(*, session: UnitOfWork, measurement_id: uuid.UUID) -> Measurement:
    measurement = session.get(Measurement, measurement_id)
    if measurement is None:
        raise NotFound(f"Measurement {measurement_id} does not exist.")
    return measurement


def delete_measurement(*, session: UnitOfWork, measurement: Measurement) -> None:
    """Delete a reading with its event; a retry of the request that stored it then gets 404."""
    session.record(events.deleted(measurement.id, measurement.patient_id))
    erase_answers(session, EVENT_TABLES.idempotency_keys, measurement.patient_id, measurement.id)
    session.delete(measurement)
    session.flush()
