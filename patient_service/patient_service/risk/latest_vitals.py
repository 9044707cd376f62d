"""Each patient's latest value of every vital, kept from the readings measurement events carry.

Newest wins by (measured_at, measurement id): a total order, so the result is the same whatever
order the events arrive in.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from painkiller_common.contracts import VITALS, MeasurementRecord
from patient_service.models import VitalReading

LatestVitals = dict[str, dict[str, Any]]


def _entry(value: Any, measured_at: datetime, measurement_id: uuid.UUID) -> dict[str, Any]:
    return {"value": value, "measured_at": measured_at.isoformat(), "measurement_id": str(measurement_id)}


def _order(entry: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(entry["measured_at"]), entry["measurement_id"]


def merge_reading(latest: LatestVitals, reading: MeasurementRecord) -> LatestVitals:
    """`latest` with each vital of `reading` that is newer than the one it has."""
    merged = dict(latest)
    for field in VITALS:
        value = getattr(reading, field)
        if value is None:
            continue
        candidate = _entry(value, reading.measured_at, reading.id)
        if field not in merged or _order(candidate) > _order(merged[field]):
            merged[field] = candidate
    return merged


def recompute(session: Session, patient_id: uuid.UUID) -> LatestVitals:
    """Latest vitals from the stored readings, leaving out deleted ones (after a delete)."""
    latest: LatestVitals = {}
    for field in VITALS:
        column = getattr(VitalReading, field)
        row = session.execute(
            select(column, VitalReading.measured_at, VitalReading.measurement_id)
            .where(VitalReading.patient_id == patient_id, ~VitalReading.deleted, column.is_not(None))
            .order_by(VitalReading.measured_at.desc(), VitalReading.measurement_id.desc())
            .limit(1)
        ).first()
        if row is not None:
            latest[field] = _entry(row[0], row.measured_at, row.measurement_id)
    return latest
