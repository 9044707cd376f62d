"""Measurement use cases. The hot ones (record, list) are async on asyncpg (doc/performance.md);
reading one by id and deleting it take the caller's SQLAlchemy session, which owns the transaction."""

import uuid
from collections import Counter
from datetime import UTC, datetime

import asyncpg
from fastapi import Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from measurement_service import events, recording
from measurement_service.models import Measurement
from measurement_service.patients import PatientDirectory
from measurement_service.schemas import (
    BatchIn,
    BatchItem,
    BatchOut,
    MeasurementBatchIn,
    MeasurementCreate,
    MeasurementOut,
    Reading,
)
from painkiller_common import idempotency
from painkiller_common.access import Access
from painkiller_common.contracts import VITALS
from painkiller_common.idempotency import Outcome
from painkiller_common.pg import Pool
from painkiller_common.problems import Conflict, FieldError, InvalidInput, NotFound, field_errors

Loc = list[str | int]
READING: TypeAdapter[Reading] = TypeAdapter(Reading)
MEASUREMENT_CREATE: TypeAdapter[MeasurementCreate] = TypeAdapter(MeasurementCreate)
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
) -> Response:
    """Store one reading, its event and audit row, and claim its Idempotency-Key: one statement."""
    access.reach(patient_id)
    record = recording.new_row(patient_id, data.model_dump(include=READING_FIELDS), datetime.now(UTC))
    body, location = MeasurementOut.model_construct(**record).model_dump_json(), f"{location_prefix}/{record['id']}"
    statement, extra = recording.ONE, recording.audit_values(access, 201)
    if key is not None:
        scope, fingerprint = access.idempotency_scope(scope), idempotency.fingerprint_of(data)
        claim = {"scope": scope, "key": key, "fingerprint": fingerprint, "status": 201, "answer": body}
        statement, extra = recording.ONE_ONCE, {**extra, **claim, "location": location}
    async with pool.acquire() as conn:
        try:
            done = await recording.store(conn, directory, [record], statement=statement, extra=extra)
        except asyncpg.UniqueViolationError as exc:
            if key is None or exc.table_name != "idempotency_keys":
                raise
            # The same key at the same moment: the other request committed first; answer as it did.
            stored = await conn.fetchrow(idempotency.STORED, scope, key)
            return await idempotency.replay_async(conn, access, stored, fingerprint)
        if done.prior is not None:
            return await idempotency.replay_async(conn, access, done.prior, fingerprint)
    if record["id"] not in done.stored:
        raise Conflict("A reading for this patient at this measured_at from this source is already stored.")
    return idempotency.answer(body, 201, location)


async def record_batch(
    *,
    pool: Pool,
    directory: PatientDirectory,
    access: Access,
    patient_id: uuid.UUID | None,
    batch: BatchIn | MeasurementBatchIn,
    key: str | None,
    scope: str,
) -> Response:
    """Validate each reading alone; store the valid ones in one statement, with their events."""
    _reach_batch(access, patient_id, batch)
    results, records = _validate_batch(patient_id, batch)

    async def write(conn: asyncpg.Connection) -> Outcome:
        done = await recording.store(conn, directory, list(records.values()), statement=recording.MANY)
        for item in results:
            if item.status == "stored" and item.id not in done.stored:
                item.status, item.id = "duplicate", None
        counts = Counter(item.status for item in results)
        out = BatchOut(
            stored=counts["stored"], duplicates=counts["duplicate"], rejected=counts["rejected"], results=results
        )
        touched = [(r["id"], r["patient_id"]) for r in records.values() if r["id"] in done.stored]
        return Outcome(out, status_code=200, touched=touched)

    return await idempotency.run_once_async(pool=pool, access=access, key=key, scope=scope, request=batch, write=write)


def _reach_batch(access: Access, patient_id: uuid.UUID | None, batch: BatchIn | MeasurementBatchIn) -> None:
    """A patient/ token's batch is refused whole if it is for, or any reading names, another patient."""
    if patient_id is not None:
        access.reach(patient_id)
    for raw in batch.readings if access.only_patient is not None else []:
        named = raw.get("patient_id")
        if named is not None and str(named) != str(access.only_patient):
            raise NotFound(f"Patient {named} does not exist.")


def _validate_batch(
    patient_id: uuid.UUID | None, batch: BatchIn | MeasurementBatchIn
) -> tuple[list[BatchItem], dict[int, recording.Row]]:
    """Each reading validated alone: the result of each, and the records of the valid ones (422 if none)."""
    adapter = READING if patient_id is not None else MEASUREMENT_CREATE
    now = datetime.now(UTC)
    results: list[BatchItem] = []
    records: dict[int, recording.Row] = {}
    for index, raw in enumerate(batch.readings):
        at: Loc = ["body", "readings", index]
        try:
            reading = adapter.validate_python(raw)
        except ValidationError as exc:
            results.append(_rejected(index, field_errors(exc.errors(), prefix=tuple(at))))
            continue
        owner = reading.patient_id if isinstance(reading, MeasurementCreate) else patient_id
        assert owner is not None  # a reading without the path's patient names its own
        records[index] = recording.new_row(owner, reading.model_dump(include=READING_FIELDS), now)
        results.append(BatchItem(index=index, status="stored", id=records[index]["id"]))
    if not records:
        raise InvalidInput(*((e.loc, e.message) for item in results for e in item.errors or []))
    return results, records


def _rejected(index: int, errors: list[FieldError]) -> BatchItem:
    return BatchItem(index=index, status="rejected", errors=errors)


def get_measurement(*, session: Session, measurement_id: uuid.UUID) -> Measurement:
    measurement = session.get(Measurement, measurement_id)
    if measurement is None:
        raise NotFound(f"Measurement {measurement_id} does not exist.")
    return measurement


def delete_measurement(*, session: Session, measurement: Measurement) -> None:
    events.publish(session, [events.deleted(measurement.id, measurement.patient_id)])
    session.delete(measurement)
    session.flush()
