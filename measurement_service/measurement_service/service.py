"""Measurement use cases as plain functions; the caller's session owns the transaction."""

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from measurement_service import events
from measurement_service.models import Measurement
from measurement_service.patients import PatientDirectory, require_patient
from measurement_service.schemas import (
    BatchIn,
    BatchItem,
    BatchOut,
    MeasurementCreate,
    MeasurementOut,
    PatientMeasurementFilter,
    Reading,
)
from painkiller_common.contracts import VITALS, MeasurementRecord, MeasurementRecorded
from painkiller_common.pagination import Page, clamp_limit, decode_cursor, page_of
from painkiller_common.problems import Conflict, FieldError, InvalidInput, NotFound, field_errors

Loc = list[str | int]
READING: TypeAdapter[Reading] = TypeAdapter(Reading)
MEASUREMENT_CREATE: TypeAdapter[MeasurementCreate] = TypeAdapter(MeasurementCreate)


def reading_errors(data: Reading, at: Loc) -> list[tuple[Loc, str]]:
    """The rules that span fields (doc/api.md): a vital present, BP as a proper pair."""
    errors: list[tuple[Loc, str]] = []
    if all(getattr(data, field) is None for field in VITALS):
        errors.append((at, "at least one vital sign is required: " + ", ".join(VITALS)))
    systolic, diastolic = data.systolic_mmhg, data.diastolic_mmhg
    if (systolic is None) != (diastolic is None):
        missing = "diastolic_mmhg" if diastolic is None else "systolic_mmhg"
        errors.append(([*at, missing], "systolic_mmhg and diastolic_mmhg must be sent together"))
    elif systolic is not None and diastolic is not None and diastolic >= systolic:
        errors.append(([*at, "diastolic_mmhg"], "must be below systolic_mmhg"))
    return errors


def record_measurement(
    *, session: Session, directory: PatientDirectory, patient_id: uuid.UUID, data: Reading
) -> MeasurementRecord:
    if errors := reading_errors(data, ["body"]):
        raise InvalidInput(*errors)
    require_patient(session, directory, patient_id)
    stored = _insert(session, [_row(patient_id, data, datetime.now(UTC))])
    if not stored:
        raise Conflict("A reading for this patient at this measured_at from this source is already stored.")
    return stored[0]


def record_batch(
    *, session: Session, directory: PatientDirectory, patient_id: uuid.UUID | None, batch: BatchIn
) -> tuple[BatchOut, list[tuple[uuid.UUID | None, uuid.UUID | None]]]:
    """Validate each reading alone; store the valid ones in one statement, with their events.
    Also the (reading id, patient id) of each stored reading, for the audit trail."""
    adapter = READING if patient_id is not None else MEASUREMENT_CREATE
    now = datetime.now(UTC)
    results: list[BatchItem] = []
    rows: dict[int, dict[str, Any]] = {}
    for index, raw in enumerate(batch.readings):
        at: Loc = ["body", "readings", index]
        try:
            reading = adapter.validate_python(raw)
        except ValidationError as exc:
            results.append(_rejected(index, field_errors(exc.errors(), prefix=tuple(at))))
            continue
        if errors := reading_errors(reading, at):
            results.append(_rejected(index, InvalidInput(*errors).errors))
            continue
        rows[index] = _row(patient_id or reading.patient_id, reading, now)  # type: ignore[attr-defined]
        results.append(BatchItem(index=index, status="stored", id=rows[index]["id"]))
    if not rows:
        raise InvalidInput(*((e.loc, e.message) for item in results for e in item.errors or []))
    for pid in sorted({row["patient_id"] for row in rows.values()}):
        require_patient(session, directory, pid)
    stored = _insert(session, list(rows.values()))
    stored_ids = {record.id for record in stored}
    for item in results:
        if item.status == "stored" and item.id not in stored_ids:
            item.status = "duplicate"
            item.id = None
    counts = Counter(item.status for item in results)
    out = BatchOut(
        stored=counts["stored"], duplicates=counts["duplicate"], rejected=counts["rejected"], results=results
    )
    return out, [(record.id, record.patient_id) for record in stored]


def _rejected(index: int, errors: list[FieldError]) -> BatchItem:
    return BatchItem(index=index, status="rejected", errors=errors)


def _row(patient_id: uuid.UUID, data: Reading, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "patient_id": patient_id,
        "measured_at": data.measured_at or now,
        "recorded_at": now,
        **data.model_dump(include={*VITALS, "source"}),
    }


def _insert(session: Session, rows: list[dict[str, Any]]) -> list[MeasurementRecord]:
    """Insert readings not stored before (by natural key) and publish their events."""
    inserted = set(session.scalars(insert(Measurement).on_conflict_do_nothing().returning(Measurement.id), rows).all())
    records = [MeasurementRecord.model_validate(row) for row in rows if row["id"] in inserted]
    events.publish(
        session,
        [MeasurementRecorded(aggregate_id=r.id, aggregate_version=events.RECORDED_VERSION, payload=r) for r in records],
    )
    return records


def get_measurement(*, session: Session, measurement_id: uuid.UUID) -> Measurement:
    measurement = session.get(Measurement, measurement_id)
    if measurement is None:
        raise NotFound(f"Measurement {measurement_id} does not exist.")
    return measurement


def delete_measurement(*, session: Session, measurement: Measurement) -> None:
    events.publish(session, [events.deleted(measurement.id, measurement.patient_id)])
    session.delete(measurement)
    session.flush()


def list_measurements(
    *, session: Session, query: PatientMeasurementFilter, patient_id: uuid.UUID | None
) -> Page[MeasurementOut]:
    """Newest `measured_at` first; ties broken by id so pages never skip or repeat a row."""
    limit = clamp_limit(query.limit)
    order = (Measurement.measured_at.desc(), Measurement.id.desc())
    # Core rows, not ORM objects: a page is read-only, and building objects was most of its cost.
    stmt = select(Measurement.__table__).order_by(*order).limit(limit + 1)
    if patient_id is not None:
        stmt = stmt.where(Measurement.patient_id == patient_id)
    if query.since is not None:
        stmt = stmt.where(Measurement.measured_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Measurement.measured_at < query.until)
    if query.cursor:
        before = decode_cursor(query.cursor, loc=["cursor"])
        stmt = stmt.where(tuple_(Measurement.measured_at, Measurement.id) < before)
    rows = session.execute(stmt).all()
    return page_of(rows, limit, key=lambda m: (m.measured_at, m.id), out=MeasurementOut.model_validate)
