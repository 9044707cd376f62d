"""Measurement use cases as plain functions; the caller's session owns the transaction."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from measurement_service import events
from measurement_service.models import Measurement
from measurement_service.patients import PatientDirectory, require_patient
from measurement_service.schemas import MeasurementOut, PatientMeasurementFilter, Reading
from painkiller_common.contracts import VITALS, MeasurementRecord, MeasurementRecorded
from painkiller_common.pagination import Page, clamp_limit, decode_cursor, page_of
from painkiller_common.problems import InvalidInput, NotFound

Loc = list[str | int]


def reading_errors(data: Reading, at: Loc) -> list[tuple[Loc, str]]:
    """The rules that span fields (shared/CLINICAL.md): a vital present, BP as a proper pair."""
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
) -> Measurement:
    if errors := reading_errors(data, ["body"]):
        raise InvalidInput(*errors)
    require_patient(session, directory, patient_id)
    now = datetime.now(UTC)
    fields = data.model_dump(include={*VITALS, "source"})
    measurement = Measurement(
        id=uuid.uuid4(), patient_id=patient_id, measured_at=data.measured_at or now, recorded_at=now, **fields
    )
    session.add(measurement)
    session.flush()
    record = MeasurementRecord.model_validate(measurement)
    events.publish(
        session,
        [MeasurementRecorded(aggregate_id=measurement.id, aggregate_version=events.RECORDED_VERSION, payload=record)],
    )
    return measurement


def get_measurement(*, session: Session, measurement_id: uuid.UUID) -> Measurement:
    measurement = session.get(Measurement, measurement_id)
    if measurement is None:
        raise NotFound(f"Measurement {measurement_id} does not exist.")
    return measurement


def delete_measurement(*, session: Session, measurement_id: uuid.UUID) -> None:
    measurement = get_measurement(session=session, measurement_id=measurement_id)
    events.publish(session, [events.deleted(measurement.id, measurement.patient_id)])
    session.delete(measurement)
    session.flush()


def list_measurements(
    *, session: Session, query: PatientMeasurementFilter, patient_id: uuid.UUID | None
) -> Page[MeasurementOut]:
    """Newest `measured_at` first; ties broken by id so pages never skip or repeat a row."""
    limit = clamp_limit(query.limit)
    order = (Measurement.measured_at.desc(), Measurement.id.desc())
    stmt = select(Measurement).order_by(*order).limit(limit + 1)
    if patient_id is not None:
        stmt = stmt.where(Measurement.patient_id == patient_id)
    if query.since is not None:
        stmt = stmt.where(Measurement.measured_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Measurement.measured_at < query.until)
    if query.cursor:
        before = decode_cursor(query.cursor, loc=["cursor"])
        stmt = stmt.where(tuple_(Measurement.measured_at, Measurement.id) < before)
    rows = session.scalars(stmt).all()
    return page_of(rows, limit, key=lambda m: (m.measured_at, m.id), out=MeasurementOut.model_validate)
