"""Measurement events as the measurement service publishes them, for the patient service's tests."""

import uuid
from datetime import UTC, datetime, timedelta

from painkiller_common.contracts import (
    VITALS,
    MeasurementDeleted,
    MeasurementRecord,
    MeasurementRecorded,
    MeasurementRef,
)

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def minutes_ago(minutes: int) -> int:
    """`reading`'s offset from T0 for a reading taken `minutes` before now."""
    return int((datetime.now(UTC) - T0).total_seconds() // 60) - minutes


def reading(patient_id: str, minutes: int, vitals: dict[str, object]) -> MeasurementRecorded:
    """`measurement.recorded` for a reading taken `minutes` after T0."""
    at = T0 + timedelta(minutes=minutes)
    record = MeasurementRecord(
        id=uuid.uuid4(),
        patient_id=uuid.UUID(patient_id),
        measured_at=at,
        recorded_at=at,
        source=None,
        **{field: vitals.get(field) for field in VITALS},
    )
    return MeasurementRecorded(aggregate_id=record.id, aggregate_version=1, payload=record)


def removal(recorded: MeasurementRecorded) -> MeasurementDeleted:
    """`measurement.deleted` for that reading."""
    ref = MeasurementRef(id=recorded.payload.id, patient_id=recorded.payload.patient_id)
    return MeasurementDeleted(aggregate_id=ref.id, aggregate_version=2, payload=ref)
